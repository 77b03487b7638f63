"""Saving and loading Gaussian sets: ``.npz`` (exact) and 3D Gaussian Splatting ``.ply``.

The ``.ply`` layout is the one of the original 3DGS code and most scanners/trainers: binary little
endian vertices with x, y, z, nx, ny, nz, f_dc_0..2 (degree-0 SH), optional f_rest_*, opacity
(logit), scale_0..2 (log of std [m]), rot_0..3 (w, x, y, z, unnormalised). On load, view-dependent
f_rest_* terms are dropped and the colour is the degree-0 SH, 0.5 + C0 * f_dc, clipped to [0, 1].
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ._set import GaussianSet

SH_C0 = 0.28209479177387814
_NPZ_VERSION = 1
_PLY_TYPES = {"float": "f4", "float32": "f4", "double": "f8", "float64": "f8", "uchar": "u1", "uint8": "u1",
              "char": "i1", "int8": "i1", "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
              "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4"}


def save_npz(gaussians: GaussianSet, path: str | os.PathLike) -> None:
    """Write ``gaussians`` exactly (float32) to a ``.npz`` file."""
    if not isinstance(gaussians, GaussianSet):
        raise TypeError(f"expected a GaussianSet, got {type(gaussians).__name__}")
    arrays = {k: getattr(gaussians, k).detach().cpu().float().numpy()
              for k in ("means", "quats", "scales", "opacities", "colors")}
    np.savez(Path(path), version=np.int64(_NPZ_VERSION), **arrays)


def load_npz(path: str | os.PathLike) -> GaussianSet:
    """Read a set written by ``save_npz`` (CPU, float32)."""
    with np.load(Path(path)) as f:
        missing = {"means", "quats", "scales", "opacities", "colors"} - set(f.files)
        if missing:
            raise ValueError(f"{path}: not a Gaussian set, missing {sorted(missing)}")
        return GaussianSet(*(torch.from_numpy(np.array(f[k], dtype=np.float32))
                             for k in ("means", "quats", "scales", "opacities", "colors")))


def save_ply(gaussians: GaussianSet, path: str | os.PathLike) -> None:
    """Write ``gaussians`` as a 3DGS-style binary ``.ply``."""
    if not isinstance(gaussians, GaussianSet):
        raise TypeError(f"expected a GaussianSet, got {type(gaussians).__name__}")
    g = gaussians.to("cpu", torch.float64)
    n = len(g)
    op = g.opacities.numpy().clip(1e-6, 1 - 1e-6)
    cols = {
        "x": g.means[:, 0], "y": g.means[:, 1], "z": g.means[:, 2],
        "nx": np.zeros(n), "ny": np.zeros(n), "nz": np.zeros(n),
        **{f"f_dc_{i}": (g.colors[:, i].numpy() - 0.5) / SH_C0 for i in range(3)},
        "opacity": np.log(op / (1 - op)),
        **{f"scale_{i}": np.log(g.scales[:, i].numpy().clip(min=1e-30)) for i in range(3)},
        **{f"rot_{i}": g.quats[:, i] for i in range(4)},
    }
    data = np.empty(n, dtype=[(k, "<f4") for k in cols])
    for k, v in cols.items():
        data[k] = np.asarray(v, dtype=np.float64)
    header = "ply\nformat binary_little_endian 1.0\n" f"element vertex {n}\n"
    header += "".join(f"property float {k}\n" for k in cols) + "end_header\n"
    with open(Path(path), "wb") as f:
        f.write(header.encode("ascii"))
        f.write(data.tobytes())


def load_ply(path: str | os.PathLike) -> GaussianSet:
    """Read a 3DGS-style ``.ply`` (binary little endian) into a set (CPU, float32)."""
    with open(Path(path), "rb") as f:
        if f.readline().strip() != b"ply":
            raise ValueError(f"{path}: not a PLY file")
        fmt, n, props, in_vertex = None, None, [], False
        while True:
            line = f.readline()
            if not line:
                raise ValueError(f"{path}: PLY header has no end_header")
            words = line.decode("ascii", "replace").split()
            if not words or words[0] in ("comment", "obj_info"):
                continue
            if words[0] == "end_header":
                break
            if words[0] == "format":
                fmt = words[1]
            elif words[0] == "element":
                in_vertex = words[1] == "vertex"
                if in_vertex:
                    n = int(words[2])
                elif n is None:
                    raise ValueError(f"{path}: elements before 'vertex' are not supported")
            elif words[0] == "property" and in_vertex:
                if words[1] == "list" or words[1] not in _PLY_TYPES:
                    raise ValueError(f"{path}: unsupported vertex property {' '.join(words[1:])}")
                props.append((words[2], "<" + _PLY_TYPES[words[1]]))
        if fmt != "binary_little_endian":
            raise ValueError(f"{path}: only binary_little_endian PLY is supported, got {fmt}")
        if n is None:
            raise ValueError(f"{path}: PLY has no vertex element")
        dtype = np.dtype(props)
        buf = f.read(n * dtype.itemsize)
    if len(buf) < n * dtype.itemsize:
        raise ValueError(f"{path}: PLY data is truncated")
    v = np.frombuffer(buf, dtype=dtype, count=n)
    need = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
            "rot_0", "rot_1", "rot_2", "rot_3"]
    missing = [k for k in need if k not in v.dtype.names]
    if missing:
        raise ValueError(f"{path}: not a 3D Gaussian PLY, missing {missing}")

    def col(*names):
        return np.stack([v[k].astype(np.float64) for k in names], -1)

    quats = col("rot_0", "rot_1", "rot_2", "rot_3")
    quats /= np.linalg.norm(quats, axis=-1, keepdims=True).clip(min=1e-12)
    arrays = (
        col("x", "y", "z"),
        quats,
        np.exp(col("scale_0", "scale_1", "scale_2")),
        1.0 / (1.0 + np.exp(-v["opacity"].astype(np.float64))),
        np.clip(0.5 + SH_C0 * col("f_dc_0", "f_dc_1", "f_dc_2"), 0.0, 1.0),
    )
    return GaussianSet(*(torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)) for a in arrays))
