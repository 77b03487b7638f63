"""twin.gaussians: .npz and 3DGS .ply round trips and reading foreign .ply files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from twin.gaussians import GaussianSet, load_npz, load_ply, sample_box, save_npz, save_ply


def _random_set(n=50, seed=0) -> GaussianSet:
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(n, 4, generator=g)
    return GaussianSet(
        means=torch.randn(n, 3, generator=g),
        quats=q / q.norm(dim=1, keepdim=True),
        scales=torch.rand(n, 3, generator=g) * 0.01 + 1e-4,
        opacities=torch.rand(n, generator=g) * 0.98 + 0.01,
        colors=torch.rand(n, 3, generator=g),
    )


def test_npz_round_trip_is_exact(tmp_path):
    g = _random_set()
    save_npz(g, tmp_path / "set.npz")
    h = load_npz(tmp_path / "set.npz")
    for a, b in zip(g.tensors(), h.tensors()):
        assert torch.equal(a, b)


def test_ply_round_trip(tmp_path):
    g = _random_set()
    save_ply(g, tmp_path / "set.ply")
    h = load_ply(tmp_path / "set.ply")
    assert len(h) == len(g)
    assert torch.allclose(h.means, g.means, atol=1e-7)
    assert torch.allclose(h.quats, g.quats, atol=1e-6)
    assert torch.allclose(h.scales, g.scales, rtol=1e-5)
    assert torch.allclose(h.opacities, g.opacities, atol=1e-6)
    assert torch.allclose(h.colors, g.colors, atol=1e-6)


def test_sampled_object_survives_ply(tmp_path):
    g = sample_box((0.2, 0.05, 0.04), spacing=0.01, color=(0.8, 0.2, 0.2))
    save_ply(g, tmp_path / "t.ply")
    h = load_ply(tmp_path / "t.ply")
    assert torch.allclose(h.means, g.means, atol=1e-7) and torch.allclose(h.colors, g.colors, atol=1e-6)


def _write_ply(path, names, rows, fmt="binary_little_endian", extra_header=""):
    data = np.array([tuple(r) for r in rows], dtype=[(k, "<f4") for k in names])
    header = f"ply\nformat {fmt} 1.0\ncomment written by a scanner\n{extra_header}element vertex {len(rows)}\n"
    header += "".join(f"property float {k}\n" for k in names) + "end_header\n"
    path.write_bytes(header.encode() + data.tobytes())


def test_reads_3dgs_ply_with_sh_rest_and_unnormalised_rotations(tmp_path):
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"] + [f"f_rest_{i}" for i in range(45)] + [
        "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    row = [0.1, 0.2, 0.3, 0, 0, 0, 0.0, 1.0, -10.0] + [0.5] * 45 + [0.0, np.log(0.01), np.log(0.02), np.log(0.03),
                                                                     2.0, 0.0, 0.0, 0.0]
    _write_ply(tmp_path / "scan.ply", names, [row, row])
    g = load_ply(tmp_path / "scan.ply")
    assert len(g) == 2
    assert g.means[0].tolist() == pytest.approx([0.1, 0.2, 0.3])
    assert g.colors[0].tolist() == pytest.approx([0.5, 0.5 + 0.28209479177387814, 0.0])  # clipped at 0
    assert g.opacities[0].item() == pytest.approx(0.5)
    assert g.scales[0].tolist() == pytest.approx([0.01, 0.02, 0.03])
    assert g.quats[0].tolist() == pytest.approx([1.0, 0.0, 0.0, 0.0])


def test_bad_files_are_rejected(tmp_path):
    _write_ply(tmp_path / "pts.ply", ["x", "y", "z"], [[0, 0, 0]])
    with pytest.raises(ValueError, match="missing"):
        load_ply(tmp_path / "pts.ply")
    _write_ply(tmp_path / "ascii.ply", ["x", "y", "z"], [[0, 0, 0]], fmt="ascii")
    with pytest.raises(ValueError, match="binary_little_endian"):
        load_ply(tmp_path / "ascii.ply")
    (tmp_path / "junk.ply").write_bytes(b"not a ply\n")
    with pytest.raises(ValueError):
        load_ply(tmp_path / "junk.ply")
    np.savez(tmp_path / "other.npz", means=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="missing"):
        load_npz(tmp_path / "other.npz")
    with pytest.raises(TypeError):
        save_npz({"means": 1}, tmp_path / "x.npz")
