"""Panda kinematics against Franka's published values and an independent FK oracle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from twin.franka import (
    FRANKA_DQ_MAX,
    FRANKA_HOME_Q,
    FRANKA_Q_MAX,
    FRANKA_Q_MIN,
    DifferentialIKConfig,
    PandaKinematics,
)

# Flange poses from Franka's modified-DH parameters, cross-checked against an independent URDF.
ORACLE = json.loads((Path(__file__).parent / "data" / "franka_fk.json").read_text())


@pytest.fixture(scope="module")
def kin() -> PandaKinematics:
    return PandaKinematics()


def test_joint_limits_match_published_values(kin: PandaKinematics) -> None:
    np.testing.assert_allclose(kin.q_min, FRANKA_Q_MIN, atol=1e-4)
    np.testing.assert_allclose(kin.q_max, FRANKA_Q_MAX, atol=1e-4)
    np.testing.assert_allclose(kin.dq_max, FRANKA_DQ_MAX, atol=1e-4)
    np.testing.assert_allclose(ORACLE["q_min"], FRANKA_Q_MIN, atol=1e-4)
    np.testing.assert_allclose(ORACLE["q_max"], FRANKA_Q_MAX, atol=1e-4)


def test_forward_kinematics_matches_oracle(kin: PandaKinematics) -> None:
    q = np.array([c["q"] for c in ORACLE["cases"]])
    expected = np.array([c["T_base_flange"] for c in ORACLE["cases"]])
    assert len(q) == 20
    np.testing.assert_allclose(kin.flange_pose(q), expected, atol=1e-5)


def test_tool_offset_is_along_flange_z() -> None:
    kin = PandaKinematics(tool_offset_m=0.15)
    T_f = kin.flange_pose(FRANKA_HOME_Q)
    T_t = kin.tool_pose(FRANKA_HOME_Q)
    np.testing.assert_allclose(T_t[:3, 3] - T_f[:3, 3], 0.15 * T_f[:3, 2], atol=1e-12)
    # at the ready pose the flange points down
    np.testing.assert_allclose(T_f[:3, 2], [0, 0, -1], atol=1e-9)


def test_jacobian_matches_finite_differences() -> None:
    kin = PandaKinematics(tool_offset_m=0.15)
    rng = np.random.default_rng(3)
    q = rng.uniform(FRANKA_Q_MIN + 0.2, FRANKA_Q_MAX - 0.2)
    T, J = kin.jacobian(q)
    eps = 1e-6
    for k in range(7):
        dq = np.zeros(7)
        dq[k] = eps
        Tp, Tm = kin.tool_pose(q + dq), kin.tool_pose(q - dq)
        np.testing.assert_allclose((Tp[:3, 3] - Tm[:3, 3]) / (2 * eps), J[:3, k], atol=1e-6)
        dR = (Tp[:3, :3] - Tm[:3, :3]) / (2 * eps) @ T[:3, :3].T  # skew(omega)
        np.testing.assert_allclose([dR[2, 1], dR[0, 2], dR[1, 0]], J[3:, k], atol=1e-6)


def test_ik_round_trip_batched() -> None:
    kin = PandaKinematics(tool_offset_m=0.15)
    rng = np.random.default_rng(0)
    q_true = rng.uniform(FRANKA_Q_MIN + 0.3, FRANKA_Q_MAX - 0.3, size=(32, 7))
    T = kin.tool_pose(q_true)
    seed = q_true + rng.normal(0, 0.1, size=q_true.shape)
    res = kin.solve_ik(T[:, :3, 3], T[:, :3, :3], seed, q_rest=q_true,
                       config=DifferentialIKConfig(iterations=50, damping=0.01, nullspace_gain=0.0))
    T_back = kin.tool_pose(res.q)
    assert np.max(np.linalg.norm(T_back[:, :3, 3] - T[:, :3, 3], axis=1)) < 1e-4
    assert np.max(np.abs(T_back[:, :3, :3] - T[:, :3, :3])) < 1e-3
    assert not res.unreachable.any()


def test_ik_flags_unreachable_target_without_raising() -> None:
    kin = PandaKinematics(tool_offset_m=0.15)
    R = kin.flange_pose(FRANKA_HOME_Q)[:3, :3]
    res = kin.solve_ik(np.array([[0.5, 0.0, 0.0], [1.5, 0.0, 0.0]]), np.stack([R, R]), np.tile(FRANKA_HOME_Q, (2, 1)),
                       config=DifferentialIKConfig(iterations=100, damping=0.01))
    assert res.unreachable.tolist() == [False, True]
    assert np.all(res.q >= FRANKA_Q_MIN) and np.all(res.q <= FRANKA_Q_MAX)


def test_bad_joint_vector_is_a_clear_error(kin: PandaKinematics) -> None:
    with pytest.raises(ValueError, match="7 joint positions"):
        kin.flange_pose(np.zeros(6))
