"""Vectorised PushT twin: N worlds of a Franka Panda pushing a T block, gymnasium-style.

Frames and units: ``world`` = robot base, z up, metres and radians. An **action** is the pusher's
target (x, y) on the table in the world frame [m] per world, like gym-pusht's agent target. Each
``step`` is one control period (``1 / control_hz`` s, 0.1 s by default) made of ``physics.substeps``
physics substeps:

1. the target is clamped into the workspace and to ``max_pusher_speed_m_s`` from the current pusher
   position (documented clamping, flagged per world in ``info``);
2. differential IK (tool vertical, fixed height) turns it into joint targets inside the joint limits;
3. the joints move towards them under the joint velocity limits, forward kinematics place the pusher
   at every substep, and the contact physics moves the block.

Unreachable targets and clamping are reported in ``info``, never raised. Invalid input (wrong shape,
non-finite values) raises ``ValueError`` before any world changes. Worlds do not auto-reset: call
``reset`` (optionally for a subset of worlds) when an episode ends.

Seeding: episode seed ``e`` fixes a world's initial state exactly; ``reset(seed=s)`` gives world ``i``
the episode seed ``s + i``, so episode ``e`` is the same in any batch size.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ._physics import BLOCK, BlockSprings, PushTPhysics
from .config import TwinConfig

from .transforms import quat_wxyz_to_yaw
from .franka import FRANKA_DQ_MAX, FRANKA_HOME_Q, DifferentialIKConfig, PandaKinematics
from .pusht import TShape, block_keypoints, coverage, planar_pose_error
from .state import TwinState

__all__ = ["BlockSprings", "Observation", "PushTEnv"]


@dataclass
class Observation:
    """Per-world observation of the twin. World frame, metres, radians; leading axis N worlds."""

    pusher_xy: np.ndarray  #: [N, 2] pusher tip (x, y)
    block_pose: np.ndarray  #: [N, 3] block (x, y, yaw), yaw in (-pi, pi]
    keypoints: np.ndarray  #: [N, 8, 2] the T's outline corners
    joint_pos: np.ndarray  #: [N, 7] rad
    joint_vel: np.ndarray  #: [N, 7] rad/s, averaged over the last control step
    #: [N, 2, 7] block and pusher poses (x, y, z, qw, qx, qy, qz) as the physics holds them: what the
    #: twin's renders of this state are drawn from (None where an observation was made without them)
    body_poses: np.ndarray | None = None

    def as_dict(self) -> dict[str, np.ndarray]:
        keys = ("pusher_xy", "block_pose", "keypoints", "joint_pos", "joint_vel", "body_poses")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}

    def select(self, worlds: np.ndarray | slice) -> "Observation":
        return Observation(**{k: v[worlds] for k, v in self.as_dict().items()})


class PushTEnv:
    """N PushT worlds stepped together. See the module docstring for conventions."""

    def __init__(self, config: TwinConfig = TwinConfig()) -> None:
        self.config = config
        self.num_worlds = config.num_worlds
        self.dt = 1.0 / config.control_hz
        self.kinematics = PandaKinematics(tool_offset_m=config.robot.pusher_length_m)
        self.physics = PushTPhysics(config.num_worlds, config.block, config.physics, device=config.device)
        self._tool_height = self.physics.pusher_tip_z_m
        self._R_tool = self.kinematics.flange_pose(FRANKA_HOME_Q)[:3, :3]  # flange z pointing down
        self._dq_max = FRANKA_DQ_MAX * config.robot.velocity_limit_scale
        self.q_start = self._solve_start_pose()
        self._goal = config.goal.pose
        N = self.num_worlds
        self._q = np.tile(self.q_start, (N, 1))
        self._dq = np.zeros((N, 7))
        self._pusher_xy = np.tile(np.asarray(config.robot.start_xy_m, dtype=np.float64), (N, 1))
        self._pusher_v = np.zeros((N, 2))  # pusher velocity over the last step [m/s], world frame
        self.elapsed_steps = np.zeros(N, dtype=np.int64)
        self._needs_reset = True

    def set_block_shape(self, shape: TShape) -> None:
        """Give the block other dimensions (e.g. the real block's, measured from camera frames): the
        physics is rebuilt and the worlds need a ``reset`` before the next step."""
        self.config = replace(self.config, block=shape)
        self.physics = PushTPhysics(self.num_worlds, shape, self.config.physics, device=self.config.device)
        self._needs_reset = True

    # ------------------------------------------------------------------ set-up
    def _solve_start_pose(self) -> np.ndarray:
        xy = np.asarray(self.config.robot.start_xy_m, dtype=np.float64)
        target = np.array([xy[0], xy[1], self._tool_height])
        ik = DifferentialIKConfig(iterations=200, damping=0.01, nullspace_gain=0.0)
        res = self.kinematics.solve_ik(target, self._R_tool, FRANKA_HOME_Q, config=ik)
        if res.unreachable:
            raise ValueError(f"robot.start_xy_m {tuple(xy)} is not reachable with a vertical pusher "
                             f"(miss {res.position_error_m * 1e3:.1f} mm)")
        return res.q

    # ------------------------------------------------------------------ episode control
    def sample_initial_blocks(self, episode_seeds: np.ndarray) -> np.ndarray:
        """Initial block poses [K, 3] for episode seeds [K]: uniform in the workspace (less the margin),
        any yaw, clear of the pusher's start position and not already at the goal."""
        ws, shape = self.config.workspace, self.config.block
        lo, hi = ws.low + ws.block_margin_m, ws.high - ws.block_margin_m
        start = np.asarray(self.config.robot.start_xy_m, dtype=np.float64)
        clearance = self.config.physics.pusher_radius_m + ws.start_clearance_m
        import shapely

        poses = np.empty((len(episode_seeds), 3))
        for k, seed in enumerate(episode_seeds):
            rng = np.random.default_rng(int(seed))
            for _ in range(1000):
                pose = np.array([*rng.uniform(lo, hi), rng.uniform(-np.pi, np.pi)])
                outline = shapely.Polygon(block_keypoints(shape, pose[None])[0])
                if outline.distance(shapely.Point(start)) < clearance:
                    continue
                if coverage(shape, pose[None], self._goal)[0] >= 0.5 * self.config.goal.success_coverage:
                    continue
                poses[k] = pose
                break
            else:  # pragma: no cover - only with absurd configs
                raise ValueError("could not sample a block pose clear of the pusher: check the workspace config")
        return poses

    def reset(
        self, seed: int | list[int] | np.ndarray | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Observation, dict[str, Any]]:
        """Reset worlds to seeded or explicit initial states.

        Args:
            seed: an int ``s`` (world ``i`` gets episode seed ``s + i``), or one seed per reset world,
                or None (fresh entropy).
            options: ``{"worlds": indices}`` resets only those worlds (others keep running);
                ``{"block_pose": [K, 3]}`` and/or ``{"joint_pos": [K, 7]}`` set an explicit state instead
                of sampling (joints default to the start pose); ``{"pusher_xy": [K, 2]}`` places the pusher
                there instead (joints from IK, seeded at the start pose).
        Returns:
            ``(obs, info)`` for all N worlds; ``info["episode_seed"]`` [K] holds the seeds used.
        """
        options = dict(options or {})
        worlds = np.arange(self.num_worlds) if options.get("worlds") is None else np.asarray(options["worlds"], dtype=np.int64).reshape(-1)
        if worlds.size and (worlds.min() < 0 or worlds.max() >= self.num_worlds):
            raise ValueError(f"reset worlds must be in [0, {self.num_worlds}), got {worlds}")
        K = len(worlds)
        if seed is None:
            seeds = np.random.SeedSequence().generate_state(K).astype(np.int64)
        elif np.ndim(seed) == 0:
            seeds = int(seed) + np.arange(K)
        else:
            seeds = np.asarray(seed, dtype=np.int64).reshape(-1)
            if len(seeds) != K:
                raise ValueError(f"got {len(seeds)} seeds for {K} worlds")
        if options.get("block_pose") is not None:
            blocks = self._checked(options["block_pose"], (K, 3), "block_pose")
        else:
            blocks = self.sample_initial_blocks(seeds)
        if options.get("joint_pos") is not None:
            q = self._checked(options["joint_pos"], (K, 7), "joint_pos")
            if np.any(q < self.kinematics.q_min) or np.any(q > self.kinematics.q_max):
                raise ValueError("joint_pos outside the Panda's joint limits")
        elif options.get("pusher_xy") is not None:
            xy = self._checked(options["pusher_xy"], (K, 2), "pusher_xy")
            ik = DifferentialIKConfig(iterations=30, damping=0.01, nullspace_gain=0.05)
            res = self.kinematics.solve_ik(np.c_[xy, np.full(K, self._tool_height)], self._R_tool,
                                           np.tile(self.q_start, (K, 1)), q_rest=self.q_start, config=ik)
            q = res.q
        else:
            q = np.tile(self.q_start, (K, 1))
        self._q[worlds] = q
        self._dq[worlds] = 0.0
        self._pusher_v[worlds] = 0.0
        self._pusher_xy[worlds] = self.kinematics.tool_pose(q)[:, :2, 3]
        self.physics.set_block_poses(worlds, blocks)
        self.physics.set_pusher_positions(worlds, self._pusher_xy[worlds])
        self.elapsed_steps[worlds] = 0
        self._needs_reset = False
        obs = self._observe()
        info = self.score(obs)
        info["episode_seed"] = seeds
        return obs, info

    # ------------------------------------------------------------------ stepping
    def step(
        self, actions: np.ndarray, body_wrench: np.ndarray | None = None, block_springs: BlockSprings | None = None
    ) -> tuple[Observation, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Advance every world by one control period.

        Args:
            actions: [N, 2] pusher targets (x, y) [m], world frame.
            body_wrench: optional [N, 2, 6] external wrench per body (block, pusher) per world:
                (force [N], torque [N m]) in the world frame about the body's centre of mass.
            block_springs: optional visual-force springs pulling blocks to target poses (the
                correction's output, see ``twin.perception.correction``), applied through the same wrench input.
        Returns:
            ``obs, reward [N], terminated [N], truncated [N], info``. ``reward`` is gym-pusht's
            ``clip(coverage / success_coverage, 0, 1)``; ``terminated`` = success;
            ``info`` holds per-world ``is_success``, ``coverage``, ``pos_error_m``, ``yaw_error_rad``,
            ``action_clamped``, ``ik_unreachable`` and ``joint_limit_clamped``.
        """
        if self._needs_reset:
            raise RuntimeError("call reset() before step()")
        N = self.num_worlds
        actions = self._checked(actions, (N, 2), "actions")
        ws, robot = self.config.workspace, self.config.robot
        target = ws.clip(actions)
        clamped = np.any(target != actions, axis=1)
        max_step = robot.max_pusher_speed_m_s * self.dt
        delta = target - self._pusher_xy
        dist = np.linalg.norm(delta, axis=1, keepdims=True)
        too_far = dist[:, 0] > max_step
        clamped |= too_far
        # this step's pusher velocity: towards the target under the speed cap, braking to stop there,
        # changing by at most the acceleration cap per step
        a = robot.max_pusher_accel_m_s2
        speed = np.minimum(np.minimum(dist / self.dt, robot.max_pusher_speed_m_s), np.sqrt(2.0 * a * dist))
        dv = delta / np.maximum(dist, 1e-12) * speed - self._pusher_v
        dv_norm = np.linalg.norm(dv, axis=1, keepdims=True)
        target = self._pusher_xy + (self._pusher_v + dv * np.minimum(1.0, a * self.dt / np.maximum(dv_norm, 1e-12))) * self.dt

        goal3 = np.c_[target, np.full(N, self._tool_height)]
        ik = self.kinematics.solve_ik(goal3, self._R_tool, self._q, q_rest=self.q_start, config=robot.ik)
        dq_step = np.clip(ik.q - self._q, -self._dq_max * self.dt, self._dq_max * self.dt)
        velocity_clamped = np.any(np.abs(ik.q - self._q) > self._dq_max * self.dt + 1e-12, axis=1)
        return self._advance(dq_step, body_wrench, block_springs, {
            "action_clamped": clamped,
            "ik_unreachable": ik.unreachable,
            "joint_limit_clamped": ik.limit_clamped | velocity_clamped,
        })

    def _advance(self, dq_step: np.ndarray, body_wrench: np.ndarray | None, block_springs: BlockSprings | None,
                 flags: dict[str, np.ndarray]) -> tuple[Observation, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Move the joints by ``dq_step`` [N, 7] over one control period (linear in joint space across
        the substeps, the pusher placed by FK), step the physics and score."""
        S = self.config.physics.substeps
        frac = np.linspace(0.0, 1.0, S + 1)[:, None, None]
        q_path = self._q[None] + frac * dq_step[None]  # [S+1, N, 7]
        tool_xy = self.kinematics.tool_pose(q_path)[..., :2, 3]  # [S+1, N, 2]
        tool_xy[0] = self._pusher_xy  # the step starts exactly where the last one ended
        self.physics.step(tool_xy, self.dt, body_wrench, block_springs)

        self._q = q_path[-1]
        self._dq = dq_step / self.dt
        self._pusher_v = (tool_xy[-1] - tool_xy[0]) / self.dt
        self._pusher_xy = tool_xy[-1]
        self.elapsed_steps += 1
        obs = self._observe()
        info = self.score(obs)
        info.update(flags)
        reward = np.clip(info["coverage"] / self.config.goal.success_coverage, 0.0, 1.0)
        terminated = info["is_success"].copy()
        truncated = self.elapsed_steps >= self.config.max_episode_steps
        return obs, reward, terminated, truncated, info

    def step_joints(
        self, joint_targets: np.ndarray, body_wrench: np.ndarray | None = None, block_springs: BlockSprings | None = None
    ) -> tuple[Observation, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Advance every world by one control period with the arm driven by joint targets [N, 7] rad
        instead of pusher targets (a robot that follows measured joints, e.g. the simulated workspace's
        truth driven by the follower). Targets are clamped to the joint limits and the joints move
        towards them under the velocity limits; everything else is as in ``step``."""
        if self._needs_reset:
            raise RuntimeError("call reset() before step_joints()")
        q_target = self._checked(joint_targets, (self.num_worlds, 7), "joint_targets")
        limited = np.clip(q_target, self.kinematics.q_min, self.kinematics.q_max)
        dq_step = np.clip(limited - self._q, -self._dq_max * self.dt, self._dq_max * self.dt)
        clamped = np.any(np.abs(q_target - self._q - dq_step) > 1e-9, axis=1)
        return self._advance(dq_step, body_wrench, block_springs, {"joint_limit_clamped": clamped})

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _checked(x: Any, shape: tuple[int, ...], name: str) -> np.ndarray:
        try:
            arr = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} must be numeric with shape {shape}") from exc
        if arr.shape != shape:
            raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
        if not np.all(np.isfinite(arr)):
            bad = np.unique(np.nonzero(~np.isfinite(arr))[0])
            raise ValueError(f"{name} holds non-finite values in rows {bad.tolist()}")
        return arr

    def _observe(self) -> Observation:
        poses = self.physics.body_poses()
        block = np.c_[poses[:, BLOCK, :2], quat_wxyz_to_yaw(poses[:, BLOCK, 3:])]
        return Observation(
            pusher_xy=self._pusher_xy.copy(),
            block_pose=block,
            keypoints=block_keypoints(self.config.block, block),
            joint_pos=self._q.copy(),
            joint_vel=self._dq.copy(),
            body_poses=poses,
        )

    def score(self, obs: Observation) -> dict[str, Any]:
        """Per world: goal coverage, success (gym-pusht's rule), and the block's position [m] and yaw [rad]
        errors to the goal, for an observation of this env."""
        cov = coverage(self.config.block, obs.block_pose, self._goal)
        pos_err, yaw_err = planar_pose_error(obs.block_pose, self._goal)
        return {
            "coverage": cov,
            "is_success": cov >= self.config.goal.success_coverage,
            "pos_error_m": pos_err,
            "yaw_error_rad": yaw_err,
        }

    def place_blocks(self, poses: np.ndarray, worlds: np.ndarray | None = None) -> Observation:
        """Put the blocks of ``worlds`` (default: all) at rest at planar ``poses`` [K, 3] (x [m], y [m],
        yaw [rad], world frame) between steps, without resetting the episode: the live loop's answer to a
        block the twin has lost (re-localisation). Returns the new observation."""
        worlds = np.arange(self.num_worlds) if worlds is None else np.asarray(worlds, dtype=np.int64).reshape(-1)
        if worlds.size and (worlds.min() < 0 or worlds.max() >= self.num_worlds):
            raise ValueError(f"worlds must be in [0, {self.num_worlds}), got {worlds}")
        poses = self._checked(poses, (len(worlds), 3), "poses")
        self.physics.set_block_poses(worlds, poses)
        return self._observe()

    # ------------------------------------------------------------------ state for other modules
    def get_state(self, world: int = 0, meta: dict[str, Any] | None = None) -> TwinState:
        """World ``world``'s full state (`twin.state`): ``set_state`` continues exactly from it."""
        body_q, body_qd = self.physics.raw_body_state()
        return TwinState(self._q[world].copy(), self._dq[world].copy(), self._pusher_xy[world].copy(),
                         self._pusher_v[world].copy(), body_q[world], body_qd[world], int(self.elapsed_steps[world]),
                         self.config.block, dict(meta or {}))

    def set_state(self, state: TwinState, worlds: np.ndarray | None = None) -> Observation:
        """Put ``worlds`` (default: all) in ``state`` (between steps; needs the state's block: see
        ``set_block_shape``). Returns the new observation."""
        if state.block != self.config.block:
            raise ValueError(f"the state's block {state.block} is not this twin's {self.config.block}")
        worlds = np.arange(self.num_worlds) if worlds is None else np.asarray(worlds, dtype=np.int64).reshape(-1)
        if worlds.size and (worlds.min() < 0 or worlds.max() >= self.num_worlds):
            raise ValueError(f"worlds must be in [0, {self.num_worlds}), got {worlds}")
        if np.any(state.joint_pos < self.kinematics.q_min) or np.any(state.joint_pos > self.kinematics.q_max):
            raise ValueError("the state's joints are outside the Panda's joint limits")
        self._q[worlds], self._dq[worlds] = state.joint_pos, state.joint_vel
        self._pusher_xy[worlds], self._pusher_v[worlds] = state.pusher_xy, state.pusher_vel
        K = len(worlds)
        self.physics.set_raw_body_state(worlds, np.broadcast_to(state.body_q, (K, 2, 7)),
                                        np.broadcast_to(state.body_qd, (K, 2, 6)))
        self.elapsed_steps[worlds] = state.elapsed_steps
        self._needs_reset = False
        return self._observe()

    def observe(self) -> Observation:
        """The current observation of every world (what the last ``reset``/``step`` returned)."""
        return self._observe()

    def joint_positions(self) -> np.ndarray:
        """Current arm joints [N, 7] rad."""
        return self._q.copy()

    @property
    def goal_pose(self) -> np.ndarray:
        """Goal (x, y, yaw) of the block [m, rad], world frame."""
        return self._goal.copy()

    def link_poses(self) -> np.ndarray:
        """Arm link poses ``T_world_link`` [N, 9, 4, 4] (panda_link0..panda_link8)."""
        return self.kinematics.link_poses(self._q)

    def body_poses(self) -> np.ndarray:
        """Physics body poses [N, 2, 7] (block, pusher) as (x, y, z, qw, qx, qy, qz), world frame."""
        return self.physics.body_poses()
