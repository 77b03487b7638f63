"""The scripted PushT expert solves seeded episodes in the twin."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
import shapely.ops

from policies.evaluation import run_episodes
from policies.expert import ExpertConfig, PushTExpert
from twin.config import TwinConfig
from twin.env import PushTEnv
from twin.pusht import block_keypoints, planar_pose_error


@pytest.mark.slow  # 35-45 s on 2 cores; benchmarks/expert.py measures the expert's success on 50 seeds
def test_expert_solves_a_small_seeded_set() -> None:
    result = run_episodes(TwinConfig(), episode_seeds=[0, 1, 2, 3])
    assert result["episodes"] == 4
    assert result["success_rate"] >= 0.75, result["per_episode"]
    for ep in result["per_episode"]:
        if ep["success"]:
            assert ep["coverage"] >= 0.95 and ep["steps"] <= 300


@pytest.mark.slow
def test_expert_success_rate_on_twenty_episodes() -> None:
    result = run_episodes(TwinConfig(), episode_seeds=list(range(100, 120)))
    assert result["success_rate"] >= 0.8, result["per_episode"]


def test_expert_actions_stay_clear_of_the_block_while_travelling() -> None:
    cfg = TwinConfig(num_worlds=1)
    env = PushTEnv(cfg)
    expert = PushTExpert(cfg, ExpertConfig(contacts=8, planner_worlds=96))
    obs, _ = env.reset(options={"block_pose": [[0.55, 0.0, 0.3]], "pusher_xy": [[0.40, 0.25]]})
    first = expert.act(obs)
    assert first.shape == (1, 2) and np.all(np.isfinite(first))
    travel = expert._plans[0][0].points if expert._plans[0] else None
    assert travel is not None
    import shapely

    from twin.pusht import block_keypoints

    poly = shapely.Polygon(block_keypoints(cfg.block, obs.block_pose)[0])
    line = shapely.LineString(travel)
    assert line.distance(poly) >= cfg.physics.pusher_radius_m  # travel never sweeps through the block


def test_inactive_worlds_hold_position() -> None:
    cfg = TwinConfig(num_worlds=2)
    env = PushTEnv(cfg)
    expert = PushTExpert(cfg, ExpertConfig(contacts=8, planner_worlds=96))
    obs, _ = env.reset(seed=0)
    actions = expert.act(obs, active=np.array([False, True]))
    np.testing.assert_array_equal(actions[0], obs.pusher_xy[0])
    assert not expert._plans[0] and expert._plans[1]


def test_expert_plans_again_when_the_block_is_moved_under_it() -> None:
    """A nudge (or a live twin's correction) moves the block while the pusher travels: the plan made for
    the old pose is dropped and the next push is planned for the new one."""
    cfg = TwinConfig(num_worlds=1)
    env = PushTEnv(cfg)
    expert = PushTExpert(cfg, ExpertConfig(contacts=8, planner_worlds=96))
    obs, _ = env.reset(options={"block_pose": [[0.55, 0.0, 0.3]], "pusher_xy": [[0.40, 0.25]]})
    expert.act(obs)
    obs, *_ = env.step(expert.act(obs))
    assert expert.replans == 0 and len(expert._plans[0]) == 2  # still travelling to its push
    obs = env.place_blocks(np.array([[0.60, -0.05, 0.3]]))
    expert.act(obs)
    assert expert.replans == 1
    np.testing.assert_allclose(expert._plan_pose[0], [0.60, -0.05, 0.3], atol=1e-6)


def _small_expert(num_worlds: int, **settings) -> tuple[TwinConfig, ExpertConfig, PushTEnv, PushTExpert]:
    """A twin of ``num_worlds`` worlds and an expert with a small planner (8 contacts, 96 worlds)."""
    cfg = TwinConfig(num_worlds=num_worlds)
    ecfg = ExpertConfig(contacts=8, planner_worlds=96, **settings)
    return cfg, ecfg, PushTEnv(cfg), PushTExpert(cfg, ecfg)


@pytest.mark.parametrize("min_push_effect_m", [0.0, 0.003])
def test_a_block_stuck_at_the_edge_is_pushed_not_missed_again_and_again(min_push_effect_m: float) -> None:
    """A block sticking out past y = -0.30, far from the goal: with a small planner every push that moves
    it costs more than leaving it, so without a least effect the expert makes pushes that miss it, and
    the block stays where it is; with one, it moves."""
    _, _, env, expert = _small_expert(1, min_push_effect_m=min_push_effect_m, min_push_effect_deg=2.0 if min_push_effect_m else 0.0)
    start = np.array([0.644, -0.278, 1.143])
    obs, _ = env.reset(options={"block_pose": [start], "pusher_xy": [[0.53, -0.30]]})
    while expert.decisions < 3 or expert._plans[0]:  # three pushes, to the end of the third
        obs, *_ = env.step(expert.act(obs))
    (moved_m,), (moved_rad,) = planar_pose_error(obs.block_pose, start)
    if min_push_effect_m:
        assert moved_m > 0.003 or np.rad2deg(moved_rad) > 2.0, (moved_m, moved_rad)
    else:
        assert moved_m < 0.001 and np.rad2deg(moved_rad) < 0.5, (moved_m, moved_rad)


@pytest.mark.parametrize("simulate_leaving_travel", [False, True])
def test_a_push_whose_clamped_travel_drags_the_block_is_not_chosen(simulate_leaving_travel: bool) -> None:
    """A block near y = -0.30 with its bar past the edge, the pusher at its start position on the far side.
    The push that looks best from its start is made from between the block and the edge; the way there
    leaves the workspace, the robot's clamped targets run along the edge, and the block is dragged. With
    the travel simulated, that push is scored where the dragging leaves the block, and the push chosen is
    one the pusher gets to without moving it."""
    _, _, env, expert = _small_expert(1, simulate_leaving_travel=simulate_leaving_travel)
    start = np.array([0.477, -0.218, np.deg2rad(-102.6)])
    obs, _ = env.reset(options={"block_pose": [start], "pusher_xy": [[0.40, 0.0]]})
    actions = [expert.act(obs)]
    first_travel = expert._plans[0][0].points
    for _ in range(60):  # to the end of the travel (or of the travels, when the block moves and it plans again)
        if len(expert._plans[0]) != 2:
            break
        obs, *_ = env.step(actions[-1])
        actions.append(expert.act(obs))
    (moved_m,), (moved_rad,) = planar_pose_error(obs.block_pose, start)
    if simulate_leaving_travel:
        assert moved_m < 0.003 and np.rad2deg(moved_rad) < 1.0 and expert.replans == 0, (moved_m, moved_rad, expert.replans)
    else:
        assert moved_m > 0.01 and expert.replans >= 1, (moved_m, moved_rad, expert.replans)
        assert np.any(first_travel < env.config.workspace.low - 0.005)  # the planned travel leaves the workspace
    # the expert emits its targets clamped into the workspace, as the robot gets them: none past the edge
    ws = env.config.workspace
    assert np.all((np.array(actions) >= ws.low) & (np.array(actions) <= ws.high))


def test_a_travel_leaving_the_workspace_is_simulated_from_its_last_vertex_inside() -> None:
    """The part of a travel before it leaves the workspace runs inside it and clear of the block: the
    simulation starts at the last vertex before the first one outside, and goes on to the push start."""
    _, _, env, expert = _small_expert(1)
    ws = env.config.workspace
    obs, _ = env.reset(options={"block_pose": [[0.477, -0.218, np.deg2rad(-102.6)]], "pusher_xy": [[0.40, 0.0]]})
    cands = [expert._candidates(obs.block_pose[0])]
    travels = expert._travels_leaving_workspace(obs, np.array([0]), cands)
    assert travels  # the block lies at the -y edge: some travels round it leave the workspace
    for i, tail in travels.items():
        whole = expert._travel_path(obs.pusher_xy[0], cands[0].start_xy[i], obs.block_pose[0])
        np.testing.assert_allclose(tail, whole[len(whole) - len(tail):])  # a suffix of the travel
        outside = np.any((whole < ws.low - 1e-3) | (whole > ws.high + 1e-3), axis=1)
        cut = len(whole) - len(tail)
        assert not outside[: cut + 1].any() and outside[cut + 1]  # starts at the last vertex inside
        assert cut >= 1  # this travel starts far from the edge: the part skipped is not empty


def test_near_the_goal_the_expert_pushes_finer_and_slower_and_waits_after() -> None:
    cfg, ecfg, env, expert = _small_expert(2)
    goal = np.asarray(cfg.goal.pose)
    near = goal + np.array([0.008, -0.004, np.deg2rad(4.0)])
    far = goal + np.array([0.10, 0.05, 1.0])
    obs, _ = env.reset(options={"block_pose": np.stack([near, far]), "pusher_xy": [[0.40, 0.25], [0.40, -0.25]]})
    expert.act(obs)
    fine_push, coarse_push = expert._plans[0][-1], expert._plans[1][-1]
    assert fine_push.speeds[0] == ecfg.fine_push_speed_m_s and fine_push.dwell == ecfg.fine_settle_steps
    assert np.linalg.norm(fine_push.points[1] - fine_push.points[0]) <= ecfg.approach_m + max(ecfg.fine_push_distances_m) + 1e-9
    assert np.linalg.norm(fine_push.points[2] - fine_push.points[1]) == pytest.approx(ecfg.fine_retreat_m)  # backs off
    assert coarse_push.speeds[0] == ecfg.push_speed_m_s and coarse_push.dwell == 0
    # the dwell holds the pusher at the push's end for that many steps before the plan is done
    fine_push.progress = fine_push.length
    end = fine_push.points[-1]
    for _ in range(ecfg.fine_settle_steps):
        assert not fine_push.done
        np.testing.assert_allclose(fine_push.advance(0.1), end)
    assert fine_push.done


@pytest.mark.parametrize("yaw_off_deg", [-4.0, 4.0])
def test_with_a_heavy_yaw_weight_a_block_a_few_degrees_off_near_the_goal_is_turned_first(yaw_off_deg: float) -> None:
    # Near the goal a push that only shifts the block barely changes the cost, while a push that turns
    # it also shifts it: with one degree weighing 5 mm (yaw_scale_rad = 2 deg) the expert turns first.
    cfg = TwinConfig(num_worlds=1)
    env = PushTEnv(cfg)
    expert = PushTExpert(cfg, ExpertConfig(yaw_scale_rad=float(np.deg2rad(2.0))))
    goal = np.asarray(cfg.goal.pose)
    obs, _ = env.reset(options={"block_pose": (goal + [0.001, -0.0008, np.deg2rad(yaw_off_deg)])[None],
                                "pusher_xy": [[0.62, -0.12]]})
    while expert.decisions < 2 and env.elapsed_steps[0] < 60:  # the first push, to its end
        obs, *_ = env.step(expert.act(obs))
    (pos,), (yaw,) = planar_pose_error(obs.block_pose, goal)
    assert expert.decisions == 2
    assert np.rad2deg(yaw) < 0.6 * abs(yaw_off_deg), (pos, np.rad2deg(yaw))


def test_blocks_sticking_out_where_the_pusher_cannot_get_behind_them_are_penalised() -> None:
    cfg = TwinConfig(num_worlds=1)
    expert = PushTExpert(cfg, ExpertConfig(contacts=8, planner_worlds=96))
    low_y = cfg.workspace.low[1]
    poses = np.array([
        list(cfg.goal.pose),  # well inside
        [0.54, low_y + 0.09, 0.0],  # centre 9 cm inside, the stem (pointing -y) reaches past the edge
        [0.54, low_y + 0.09, np.pi],  # same centre, the stem points inwards: the bar stays inside
    ])
    penalty = expert.keep_in_penalty(poses)
    assert penalty[0] == 0.0 and penalty[2] == 0.0
    # the stem's end is 4.2 cm past the edge, plus the 2 cm margin: 10 cost units per centimetre
    assert penalty[1] == pytest.approx(10.0 * (0.02 + 0.0421) / 0.01, rel=0.01)


def test_nudge_blocks_moves_each_block_its_own_way_inside_the_start_region() -> None:
    from policies.evaluation import nudge_blocks

    cfg = TwinConfig(num_worlds=2)
    env = PushTEnv(cfg)
    edge_x = cfg.workspace.high[0] - cfg.workspace.block_margin_m  # the start region's edge
    env.reset(options={"block_pose": [[0.50, 0.0, 0.3], [edge_x - 0.01, 0.0, 0.3]], "pusher_xy": [[0.40, 0.25], [0.40, -0.25]]})
    nudge_blocks(env, 0.05, np.array([np.pi / 2, 0.0]))
    after = env.observe().block_pose
    np.testing.assert_allclose(after[0], [0.50, 0.05, 0.3], atol=2e-3)
    np.testing.assert_allclose(after[1], [edge_x, 0.0, 0.3], atol=2e-3)  # clipped where blocks start


def _pusher_touching(cfg: TwinConfig, block_pose: np.ndarray, towards: np.ndarray) -> np.ndarray:
    """A pusher position just outside the block's outline, on the side facing ``towards``."""
    poly = shapely.Polygon(block_keypoints(cfg.block, block_pose[None])[0])
    near = np.array(shapely.ops.nearest_points(poly.exterior, shapely.Point(towards))[0].coords[0])
    out = (towards - near) / np.linalg.norm(towards - near)
    return near + out * (cfg.physics.pusher_radius_m + 0.001)


def test_at_the_goal_the_expert_backs_off_and_holds_still() -> None:
    cfg, ecfg, env, expert = _small_expert(1)
    goal = np.asarray(cfg.goal.pose)
    at_goal = goal + np.array([0.001, 0.0, 0.0])  # coverage 0.984 >= 0.95 + 0.02
    pusher = _pusher_touching(cfg, at_goal, np.array([0.45, -0.10]))
    obs, _ = env.reset(options={"block_pose": at_goal[None], "pusher_xy": pusher[None]})
    for _ in range(3 * ecfg.hold_steps):
        obs, *_ = env.step(expert.act(obs))
    assert expert.decisions == 0  # no push planned, ever
    (moved,), (turned,) = planar_pose_error(obs.block_pose, at_goal)
    assert moved < 5e-4 and turned < np.deg2rad(0.2)  # settling on the table only; a push moves it millimetres
    gap = shapely.Polygon(block_keypoints(cfg.block, obs.block_pose)[0]).distance(shapely.Point(obs.pusher_xy[0]))
    assert gap == pytest.approx(cfg.physics.pusher_radius_m + ecfg.approach_m, abs=2e-3)  # backed off


@pytest.mark.parametrize("hold_margin", [0.02, None])
def test_short_of_the_hold_coverage_or_with_holding_off_the_expert_pushes(hold_margin: float | None) -> None:
    cfg, _, env, expert = _small_expert(1, hold_margin=hold_margin)
    goal = np.asarray(cfg.goal.pose)
    pose = goal + np.array([0.003, 0.0, 0.0]) if hold_margin is not None else goal  # coverage 0.952 / 1.0
    obs, _ = env.reset(options={"block_pose": pose[None], "pusher_xy": [[0.40, 0.20]]})
    expert.act(obs)
    assert expert.decisions == 1 and len(expert._plans[0]) == 2  # travel + push


def test_bad_hold_settings_are_rejected() -> None:
    with pytest.raises(ValueError):
        ExpertConfig(hold_steps=0)
    with pytest.raises(ValueError):
        ExpertConfig(hold_margin=1.0)


def _chosen_push(expert: PushTExpert, w: int) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(start [2], unit direction [2], distance [m], speed [m/s]) of world ``w``'s planned push."""
    push = expert._plans[w][-1]
    start, end = push.points[0], push.points[1]
    distance = float(np.linalg.norm(end - start))
    return start, (end - start) / distance, distance, float(push.speeds[0])


def _costs_over_offsets(expert: PushTExpert, block: np.ndarray, push: tuple, offsets: np.ndarray) -> np.ndarray:
    """Cost of ``push`` from ``block`` along its nominal path (first) and each shifted path."""
    start, d, distance, speed = push
    shifts = np.vstack([[0.0, 0.0], offsets])
    starts = start + d * shifts[:, :1] + np.array([-d[1], d[0]]) * shifts[:, 1:]
    n = len(shifts)
    ends = expert._simulate(np.repeat(block[None], n, 0), starts, np.repeat(d[None], n, 0), np.full(n, distance),
                            np.full(n, speed))
    return expert._cost(ends)


def test_near_the_goal_the_push_made_is_the_best_on_average_over_shifted_pusher_paths() -> None:
    # The robust expert re-simulates the best nominal pushes with the pusher's path shifted 2 mm along
    # and across; the push it makes has the lowest mean cost over those paths, while a nominal-only
    # expert makes the push that is best on the nominal path alone.
    cfg, ecfg, env, robust = _small_expert(8)
    nominal = PushTExpert(cfg, ExpertConfig(contacts=8, planner_worlds=96, robust_offsets_m=()))
    goal = np.asarray(cfg.goal.pose)
    rng = np.random.default_rng(0)  # blocks up to 12 mm and 7 degrees off the goal
    blocks = goal + np.c_[rng.uniform(-0.012, 0.012, (8, 2)), np.deg2rad(rng.uniform(-7.0, 7.0, 8))]
    obs, _ = env.reset(options={"block_pose": blocks, "pusher_xy": np.tile([[0.40, 0.25]], (8, 1))})
    robust.act(obs)
    nominal.act(obs)
    offsets = np.asarray(ecfg.robust_offsets_m)
    differ = 0
    for w in range(8):
        assert robust._plans[w][-1].dwell == ecfg.fine_settle_steps  # a fine push
        r = _costs_over_offsets(robust, blocks[w], _chosen_push(robust, w), offsets)
        n = _costs_over_offsets(robust, blocks[w], _chosen_push(nominal, w), offsets)
        assert r.mean() <= n.mean() + 1e-6
        assert n[0] <= r[0] + 1e-6
        differ += not np.allclose(_chosen_push(robust, w)[0], _chosen_push(nominal, w)[0]) or r.mean() < n.mean() - 1e-6
    assert differ >= 1  # the shifted paths changed at least one choice


def test_bad_robust_settings_are_rejected() -> None:
    with pytest.raises(ValueError):
        ExpertConfig(robust_top_k=0)
    with pytest.raises(ValueError):
        ExpertConfig(robust_offsets_m=((0.02, 0.0),))
    with pytest.raises(ValueError):
        ExpertConfig(robust_offsets_m=((0.002,),))
    with pytest.raises(ValueError):
        ExpertConfig(min_push_effect_m=-0.001)
