"""Scripted PushT expert: sampling-based push planning in parallel twin worlds.

At each decision the expert samples candidate **push primitives** on the T's outline (contact point,
push direction within +-30 degrees of the inward normal, push distance), simulates every candidate's
push in a separate planning twin (one world per candidate, all stepped together), and executes the one
whose simulated result is closest to the goal. Execution = travel around the block (along an inflated
outline, so the pusher never drags the block on the way) to a point just before the contact, then the
push. Where that travel leaves the workspace (the robot's targets are clamped into it, so the pusher
runs along the edge and may drag the block), the candidate is simulated travel included
(``ExpertConfig.simulate_leaving_travel``). It replans after every push, so it is closed-loop:
disturbances and model error are absorbed.
Near the goal the pushes are finer and slower, and the pusher backs off and waits after each (see
``ExpertConfig.fine_within_m``); at the goal it backs off and holds (``ExpertConfig.hold_margin``).
Pushes that leave part of the T where the pusher cannot get behind it are penalised
(``ExpertConfig.keep_in_m``).

Units: metres, radians, world frame. The expert plans with the twin's own physics (the twin config it
is given); it is the virtual operator for demo collection and the default deployment policy.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import shapely
import shapely.ops

from twin.transforms import wrap_angle
from twin.config import TwinConfig
from twin.env import Observation, PushTEnv
from twin.pusht import block_keypoints, coverage, planar_pose_error

from ._expert_config import LIVE_EXPERT, ExpertConfig
from .base import Policy

__all__ = ["ExpertConfig", "LIVE_EXPERT", "PushTExpert"]


@dataclass
class _Plan:
    """A polyline the pusher follows, with a speed per vertex-to-vertex segment."""

    points: np.ndarray  # [P, 2]
    speeds: np.ndarray  # [P - 1] m/s
    progress: float = 0.0  # arc length reached by the carrot [m]
    dwell: int = 0  # control steps spent at the end point once reached
    #: Lengths [P - 1] of the segments [m], and their running sum: the points do not change.
    _seg: np.ndarray = field(init=False, repr=False)
    _ends: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._seg = np.linalg.norm(np.diff(self.points, axis=0), axis=1)
        self._ends = np.cumsum(self._seg)

    @property
    def length(self) -> float:
        return float(self._ends[-1]) if len(self._ends) else 0.0

    @property
    def duration(self) -> float:
        """Seconds to follow the polyline at its speeds, the dwell at its end not counted."""
        return float(np.sum(self._seg / self.speeds))

    def advance(self, dt: float) -> np.ndarray:
        if self.progress >= self.length - 1e-9 and self.dwell > 0:
            self.dwell -= 1
            return self.points[-1].copy()
        seg, ends = self._seg, self._ends
        i = min(int(np.searchsorted(ends, self.progress, side="right")), len(seg) - 1)
        self.progress = min(self.progress + self.speeds[i] * dt, float(ends[-1]))
        i = min(int(np.searchsorted(ends, self.progress, side="left")), len(seg) - 1)
        start = ends[i] - seg[i]
        t = 0.0 if seg[i] == 0 else (self.progress - start) / seg[i]
        return self.points[i] + t * (self.points[i + 1] - self.points[i])

    @property
    def done(self) -> bool:
        return self.progress >= self.length - 1e-9 and self.dwell <= 0


@dataclass
class _Candidates:
    start_xy: np.ndarray  # [C, 2] pusher position where the push starts (clear of the block)
    direction: np.ndarray  # [C, 2] unit push direction
    distance: np.ndarray  # [C] total push path length [m]
    speed: np.ndarray  # [C] push speed [m/s]
    fine: bool = False  # near-goal pushes (see ExpertConfig.fine_within_m)


class PushTExpert(Policy):
    """Closed-loop push planner over parallel twin worlds. See the module docstring."""

    def __init__(self, twin_config: TwinConfig, config: ExpertConfig = ExpertConfig(), num_worlds: int | None = None) -> None:
        self.twin_config = twin_config
        self.config = config
        self.num_worlds = twin_config.num_worlds if num_worlds is None else num_worlds
        self.dt = 1.0 / twin_config.control_hz
        self._planner = PushTEnv(replace(twin_config, num_worlds=config.planner_worlds))
        self._plans: list[list[_Plan]] = [[] for _ in range(self.num_worlds)]
        self._last_dir = np.zeros((self.num_worlds, 2))
        self._plan_pose = np.zeros((self.num_worlds, 3))  # block pose each world's plan was made for
        self._prev_pose = np.full((self.num_worlds, 3), np.nan)  # block pose at the previous act()
        self.decisions = 0
        self.replans = 0

    def set_twin_config(self, config: TwinConfig) -> None:
        """Plan with ``config`` from now on (e.g. the measured block's shape); plans are dropped."""
        self.twin_config = config
        self._planner = PushTEnv(replace(config, num_worlds=self.config.planner_worlds))
        self.reset()

    def reset(self, worlds: np.ndarray | None = None, seeds: np.ndarray | None = None) -> None:  # deterministic
        for w in range(self.num_worlds) if worlds is None else np.asarray(worlds).reshape(-1):
            self._plans[int(w)] = []
            self._prev_pose[int(w)] = np.nan

    # ------------------------------------------------------------------ acting
    def act(self, obs: Observation, active: np.ndarray | None = None) -> np.ndarray:
        if obs.pusher_xy.shape[0] != self.num_worlds:
            raise ValueError(f"expert built for {self.num_worlds} worlds, got {obs.pusher_xy.shape[0]}")
        active = np.ones(self.num_worlds, dtype=bool) if active is None else np.asarray(active, dtype=bool)
        for w in np.flatnonzero(active):
            if self._plans[w] and self._surprised(w, obs.block_pose[w]):
                self._plans[w] = []  # the block is not where the plan expects it: plan again
                self.replans += 1
            self._prev_pose[w] = obs.block_pose[w]
        need = [w for w in range(self.num_worlds) if active[w] and not self._plans[w]]
        if need:
            self._plan(obs, np.array(need))
        ws = self.twin_config.workspace
        actions = obs.pusher_xy.copy()
        for w in np.flatnonzero(active):
            plan = self._plans[w][0]
            # a travel round the block may leave the workspace; the robot gets its targets clamped into it
            # (PushTEnv.step), so the expert emits them clamped: a dataset records no target past the edge
            actions[w] = ws.clip(plan.advance(self.dt))
            if plan.done:
                self._plans[w].pop(0)
        return actions

    def _surprised(self, w: int, pose: np.ndarray) -> bool:
        """The block moved while the pusher was only travelling to its push, or jumped between two steps
        further than a push moves it (a nudge, or a live twin's correction)."""
        cfg = self.config

        def moved(a: np.ndarray, b: np.ndarray, scale: float) -> bool:
            (pos,), (yaw,) = planar_pose_error(a, b)
            return pos > scale * cfg.replan_moved_m or yaw > scale * np.deg2rad(cfg.replan_moved_deg)

        travelling = len(self._plans[w]) == 2  # [travel, push]: the block should be at rest
        if travelling and moved(pose, self._plan_pose[w], 1.0):
            return True
        return bool(np.all(np.isfinite(self._prev_pose[w])) and moved(pose, self._prev_pose[w], 3.0))

    # ------------------------------------------------------------------ planning
    def _plan(self, obs: Observation, worlds: np.ndarray) -> None:
        at_goal = self._at_goal(obs.block_pose[worlds])
        for w in worlds[at_goal]:
            self._plans[w] = [self._hold(obs.pusher_xy[w], obs.block_pose[w])]
        worlds = worlds[~at_goal]
        if len(worlds) == 0:
            return
        cands = [self._candidates(obs.block_pose[w]) for w in worlds]
        best = self._evaluate(obs, worlds, cands)
        for k, w in enumerate(worlds):
            c, i = cands[k], best[k]
            if i < 0:  # no push reachable from inside the workspace: back off to the start position
                home = np.asarray(self.twin_config.robot.start_xy_m, dtype=np.float64)
                path = self._travel_path(obs.pusher_xy[w], home, obs.block_pose[w])
                self._plans[w] = [_Plan(path, np.full(len(path) - 1, self.config.travel_speed_m_s))]
                continue
            travel = self._travel_path(obs.pusher_xy[w], c.start_xy[i], obs.block_pose[w])
            end = c.start_xy[i] + c.direction[i] * c.distance[i]
            if c.fine:  # push, back off, wait
                push = _Plan(np.stack([c.start_xy[i], end, end - c.direction[i] * self.config.fine_retreat_m]),
                             np.full(2, c.speed[i]), dwell=self.config.fine_settle_steps)
            else:
                push = _Plan(np.stack([c.start_xy[i], end]), np.array([c.speed[i]]))
            self._plans[w] = [_Plan(travel, np.full(len(travel) - 1, self.config.travel_speed_m_s)), push]
            self._last_dir[w] = c.direction[i]
        self._plan_pose[worlds] = obs.block_pose[worlds]
        self.decisions += len(worlds)

    def _at_goal(self, block_poses: np.ndarray) -> np.ndarray:
        """[N] bool: blocks at ``block_poses`` [N, 3] cover the goal well enough to stop pushing."""
        if self.config.hold_margin is None:
            return np.zeros(len(block_poses), dtype=bool)
        goal = self.twin_config.goal
        cov = coverage(self.twin_config.block, block_poses, goal.pose)
        return cov >= goal.success_coverage + self.config.hold_margin

    def _hold(self, pusher_xy: np.ndarray, block_pose: np.ndarray) -> _Plan:
        """Move the pusher straight away from the block until it is ``approach_m`` clear, then hold it."""
        cfg, tc = self.config, self.twin_config
        clear = tc.physics.pusher_radius_m + cfg.approach_m
        poly = shapely.Polygon(block_keypoints(tc.block, block_pose[None])[0])
        point = shapely.Point(pusher_xy)
        gap = poly.distance(point)
        end = pusher_xy.copy()
        if gap < clear:
            near = np.array(shapely.ops.nearest_points(poly.exterior, point)[0].coords[0])
            away = pusher_xy - near
            if gap == 0.0:  # the pusher's centre is inside the outline: leave the way it is closest out
                away = -away
            away = away / max(float(np.linalg.norm(away)), 1e-9)
            end = near + away * clear
        return _Plan(np.stack([pusher_xy, end]), np.array([cfg.fine_push_speed_m_s]), dwell=cfg.hold_steps)

    def _candidates(self, block_pose: np.ndarray) -> _Candidates:
        cfg, tc = self.config, self.twin_config
        r = tc.physics.pusher_radius_m
        (pos,), (yaw,) = planar_pose_error(block_pose[None], tc.goal.pose)
        fine = bool(pos < cfg.fine_within_m and yaw < np.deg2rad(cfg.fine_within_deg))
        distances = cfg.fine_push_distances_m if fine else cfg.push_distances_m
        speed = cfg.fine_push_speed_m_s if fine else cfg.push_speed_m_s
        outline = block_keypoints(tc.block, block_pose[None])[0]
        poly = shapely.Polygon(outline)
        ring = np.vstack([outline, outline[:1]])
        seg = np.diff(ring, axis=0)
        seg_len = np.linalg.norm(seg, axis=1)
        cum = np.concatenate([[0.0], np.cumsum(seg_len)])
        s = (np.arange(cfg.contacts) + 0.5) * cum[-1] / cfg.contacts
        e = np.clip(np.searchsorted(cum, s, side="right") - 1, 0, len(seg) - 1)
        contact = ring[e] + seg[e] * ((s - cum[e]) / seg_len[e])[:, None]
        tangent = seg[e] / seg_len[e][:, None]
        normal = np.c_[tangent[:, 1], -tangent[:, 0]]  # outward for a counter-clockwise ring
        if poly.exterior.is_ccw is False:
            normal = -normal
        starts: list[np.ndarray] = []
        dirs: list[np.ndarray] = []
        dists: list[float] = []
        ws = tc.workspace
        for c, n in zip(contact, normal):
            start = c + n * (r + cfg.approach_m)
            if poly.distance(shapely.Point(start)) < r + 0.5 * cfg.approach_m:
                continue  # inside the T's pocket, too close to the stem
            if ws.distance_outside(start) > r:
                continue  # the pusher cannot get there
            for a in cfg.push_angles_rad:
                ca, sa = np.cos(a), np.sin(a)
                d = -np.array([ca * n[0] - sa * n[1], sa * n[0] + ca * n[1]])
                for dist in distances:
                    starts.append(start)
                    dirs.append(d)
                    dists.append(cfg.approach_m + dist)
        return _Candidates(np.array(starts).reshape(-1, 2), np.array(dirs).reshape(-1, 2), np.array(dists),
                           np.full(len(dists), speed), fine)

    def _evaluate(self, obs: Observation, worlds: np.ndarray, cands: list[_Candidates]) -> list[int]:
        """Simulate every candidate push in the planning twin; index of the best per world (-1: none).
        Fine pushes are scored over their nominal and shifted paths (``ExpertConfig.robust_offsets_m``)."""
        cfg = self.config
        if not any(len(c.distance) for c in cands):
            return [-1] * len(cands)
        owner = np.concatenate([np.full(len(c.distance), k) for k, c in enumerate(cands)])
        start = np.concatenate([c.start_xy for c in cands])
        direction = np.concatenate([c.direction for c in cands])
        distance = np.concatenate([c.distance for c in cands])
        speed = np.concatenate([c.speed for c in cands])
        blocks = obs.block_pose[worlds][owner]
        ends = self._simulate(blocks, start, direction, distance, speed)
        # Pushes whose travel leaves the workspace: the robot's clamped targets run along the edge instead,
        # and can drag the block; those pushes are simulated travel included.
        travels = self._travels_leaving_workspace(obs, worlds, cands) if cfg.simulate_leaving_travel else {}
        via = np.array(sorted(travels), dtype=np.int64)
        if len(via):
            ends[via] = self._simulate_with_travel(blocks[via], [travels[i] for i in via], direction[via], distance[via], speed[via])
        cost = self._cost(ends)
        moved_m = np.linalg.norm(ends[:, :2] - blocks[:, :2], axis=1)
        moved_rad = np.abs(wrap_angle(ends[:, 2] - blocks[:, 2]))
        idle = (moved_m < cfg.min_push_effect_m) & (moved_rad < np.deg2rad(cfg.min_push_effect_deg))
        for k, c in enumerate(cands):  # away from the goal, a push that leaves the block where it is is no push
            mine = owner == k
            if not c.fine and np.any(mine & ~idle):
                cost[mine & idle] = np.inf
        offsets = np.asarray(cfg.robust_offsets_m, dtype=np.float64).reshape(-1, 2)
        fine = [k for k, c in enumerate(cands) if c.fine and len(c.distance)] if len(offsets) else []
        if fine:
            best = np.concatenate([np.flatnonzero(owner == k)[np.argsort(cost[owner == k])[: cfg.robust_top_k]] for k in fine])
            V = len(offsets)
            idx = np.repeat(best, V)
            along, across = np.tile(offsets, (len(best), 1)).T
            d = direction[idx]
            shifted = start[idx] + d * along[:, None] + np.c_[-d[:, 1], d[:, 0]] * across[:, None]
            shifted_cost = self._cost(self._simulate(blocks[idx], shifted, d, distance[idx], speed[idx]))
            mean = (cost[best] + shifted_cost.reshape(-1, V).sum(axis=1)) / (V + 1)
            cost[np.isin(owner, fine)] = np.inf  # fine worlds choose among their re-simulated pushes
            cost[best] = mean
        return [int(np.argmin(cost[owner == k])) if np.any(owner == k) else -1 for k in range(len(cands))]

    def _cost(self, block_poses: np.ndarray) -> np.ndarray:
        """Cost [N] of blocks ending at ``block_poses`` [N, 3]: goal error plus the keep-in penalty."""
        cfg = self.config
        pos, yaw = planar_pose_error(block_poses, self._planner.goal_pose)
        return pos / cfg.position_scale_m + yaw / cfg.yaw_scale_rad + self.keep_in_penalty(block_poses)

    def _simulate(self, blocks: np.ndarray, start: np.ndarray, direction: np.ndarray, distance: np.ndarray,
                  speed: np.ndarray) -> np.ndarray:
        """Block poses [M, 3] after M pushes from ``start`` [M, 2] along ``direction`` [M, 2] for ``distance``
        [M] m at ``speed`` [M] m/s, each block starting at ``blocks`` [M, 3], in chunks of the planning
        twin's worlds."""
        P = self._planner.num_worlds
        ws = self.twin_config.workspace
        begin = ws.clip(start)  # the pusher gets there clamped, as every target is
        out = np.empty((len(distance), 3))
        for lo in range(0, len(distance), P):
            idx = np.arange(lo, min(lo + P, len(distance)))
            pad = np.concatenate([idx, np.full(P - len(idx), idx[0])])
            self._planner.reset(seed=0, options={"block_pose": blocks[pad], "pusher_xy": begin[pad]})
            steps = int(np.ceil(np.max(distance[pad] / (speed[pad] * self.dt)))) + 2
            for k in range(1, steps + 1):
                travelled = np.minimum(k * speed[pad] * self.dt, distance[pad])
                o, *_ = self._planner.step(start[pad] + direction[pad] * travelled[:, None])
            out[idx] = o.block_pose[: len(idx)]
        return out

    def _travels_leaving_workspace(self, obs: Observation, worlds: np.ndarray, cands: list[_Candidates]) -> dict[int, np.ndarray]:
        """The travels to the candidates' push starts that leave the workspace by more than 1 mm, keyed by
        the candidate's index in the concatenation of ``cands``: each path [P, 2] from its last vertex
        before it leaves the workspace (the part before runs inside it and clear of the block, and leaves
        the block where it is) to the push start. The workspace is a rectangle, so a polyline leaves it
        exactly when one of its vertices does."""
        ws = self.twin_config.workspace
        out: dict[int, np.ndarray] = {}
        first = 0
        for k, c in enumerate(cands):
            w = worlds[k]
            starts, which = np.unique(c.start_xy, axis=0, return_inverse=True)
            for u, s in enumerate(starts):
                path = self._travel_path(obs.pusher_xy[w], s, obs.block_pose[w])
                outside = ws.distance_outside(path) > 1e-3
                if outside.any():
                    tail = path[max(int(np.argmax(outside)) - 1, 0):]
                    for i in np.flatnonzero(which.reshape(-1) == u):
                        out[first + int(i)] = tail
            first += len(c.distance)
        return out

    def _simulate_with_travel(self, blocks: np.ndarray, travels: list[np.ndarray], direction: np.ndarray,
                              distance: np.ndarray, speed: np.ndarray) -> np.ndarray:
        """Block poses [M, 3] after M travels (polylines [P, 2] to the push starts, the pusher starting at
        their first vertex, at the travel speed, targets clamped into the workspace as the robot's are),
        each followed by its push along ``direction`` [M, 2] for ``distance`` [M] m at ``speed`` [M] m/s,
        in chunks of the planning twin's worlds."""
        P = self._planner.num_worlds
        ws = self.twin_config.workspace
        plans = [_Plan(np.vstack([t, t[-1] + d * dist]), np.r_[np.full(len(t) - 1, self.config.travel_speed_m_s), v])
                 for t, d, dist, v in zip(travels, direction, distance, speed)]
        out = np.empty((len(distance), 3))
        for lo in range(0, len(distance), P):
            idx = np.arange(lo, min(lo + P, len(distance)))
            pad = np.concatenate([idx, np.full(P - len(idx), idx[0])])
            targets = ws.clip(np.array([travels[i][0] for i in pad]))
            self._planner.reset(seed=0, options={"block_pose": blocks[pad], "pusher_xy": targets})
            mine = [plans[i] for i in idx]
            steps = int(np.ceil(max(p.duration for p in mine) / self.dt)) + 2
            for _ in range(steps):
                targets[: len(idx)] = [p.advance(self.dt) for p in mine]
                o, *_ = self._planner.step(targets)
            out[idx] = o.block_pose[: len(idx)]
        return out

    def keep_in_penalty(self, block_poses: np.ndarray) -> np.ndarray:
        """Cost [N] of blocks at ``block_poses`` [N, 3] (x, y, yaw; m, rad) whose outline comes closer than
        ``keep_in_m`` to the edge of the pusher's workspace: a block the pusher cannot get behind is lost."""
        cfg, ws = self.config, self.twin_config.workspace
        corners = block_keypoints(self.twin_config.block, block_poses)  # [N, 8, 2]
        outside = np.max(ws.distance_outside(corners), axis=1) + cfg.keep_in_m
        return cfg.keep_in_weight * np.maximum(outside, 0.0) / cfg.position_scale_m

    def _travel_path(self, frm: np.ndarray, to: np.ndarray, block_pose: np.ndarray) -> np.ndarray:
        """Polyline [P, 2] from ``frm`` to ``to`` that keeps the pusher clear of the block: straight
        when possible, else out to an inflated outline and around it the short way."""
        tc = self.twin_config
        r = tc.physics.pusher_radius_m
        poly = shapely.Polygon(block_keypoints(tc.block, block_pose[None])[0])
        keep_out = poly.buffer(r + 0.5 * self.config.travel_clearance_m)
        if not shapely.LineString([frm, to]).intersects(keep_out):
            return np.stack([frm, to])
        ring = poly.buffer(r + self.config.travel_clearance_m, join_style="mitre").exterior
        # leave the block first when touching it: move straight away from the nearest outline point
        near = np.array(shapely.ops.nearest_points(poly, shapely.Point(frm))[0].coords[0])
        away = frm - near
        away = away / max(np.linalg.norm(away), 1e-9)
        exit_pt = frm
        if poly.distance(shapely.Point(frm)) < r + self.config.travel_clearance_m:
            exit_pt = near + away * (r + self.config.travel_clearance_m)
        a, b = ring.project(shapely.Point(exit_pt)), ring.project(shapely.Point(to))
        L = ring.length
        fwd = (b - a) % L
        n = max(2, int(np.ceil(min(fwd, L - fwd) / 0.02)))
        ts = a + np.linspace(0, fwd if fwd <= L - fwd else fwd - L, n)
        around = np.array([ring.interpolate(t % L).coords[0] for t in ts])
        return np.vstack([frm[None], exit_pt[None], around, to[None]])
