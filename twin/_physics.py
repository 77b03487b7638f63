"""Newton model of N replicated PushT worlds: table, T block (dynamic) and pusher (kinematic).

The arm is driven kinematically (see ``twin.env``): its joints follow targets under velocity limits and
forward kinematics place the pusher, whose prescribed motion (pose + velocity) the contact solver sees.
The block only ever moves through contact and the external wrench input: it is never teleported
during a step. Build once (``PushTPhysics(...)``), step many; ``set_block_poses`` is for resets only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import shapely
import warp as wp

from . import _kernels
from .transforms import quat_wxyz_to_xyzw, quat_xyzw_to_wxyz, yaw_to_quat_wxyz
from .config import PhysicsConfig, SpringGains
from .pusht import TShape

__all__ = ["PushTPhysics", "BlockSprings", "BODIES_PER_WORLD", "BLOCK", "PUSHER"]

#: Body order inside each world; ``body_wrench`` arrays use it.
BLOCK, PUSHER = 0, 1
BODIES_PER_WORLD = 2
GRAVITY_M_S2 = 9.81


@dataclass
class BlockSprings:
    """Visual-force springs for one step: ``target`` [N, 3] block poses (x [m], y [m], yaw [rad]) in the
    world frame at the step's start, moving on at ``target_rate`` [N, 3] (m/s, m/s, rad/s; zero when
    None), that ``active`` [N] worlds' blocks are pulled towards, with ``gains``."""

    target: np.ndarray
    active: np.ndarray
    gains: SpringGains = field(default_factory=SpringGains)
    target_rate: np.ndarray | None = None


class PushTPhysics:
    """N PushT worlds in one Newton model, stepped together with XPBD on ``device``.

    Args:
        num_worlds: number of replicated worlds N.
        shape: the T block.
        config: physics settings.
        device: a resolved Warp device name ("cpu", "cuda:0"); resolve "auto" at the edge.
    """

    def __init__(self, num_worlds: int, shape: TShape, config: PhysicsConfig, device: str = "cpu") -> None:
        import newton

        if num_worlds < 1:
            raise ValueError(f"num_worlds must be >= 1, got {num_worlds}")
        self.num_worlds = num_worlds
        self.shape = shape
        self.config = config
        self.device = wp.get_device(device)
        builder = newton.ModelBuilder()
        builder.replicate(self._world_builder(newton), num_worlds)
        ground_cfg = newton.ModelBuilder.ShapeConfig(mu=config.table_friction, gap=config.contact_gap_m)
        builder.add_ground_plane(height=config.table_height_m, cfg=ground_cfg)
        self.model = builder.finalize(device=self.device)
        if self.model.body_count != BODIES_PER_WORLD * num_worlds:
            raise RuntimeError(f"unexpected body layout: {self.model.body_count} bodies for {num_worlds} worlds")
        self.solver = newton.solvers.SolverXPBD(self.model, iterations=config.solver_iterations)
        self.pipeline = newton.CollisionPipeline(self.model, include_static_kinematic_pairs=False, broad_phase="explicit")
        self.contacts = self.pipeline.contacts()
        self.state_in = self.model.state()
        self.state_out = self.model.state()
        self.control = self.model.control()
        idx = np.arange(num_worlds) * BODIES_PER_WORLD
        self._pusher_body = wp.array((idx + PUSHER).astype(np.int32), dtype=wp.int32, device=self.device)
        self._path = wp.zeros((config.substeps + 1, num_worlds), dtype=wp.vec3, device=self.device)
        self._wrench = wp.zeros(self.model.body_count, dtype=wp.spatial_vector, device=self.device)
        self._zero_wrench = True
        self.block_half_height_m = 0.5 * shape.thickness_m
        self._block_body = wp.array((idx + BLOCK).astype(np.int32), dtype=wp.int32, device=self.device)
        self._spring_target = wp.zeros(num_worlds, dtype=wp.vec3, device=self.device)
        self._spring_active = wp.zeros(num_worlds, dtype=wp.int32, device=self.device)
        self._spring_rate = wp.zeros(num_worlds, dtype=wp.vec3, device=self.device)
        friction = min(shape.friction, config.table_friction)
        #: Coulomb friction of a block sliding / spinning on the table [N], [N m].
        self.block_friction_force_n = friction * shape.mass_kg * GRAVITY_M_S2
        self.block_friction_torque_nm = self.block_friction_force_n * block_mean_radius_m(shape)

    def _world_builder(self, newton):  # noqa: ANN001 - the newton module
        s, c = self.shape, self.config
        b = newton.ModelBuilder()
        volume = (s.bar_length_m * s.bar_width_m + s.stem_width_m * s.stem_length_m) * s.thickness_m
        block_cfg = newton.ModelBuilder.ShapeConfig(mu=s.friction, density=s.mass_kg / volume, gap=c.contact_gap_m)
        z = c.table_height_m + 0.5 * s.thickness_m
        block = b.add_body(xform=wp.transform((0.0, 0.0, z), wp.quat_identity()), label="block")
        b.add_shape_box(
            block, xform=wp.transform((0.0, s.bar_center_y_m, 0.0), wp.quat_identity()),
            hx=0.5 * s.bar_length_m, hy=0.5 * s.bar_width_m, hz=0.5 * s.thickness_m, cfg=block_cfg, label="bar",
        )
        b.add_shape_box(
            block, xform=wp.transform((0.0, s.stem_center_y_m, 0.0), wp.quat_identity()),
            hx=0.5 * s.stem_width_m, hy=0.5 * s.stem_length_m, hz=0.5 * s.thickness_m, cfg=block_cfg, label="stem",
        )
        pusher_cfg = newton.ModelBuilder.ShapeConfig(mu=s.friction, gap=c.contact_gap_m)
        tip_z = c.table_height_m + c.pusher_tip_height_m
        pusher = b.add_body(xform=wp.transform((0.0, 0.5, tip_z), wp.quat_identity()), is_kinematic=True, label="pusher")
        half = 0.5 * c.pusher_collision_length_m
        b.add_shape_cylinder(
            pusher, xform=wp.transform((0.0, 0.0, half), wp.quat_identity()),
            radius=c.pusher_radius_m, half_height=half, cfg=pusher_cfg, label="pusher",
        )
        return b

    # ------------------------------------------------------------------ state access
    @property
    def pusher_tip_z_m(self) -> float:
        return self.config.table_height_m + self.config.pusher_tip_height_m

    def body_poses(self) -> np.ndarray:
        """World poses [N, BODIES_PER_WORLD, 7] as (x, y, z, qw, qx, qy, qz)."""
        q = self.state_in.body_q.numpy().reshape(self.num_worlds, BODIES_PER_WORLD, 7)
        return np.concatenate([q[..., :3], quat_xyzw_to_wxyz(q[..., 3:])], axis=-1).astype(np.float64)

    def body_velocities(self) -> np.ndarray:
        """Velocities [N, BODIES_PER_WORLD, 6]: linear of the COM [m/s], angular [rad/s], world frame."""
        return self.state_in.body_qd.numpy().reshape(self.num_worlds, BODIES_PER_WORLD, 6).astype(np.float64)

    def raw_body_state(self) -> tuple[np.ndarray, np.ndarray]:
        """The bodies' state exactly as the solver holds it: ``body_q`` [N, BODIES_PER_WORLD, 7] (x, y, z,
        qx, qy, qz, qw) and ``body_qd`` [N, BODIES_PER_WORLD, 6], float32, world frame."""
        n = self.num_worlds
        return (self.state_in.body_q.numpy().reshape(n, BODIES_PER_WORLD, 7).copy(),
                self.state_in.body_qd.numpy().reshape(n, BODIES_PER_WORLD, 6).copy())

    def set_raw_body_state(self, worlds: np.ndarray, body_q: np.ndarray, body_qd: np.ndarray) -> None:
        """Set the bodies of ``worlds`` [K] to ``body_q`` [K, BODIES_PER_WORLD, 7] and ``body_qd`` [K, ..., 6] in
        ``raw_body_state``'s layout (between steps)."""
        rows = (np.asarray(worlds, dtype=np.int64)[:, None] * BODIES_PER_WORLD + np.arange(BODIES_PER_WORLD)).ravel()
        for state in (self.state_in, self.state_out):
            q, qd = state.body_q.numpy(), state.body_qd.numpy()
            q[rows] = np.asarray(body_q, dtype=np.float32).reshape(-1, 7)
            qd[rows] = np.asarray(body_qd, dtype=np.float32).reshape(-1, 6)
            state.body_q.assign(q)
            state.body_qd.assign(qd)

    def set_block_poses(self, worlds: np.ndarray, poses: np.ndarray) -> None:
        """Place the blocks of ``worlds`` [K] at rest at planar ``poses`` [K, 3] (x, y, yaw). Between steps only
        (resets, and the live loop's re-localisation)."""
        self._set_bodies(worlds, BLOCK, np.c_[poses[:, :2], np.full(len(poses), self.config.table_height_m + self.block_half_height_m)],
                         poses[:, 2])

    def set_pusher_positions(self, worlds: np.ndarray, positions: np.ndarray) -> None:
        """Place the pushers of ``worlds`` [K] with their tips at ``positions`` [K, 2] (x, y). Resets only."""
        self._set_bodies(worlds, PUSHER, np.c_[positions, np.full(len(positions), self.pusher_tip_z_m)], np.zeros(len(positions)))

    def _set_bodies(self, worlds: np.ndarray, body: int, xyz: np.ndarray, yaw: np.ndarray) -> None:
        rows = np.asarray(worlds, dtype=np.int64) * BODIES_PER_WORLD + body
        for state in (self.state_in, self.state_out):
            q = state.body_q.numpy()
            qd = state.body_qd.numpy()
            q[rows, :3] = xyz
            q[rows, 3:] = quat_wxyz_to_xyzw(yaw_to_quat_wxyz(yaw))
            qd[rows] = 0.0
            state.body_q.assign(q)
            state.body_qd.assign(qd)

    # ------------------------------------------------------------------ stepping
    def step(self, pusher_path_xy: np.ndarray, dt: float, body_wrench: np.ndarray | None = None,
             block_springs: BlockSprings | None = None) -> None:
        """Advance all worlds by one control step of ``dt`` seconds.

        Args:
            pusher_path_xy: [S + 1, N, 2] pusher tip (x, y) in the world frame [m] at the start (row 0)
                and at the end of each of the S substeps; the tip height is fixed.
            dt: control period [s], split into S equal substeps.
            body_wrench: optional [N, BODIES_PER_WORLD, 6] external wrench per body per world, world
                frame, (force [N], torque [N m]) about each body's centre of mass, held over the step.
                Kinematic bodies ignore it.
            block_springs: optional visual-force springs on the blocks, added to the external wrench
                input at every substep (see ``BlockSprings``).
        """
        S, N = self.config.substeps, self.num_worlds
        if pusher_path_xy.shape != (S + 1, N, 2):
            raise ValueError(f"pusher_path_xy must have shape {(S + 1, N, 2)}, got {pusher_path_xy.shape}")
        path = np.empty((S + 1, N, 3), dtype=np.float32)
        path[..., :2] = pusher_path_xy
        path[..., 2] = self.pusher_tip_z_m
        self._path.assign(path)
        if body_wrench is not None:
            if body_wrench.shape != (N, BODIES_PER_WORLD, 6):
                raise ValueError(f"body_wrench must have shape {(N, BODIES_PER_WORLD, 6)}, got {body_wrench.shape}")
            if not np.all(np.isfinite(body_wrench)):
                raise ValueError("body_wrench holds non-finite values")
            self._wrench.assign(body_wrench.reshape(-1, 6).astype(np.float32))
            self._zero_wrench = False
        elif not self._zero_wrench:
            self._wrench.zero_()
            self._zero_wrench = True
        springs = block_springs is not None and bool(np.any(block_springs.active))
        if springs:
            if block_springs.target.shape != (N, 3) or block_springs.active.shape != (N,):
                raise ValueError(f"block_springs need target [{N}, 3] and active [{N}]")
            if not np.all(np.isfinite(block_springs.target[block_springs.active])):
                raise ValueError("block_springs.target holds non-finite values")
            self._spring_target.assign(np.nan_to_num(block_springs.target).astype(np.float32))
            rate = np.zeros((N, 3)) if block_springs.target_rate is None else block_springs.target_rate
            if rate.shape != (N, 3) or not np.all(np.isfinite(rate)):
                raise ValueError(f"block_springs.target_rate must be finite [{N}, 3]")
            self._spring_rate.assign(rate.astype(np.float32))
            self._spring_active.assign(block_springs.active.astype(np.int32))
            g = block_springs.gains
            spring_args = [
                self.shape.mass_kg, self.shape.inertia_zz_kg_m2, 2.0 * np.pi * g.frequency_hz,
                g.friction_compensation * self.block_friction_force_n,
                g.friction_compensation * self.block_friction_torque_nm,
                g.friction_ref_m, g.friction_ref_rad, g.max_force_n, g.max_torque_nm,
            ]
        sub_dt = dt / S
        for s in range(S):
            wp.launch(
                _kernels.set_substep_inputs, dim=N, device=self.device,
                inputs=[self._path, s, sub_dt, self._pusher_body, self.state_in.body_q, self.state_in.body_qd],
            )
            wp.launch(_kernels.copy_body_wrench, dim=self.model.body_count, device=self.device,
                      inputs=[self._wrench, self.state_in.body_f])
            if springs:
                wp.launch(
                    _kernels.apply_block_springs, dim=N, device=self.device,
                    inputs=[self._block_body, self._spring_target, self._spring_rate, (s + 1) * sub_dt,
                            self._spring_active, self.state_in.body_q,
                            self.state_in.body_qd, self.model.body_com, *spring_args, self.state_in.body_f],
                )
            if s % self.config.collide_every == 0:
                self.pipeline.collide(self.state_in, self.contacts)
            self.solver.step(self.state_in, self.state_out, self.control, self.contacts, sub_dt)
            self.state_in, self.state_out = self.state_out, self.state_in


def block_mean_radius_m(shape: TShape) -> float:
    """Mean distance of the T's footprint from its centre of mass [m] (2 mm grid): the lever arm of the
    Coulomb friction torque of a block spinning in place."""
    from .pusht import t_outline

    poly = shapely.Polygon(t_outline(shape))
    xmin, ymin, xmax, ymax = poly.bounds
    xs, ys = np.meshgrid(np.arange(xmin, xmax, 0.002) + 0.001, np.arange(ymin, ymax, 0.002) + 0.001)
    inside = shapely.contains_xy(poly, xs, ys)
    return float(np.mean(np.hypot(xs[inside], ys[inside])))
