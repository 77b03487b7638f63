"""twin.gaussians: the GaussianSet container and surface samplers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from twin.gaussians import (
    GaussianSet,
    pack_bodies,
    quat_apply,
    resolve_spacing,
    sample_box,
    sample_cylinder,
    sample_mesh,
    sample_plane,
    sample_sphere,
)

torch.set_num_threads(1)


def _normals(g: GaussianSet) -> torch.Tensor:
    """Each Gaussian's local z axis (its surface normal) in the set's frame."""
    return quat_apply(g.quats, torch.tensor([0.0, 0.0, 1.0]).expand(len(g), 3))


def test_box_lies_on_its_faces_facing_out():
    size = torch.tensor([0.2, 0.05, 0.04])
    g = sample_box(size.tolist(), spacing=0.005, color=(0.9, 0.1, 0.1))
    area = 2 * (0.2 * 0.05 + 0.2 * 0.04 + 0.05 * 0.04)
    assert len(g) == pytest.approx(area / 0.005**2, rel=0.05)
    rel = g.means.abs() / (size / 2)
    assert torch.allclose(rel.max(dim=1).values, torch.ones(len(g)), atol=1e-5)  # on a face
    assert bool((rel <= 1 + 1e-5).all())
    n = _normals(g)
    face_axis = rel.argmax(dim=1)
    outward = torch.sign(g.means.gather(1, face_axis[:, None]))[:, 0]
    assert torch.allclose(n.gather(1, face_axis[:, None])[:, 0], outward, atol=1e-5)
    assert torch.allclose(g.colors, torch.tensor([0.9, 0.1, 0.1]).expand(len(g), 3))
    # flat surfels: thin along the normal, ~0.6 spacing across
    assert torch.allclose(g.scales[:, 2], torch.full((len(g),), 0.0005)) and float(g.scales[0, 0]) == pytest.approx(0.003)
    assert torch.allclose(g.quats.norm(dim=1), torch.ones(len(g)), atol=1e-6)


def test_density_and_spacing_are_the_same_knob():
    a = sample_plane((0.4, 0.3), spacing=0.01)
    b = sample_plane((0.4, 0.3), density=1e4)
    assert len(a) == len(b) == 40 * 30
    assert torch.allclose(a.means, b.means)
    assert len(sample_plane((0.4, 0.3), density=4e4)) == 4 * len(a)
    assert resolve_spacing() == 0.005 and resolve_spacing(density=400.0) == pytest.approx(0.05)
    with pytest.raises(ValueError):
        resolve_spacing(spacing=0.01, density=100.0)
    with pytest.raises(ValueError):
        resolve_spacing(spacing=-1.0)


def test_plane_is_flat_and_faces_up():
    g = sample_plane((0.8, 0.6), spacing=0.02, jitter=0.5, seed=3)
    assert float(g.means[:, 2].abs().max()) == 0.0
    assert float(g.means[:, 0].abs().max()) <= 0.4 and float(g.means[:, 1].abs().max()) <= 0.3
    assert torch.allclose(_normals(g), torch.tensor([0.0, 0.0, 1.0]).expand(len(g), 3), atol=1e-6)


def test_jitter_and_seed_give_other_reproducible_samplings():
    a = sample_box((0.1, 0.1, 0.1), spacing=0.01, jitter=0.8, seed=1)
    b = sample_box((0.1, 0.1, 0.1), spacing=0.01, jitter=0.8, seed=1)
    c = sample_box((0.1, 0.1, 0.1), spacing=0.01, jitter=0.8, seed=2)
    assert torch.equal(a.means, b.means) and not torch.allclose(a.means, c.means)
    assert float((a.means - c.means).abs().max()) <= 0.01  # within a cell
    assert float((a.means.abs().max(dim=1).values - 0.05).abs().max()) < 1e-6  # still on the faces


def test_sphere_and_cylinder_surfaces():
    s = sample_sphere(0.07, spacing=0.005)
    assert len(s) == round(4 * math.pi * 0.07**2 / 0.005**2)
    assert torch.allclose(s.means.norm(dim=1), torch.full((len(s),), 0.07), atol=1e-6)
    assert torch.allclose((_normals(s) * s.means).sum(1) / 0.07, torch.ones(len(s)), atol=1e-5)
    c = sample_cylinder(0.05, 0.2, spacing=0.005)
    r = c.means[:, :2].norm(dim=1)
    side = (r - 0.05).abs() < 1e-6
    cap = (c.means[:, 2].abs() - 0.1).abs() < 1e-6
    assert bool((side | cap).all()) and bool(side.any()) and bool(cap.any())
    assert bool((r <= 0.05 + 1e-6).all()) and bool((c.means[:, 2].abs() <= 0.1 + 1e-6).all())
    n = _normals(c)
    assert torch.allclose((n[side, :2] * c.means[side, :2]).sum(1) / 0.05, torch.ones(int(side.sum())), atol=1e-5)
    assert torch.allclose(n[cap, 2], torch.sign(c.means[cap, 2]), atol=1e-5)
    area = 2 * math.pi * 0.05 * 0.2 + 2 * math.pi * 0.05**2
    assert len(c) == pytest.approx(area / 0.005**2, rel=0.1)
    assert len(sample_cylinder(0.05, 0.2, spacing=0.005, caps=False)) == int(side.sum())


def test_mesh_sampling_area_surface_and_colours():
    trimesh = pytest.importorskip("trimesh")
    mesh = trimesh.creation.box(extents=(0.1, 0.2, 0.05))
    g = sample_mesh(mesh, spacing=0.004, color=(0.1, 0.2, 0.3), seed=0)
    assert len(g) == round(mesh.area / 0.004**2)
    rel = g.means.abs() / torch.tensor([0.05, 0.1, 0.025])
    assert torch.allclose(rel.max(dim=1).values, torch.ones(len(g)), atol=1e-5)  # on the box's faces
    assert bool((rel <= 1 + 1e-5).all())
    axis = rel.argmax(1)
    assert torch.allclose(_normals(g).gather(1, axis[:, None])[:, 0], torch.sign(g.means.gather(1, axis[:, None]))[:, 0], atol=1e-5)
    assert torch.allclose(g.colors, torch.tensor([0.1, 0.2, 0.3]).expand(len(g), 3))
    mesh.visual.face_colors = np.tile([255, 0, 0, 255], (len(mesh.faces), 1))
    red = sample_mesh(mesh, spacing=0.01)
    assert torch.allclose(red.colors, torch.tensor([1.0, 0.0, 0.0]).expand(len(red), 3))
    with pytest.raises(TypeError):
        sample_mesh("box.stl")


def test_transformed_and_pack_bodies():
    a = sample_plane((0.1, 0.1), spacing=0.05)
    b = sample_sphere(0.02, spacing=0.02)
    half = math.sqrt(0.5)
    moved = a.transformed(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([half, 0.0, 0.0, half]))  # +90 deg about z
    expected = torch.stack([-a.means[:, 1], a.means[:, 0], a.means[:, 2]], 1) + torch.tensor([1.0, 2.0, 3.0])
    assert torch.allclose(moved.means, expected, atol=1e-6)
    packed, ids = pack_bodies([a, b, a])
    assert len(packed) == 2 * len(a) + len(b)
    assert ids.tolist() == [0] * len(a) + [1] * len(b) + [2] * len(a)
    assert torch.equal(packed.means[len(a):len(a) + len(b)], b.means)
    sub = packed.select(ids == 1)
    assert all(torch.equal(x, y) for x, y in zip(sub.tensors(), b.tensors()))
    assert packed.to(dtype=torch.float64).means.dtype == torch.float64
    with pytest.raises(ValueError):
        a.transformed(torch.zeros(2), torch.tensor([1.0, 0.0, 0.0, 0.0]))


@pytest.mark.parametrize(
    "kwargs, exc",
    [
        (dict(means=torch.zeros(3, 2)), ValueError),
        (dict(quats=torch.zeros(2, 4)), ValueError),
        (dict(opacities=torch.zeros(3, 1)), ValueError),
        (dict(colors=np.zeros((3, 3))), TypeError),
        (dict(scales=torch.zeros(3, 3, dtype=torch.int32)), TypeError),
        (dict(colors=torch.zeros(3, 3, dtype=torch.float64)), ValueError),
    ],
)
def test_gaussian_set_validation(kwargs, exc):
    fields = dict(means=torch.zeros(3, 3), quats=torch.ones(3, 4), scales=torch.ones(3, 3),
                  opacities=torch.ones(3), colors=torch.ones(3, 3))
    fields.update(kwargs)
    with pytest.raises(exc):
        GaussianSet(**fields)


@pytest.mark.parametrize(
    "call",
    [
        lambda: sample_box((0.1, 0.1)),
        lambda: sample_box((0.1, -0.1, 0.1)),
        lambda: sample_plane((0.1, 0.1), color=(2.0, 0.0, 0.0)),
        lambda: sample_sphere(0.0),
        lambda: sample_cylinder(0.1, 0.1, jitter=2.0),
        lambda: sample_plane((0.1, 0.1), opacity=1.5),
    ],
)
def test_sampler_validation(call):
    with pytest.raises(ValueError):
        call()
