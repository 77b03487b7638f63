"""A simulated Franka Panda follower: joint-space impedance dynamics with actuation lag and limits.

`SimFranka` is a plain model (construct, `step` at 1 kHz, read `q_rad` / `dq_rad_s`): it is also the
robot of the simulated workspace. `SimBackend` puts it behind the `Backend` interface, advancing it in
fixed steps by the wall time between the server's ticks.

Model, per joint i (decoupled)::

    tau_i = K_i (q_cmd_i(t - lag) - q_i) + D_i (dq_cmd_i(t - lag) - dq_i)     clipped to +-tau_max_i
    I_i ddq_i = tau_i - b_i dq_i ;   dq_i clipped to +-dq_max_i ;  q_i clipped to the hardware limits

with D_i set for the given damping ratio, integrated by semi-implicit Euler at ``dt_s``.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from ..limits import FRANKA_PANDA_LIMITS, PANDA_HOME_Q_RAD, JointLimits
from .base import Backend, BackendCommand, BackendState

__all__ = ["SimFrankaConfig", "SimFranka", "SimBackend", "PANDA_HOME_Q_RAD"]



@dataclass(frozen=True)
class SimFrankaConfig:
    """Parameters of the simulated arm. Vectors have shape (7,)."""

    stiffness_nm_rad: tuple[float, ...] = (600.0, 600.0, 600.0, 600.0, 250.0, 150.0, 50.0)
    damping_ratio: float = 1.0  # 1 = critically damped
    inertia_kg_m2: tuple[float, ...] = (1.0, 1.0, 0.6, 0.5, 0.1, 0.1, 0.05)  # effective, per joint
    friction_nm_s_rad: tuple[float, ...] = (0.5, 0.5, 0.4, 0.4, 0.1, 0.1, 0.05)  # viscous
    tau_max_nm: tuple[float, ...] = (87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0)
    command_lag_s: float = 0.002  # pure delay between a command and its effect [s]
    dt_s: float = 0.001  # integration step [s]
    q_init_rad: tuple[float, ...] = PANDA_HOME_Q_RAD


class SimFranka:
    """Numpy model of a joint-impedance-controlled Panda. Not thread-safe; one owner steps it.

    Args:
        config: model parameters.
        limits: hardware limits the model enforces on itself (position and velocity).
    """

    def __init__(self, config: SimFrankaConfig = SimFrankaConfig(), limits: JointLimits = FRANKA_PANDA_LIMITS) -> None:
        self.config = config
        self._k = np.asarray(config.stiffness_nm_rad, float)
        self._inertia = np.asarray(config.inertia_kg_m2, float)
        self._d = 2.0 * config.damping_ratio * np.sqrt(self._k * self._inertia)
        self._b = np.asarray(config.friction_nm_s_rad, float)
        self._tau_max = np.asarray(config.tau_max_nm, float)
        self._q_min = np.asarray(limits.q_min_rad, float)
        self._q_max = np.asarray(limits.q_max_rad, float)
        self._dq_max = np.asarray(limits.dq_max_rad_s, float)
        self._lag_steps = max(0, int(round(config.command_lag_s / config.dt_s)))
        self.reset(np.asarray(config.q_init_rad, float))

    def reset(self, q_rad: np.ndarray) -> None:
        """Put the arm at rest at ``q_rad`` [rad] with that pose commanded."""
        q = np.clip(np.asarray(q_rad, float), self._q_min, self._q_max)
        self._q = q.copy()
        self._dq = np.zeros(7)
        self._tau = np.zeros(7)
        self._t_s = 0.0
        self._cmd = (q.copy(), np.zeros(7))
        self._pipeline: deque = deque([self._cmd] * self._lag_steps, maxlen=self._lag_steps + 1)

    def step(self, q_cmd_rad: np.ndarray | None = None, dq_cmd_rad_s: np.ndarray | None = None) -> None:
        """Advance one ``dt_s``. A None command keeps the previous one."""
        if q_cmd_rad is not None:
            dq = np.zeros(7) if dq_cmd_rad_s is None else np.asarray(dq_cmd_rad_s, float)
            self._cmd = (np.asarray(q_cmd_rad, float).copy(), dq.copy())
        self._pipeline.append(self._cmd)
        q_c, dq_c = self._pipeline.popleft() if self._lag_steps else self._cmd
        dt = self.config.dt_s
        tau = self._k * (q_c - self._q) + self._d * (dq_c - self._dq)
        tau = np.clip(tau, -self._tau_max, self._tau_max)
        ddq = (tau - self._b * self._dq) / self._inertia
        dq = np.clip(self._dq + ddq * dt, -self._dq_max, self._dq_max)
        q = self._q + dq * dt
        hit = (q < self._q_min) | (q > self._q_max)
        if hit.any():
            q = np.clip(q, self._q_min, self._q_max)
            dq = np.where(hit, 0.0, dq)
        self._q, self._dq, self._tau = q, dq, tau
        self._t_s += dt

    @property
    def q_rad(self) -> np.ndarray:
        """Joint positions [rad], shape (7,) (a copy)."""
        return self._q.copy()

    @property
    def dq_rad_s(self) -> np.ndarray:
        """Joint velocities [rad/s], shape (7,) (a copy)."""
        return self._dq.copy()

    @property
    def tau_nm(self) -> np.ndarray:
        """Actuator torques of the last step [N m], shape (7,) (a copy)."""
        return self._tau.copy()

    @property
    def time_s(self) -> float:
        """Simulated time since the last reset [s]."""
        return self._t_s


class SimBackend(Backend):
    """`SimFranka` behind the backend interface, advanced in real time by the server's ticks.

    Args:
        config: model parameters.
        max_catch_up_s: after a stall, at most this much simulated time is integrated at once [s].
    """

    name = "sim"

    def __init__(self, config: SimFrankaConfig = SimFrankaConfig(), max_catch_up_s: float = 0.05) -> None:
        self.model = SimFranka(config)
        self.rate_hz = 1.0 / config.dt_s
        self._max_steps = max(1, int(round(max_catch_up_s / config.dt_s)))
        self._dt_ns = int(round(config.dt_s * 1e9))
        self._t_model_ns: int | None = None
        self.n_commands = 0

    def connect(self, timeout_s: float = 1.0) -> None:
        self._t_model_ns = time.monotonic_ns()

    def disconnect(self) -> None:
        self._t_model_ns = None

    def _advance(self, t_ns: int, q=None, dq=None) -> None:
        if self._t_model_ns is None:
            self._t_model_ns = t_ns
        n = (t_ns - self._t_model_ns) // self._dt_ns
        if n <= 0:
            if q is not None:  # the command lands on the next step
                self.model._cmd = (np.asarray(q, float).copy(), np.asarray(dq, float).copy())
            return
        if n > self._max_steps:
            self._t_model_ns = t_ns - self._max_steps * self._dt_ns
            n = self._max_steps
        self.model.step(q, dq)
        for _ in range(int(n) - 1):
            self.model.step()
        self._t_model_ns += int(n) * self._dt_ns

    def read_state(self) -> BackendState:
        return BackendState(time.monotonic_ns(), self.model.q_rad, self.model.dq_rad_s, self.model.tau_nm, 0)

    def command(self, cmd: BackendCommand) -> None:
        self.n_commands += 1
        self._advance(cmd.t_ns, cmd.q_rad, cmd.dq_rad_s)

    def idle(self, t_ns: int) -> None:
        self._advance(t_ns)
