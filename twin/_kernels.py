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
