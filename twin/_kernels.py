"""Warp kernels of the twin's physics step (launched from ``twin._physics``)."""

from __future__ import annotations

import warp as wp


@wp.kernel
def set_substep_inputs(
    pusher_path: wp.array2d(dtype=wp.vec3),  # [S + 1, N] pusher tip positions, world frame [m]
    substep: int,
    dt: float,
    pusher_body: wp.array(dtype=wp.int32),  # [N] body index of each world's pusher
    body_q: wp.array(dtype=wp.transform),
    body_qd: wp.array(dtype=wp.spatial_vector),
):
    """Prescribe each kinematic pusher's pose at the end of ``substep`` and its velocity over it."""
    w = wp.tid()
    p0 = pusher_path[substep, w]
    p1 = pusher_path[substep + 1, w]
    b = pusher_body[w]
    body_q[b] = wp.transform(p1, wp.quat_identity())
    body_qd[b] = wp.spatial_vector((p1 - p0) / dt, wp.vec3(0.0, 0.0, 0.0))


@wp.kernel
def copy_body_wrench(
    body_wrench: wp.array(dtype=wp.spatial_vector),
    body_f: wp.array(dtype=wp.spatial_vector),
):
    """Zero-order hold of the external wrench over the substeps of one control step."""
    i = wp.tid()
    body_f[i] = body_wrench[i]


@wp.func
def _yaw_of(q: wp.quat) -> float:
    # Warp quaternions are (x, y, z, w)
    return wp.atan2(2.0 * (q[3] * q[2] + q[0] * q[1]), 1.0 - 2.0 * (q[1] * q[1] + q[2] * q[2]))


@wp.kernel
def apply_block_springs(
    block_body: wp.array(dtype=wp.int32),  # [N] body index of each world's block
    target: wp.array(dtype=wp.vec3),  # [N] (x [m], y [m], yaw [rad]) world frame, at the step's start
    target_rate: wp.array(dtype=wp.vec3),  # [N] target velocity (m/s, m/s, rad/s)
    t_since_start: float,  # time since the step started [s]: the target moves on at its rate
    active: wp.array(dtype=wp.int32),  # [N] 1 = pull this world's block
    body_q: wp.array(dtype=wp.transform),
    body_qd: wp.array(dtype=wp.spatial_vector),
    body_com: wp.array(dtype=wp.vec3),
    mass: float,
    inertia_zz: float,
    omega: float,  # spring natural frequency [rad/s], critically damped
    friction_force: float,  # Coulomb friction force to compensate [N]
    friction_torque: float,  # Coulomb friction torque to compensate [N m]
    friction_ref_m: float,  # compensation tapers below this error [m]
    friction_ref_rad: float,  # ... and this yaw error [rad]
    max_force: float,
    max_torque: float,
    body_f: wp.array(dtype=wp.spatial_vector),
):
    """Add the visual-force wrench to each active block: a planar spring-damper towards its target pose
    about the centre of mass, with Coulomb friction compensated, evaluated at every substep."""
    w = wp.tid()
    if active[w] == 0:
        return
    b = block_body[w]
    X = body_q[b]
    q = wp.transform_get_rotation(X)
    com = wp.transform_point(X, body_com[b])
    r = target_rate[w]
    t = target[w] + r * t_since_start
    ex = t[0] - com[0]
    ey = t[1] - com[1]
    eyaw = t[2] - _yaw_of(q)
    eyaw = eyaw - 6.283185307179586 * wp.floor((eyaw + 3.141592653589793) / 6.283185307179586)
    qd = body_qd[b]
    v = wp.spatial_top(qd)
    wz = wp.spatial_bottom(qd)[2]
    k = omega * omega
    c = 2.0 * omega
    fx = mass * (k * ex + c * (r[0] - v[0]))
    fy = mass * (k * ey + c * (r[1] - v[1]))
    e = wp.sqrt(ex * ex + ey * ey)
    if e > 1.0e-9:
        s = friction_force * wp.tanh(e / friction_ref_m) / e
        fx = fx + s * ex
        fy = fy + s * ey
    tz = inertia_zz * (k * eyaw + c * (r[2] - wz)) + friction_torque * wp.tanh(eyaw / friction_ref_rad)
    fn = wp.sqrt(fx * fx + fy * fy)
    if fn > max_force:
        fx = fx * max_force / fn
        fy = fy * max_force / fn
    tz = wp.clamp(tz, -max_torque, max_torque)
    body_f[b] = body_f[b] + wp.spatial_vector(wp.vec3(fx, fy, 0.0), wp.vec3(0.0, 0.0, tz))
