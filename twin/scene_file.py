"""The scene file: what `realsim scan` learned about a workspace's appearance, and what `deploy`,
`collect`, `train` and `evaluate` load with ``--scene FILE``.

Layout: a folder with ``scene.json`` (the manifest) and one ``<body>.npz`` per body (its Gaussians:
``means`` [N, 3] m, ``quats`` [N, 4] (w, x, y, z), ``scales`` [N, 3] m, ``opacities`` [N], ``colors``
[N, 3] RGB in [0, 1]; an unknown object adds ``particles_m`` [P, 3] m). ``FILE`` is the manifest or its
folder. The manifest::

    {"format": "realsim-scene", "version": 1, "created": "...",
     "bodies": {"table": {"file": "table.npz", "frame": "world", "count": 7875}, "block": {..., "frame": "body"}, ...},
     "block": {"colors_rgb": [[r, g, b], [r, g, b]]},       # the block's tones, the brighter first
     "cameras": {"<serial>": {"vignetting": 0.2, "gains": [r, g, b]}},   # gains: the scan's white balance, for
                                                           # the record (the correction fits its own per frame)
     "objects": {"<name>": {"file": "<name>.npz", "count": 900, "particles": 1200, "particle_radius_m": 0.002,
                            "T_world_body": [16 floats]}},
     "info": {"block_shape": {...}}}                       # the block's dimensions when it was scanned

Frames: the table's Gaussians are in the world frame; every other body's in its own frame (the block's
centre of mass; ``panda_linkK``; the pusher's tip); an object's in its body frame (``T_world_body`` where it
was scanned). Writes go to a temporary folder that replaces the old scene only once complete (the old one
is moved aside first and deleted last). Everything read is checked: body files must be bare names in the
scene's folder, arrays finite and of consistent shape, scales positive, opacities and colours in [0, 1],
quaternions non-zero, vignetting in [0, 0.8).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .gaussians import GaussianSet

__all__ = ["SceneFileError", "SceneData", "ScannedBody", "save_scene", "load_scene", "SCENE_FORMAT", "SCENE_VERSION"]

SCENE_FORMAT = "realsim-scene"
SCENE_VERSION = 1
_FIELDS = (("means", (3,)), ("quats", (4,)), ("scales", (3,)), ("opacities", ()), ("colors", (3,)))
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_VIGNETTING = 0.8


class SceneFileError(ValueError):
    """A scene file that cannot be used: missing, malformed, or not matching the twin's scene."""


@dataclass
class ScannedBody:
    """One scanned unknown object: Gaussians and physics particles in its body frame, and where it was."""

    gaussians: GaussianSet
    particles_m: np.ndarray
    particle_radius_m: float
    T_world_body: np.ndarray = field(default_factory=lambda: np.eye(4))


@dataclass
class SceneData:
    """A workspace's scanned appearance (see the module docstring for frames and units).

    ``bodies``: name -> Gaussians (``table`` world frame, others body frames). ``block_colors``: the block's
    distinct colours (RGB [0, 1], the top's first). ``cameras``: serial -> {"vignetting": k, "gains": [3]}
    (the frame is multiplied by ``1 - k r^2``, r = 1 at the image corners). ``objects``: unknown objects."""

    bodies: dict[str, GaussianSet]
    block_colors: tuple[tuple[float, float, float], ...] = ()
    cameras: dict[str, dict] = field(default_factory=dict)
    objects: dict[str, ScannedBody] = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    def vignetting(self, serial: str) -> float:
        """The scanned vignetting of a camera (0 when it was not scanned)."""
        return float(self.cameras.get(serial, {}).get("vignetting", 0.0))


def _write_body(path: Path, g: GaussianSet, particles: np.ndarray | None = None) -> None:
    arrays = {name: getattr(g, name).detach().cpu().float().numpy() for name, _ in _FIELDS}
    if particles is not None:
        arrays["particles_m"] = np.asarray(particles, dtype=np.float32)
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)
        f.flush()
        os.fsync(f.fileno())


def save_scene(path: str | Path, data: SceneData, overwrite: bool = True) -> Path:
    """Write ``data`` to the folder ``path`` (created; replaced when ``overwrite``). Returns the manifest's
    path."""
    folder = Path(path)
    if folder.suffix == ".json":
        folder = folder.parent
    if folder.exists() and not overwrite:
        raise SceneFileError(f"{folder} exists (pass overwrite=True to replace it)")
    if folder.exists() and not (folder / "scene.json").is_file():
        raise SceneFileError(f"{folder} exists and is not a scene file: not replacing it")
    for name in (*data.bodies, *data.objects):
        if not _NAME.match(name) or ".." in name:
            raise SceneFileError(f"{name!r} is not a usable body name (letters, digits, '_', '-', '.')")
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    bodies = {}
    for name, g in data.bodies.items():
        _write_body(tmp / f"{name}.npz", g)
        bodies[name] = {"file": f"{name}.npz", "frame": "world" if name == "table" else "body", "count": len(g)}
    objects = {}
    for name, obj in data.objects.items():
        if name in data.bodies:
            raise SceneFileError(f"object {name!r} has the name of a body")
        _write_body(tmp / f"{name}.npz", obj.gaussians, obj.particles_m)
        objects[name] = {"file": f"{name}.npz", "count": len(obj.gaussians), "particles": int(len(obj.particles_m)),
                         "particle_radius_m": float(obj.particle_radius_m),
                         "T_world_body": [float(x) for x in np.ravel(obj.T_world_body)]}
    manifest = {"format": SCENE_FORMAT, "version": SCENE_VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "bodies": bodies, "objects": objects,
                "block": {"colors_rgb": [list(map(float, c)) for c in data.block_colors]},
                "cameras": data.cameras, "info": data.info}
    (tmp / "scene.json").write_text(json.dumps(manifest, indent=1))
    old = folder.with_name(folder.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        os.replace(folder, old)  # the old scene stays whole until the new one is in place
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder / "scene.json"


def _body_file(folder: Path, name: str, entry: object) -> Path:
    """The file of a manifest entry: a bare file name inside the scene's folder."""
    if not isinstance(entry, dict):
        raise SceneFileError(f"scene body {name!r}: its manifest entry is not a mapping")
    file = entry.get("file", f"{name}.npz")
    if not isinstance(file, str) or not _NAME.match(file) or ".." in file or Path(file).name != file:
        raise SceneFileError(f"scene body {name!r}: file {file!r} is not a file name inside the scene's folder")
    return folder / file


def _read_body(path: Path, name: str, expected: object) -> tuple[GaussianSet, np.ndarray | None]:
    if not path.is_file():
        raise SceneFileError(f"scene body {name!r}: its file {path} is missing")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: np.array(f[k]) for k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise SceneFileError(f"scene body {name!r}: {path} is not readable ({exc})") from exc
    missing = [k for k, _ in _FIELDS if k not in arrays]
    if missing:
        raise SceneFileError(f"scene body {name!r}: {path} lacks {missing}")
    n = len(arrays["means"]) if arrays["means"].ndim else 0
    for key, tail in _FIELDS:
        if arrays[key].shape != (n, *tail):
            raise SceneFileError(f"scene body {name!r}: {key} has shape {list(arrays[key].shape)}, expected "
                                 f"{[n, *tail]} (its means hold {n} Gaussians)")
        if arrays[key].dtype.kind not in "fiu":
            raise SceneFileError(f"scene body {name!r}: {key} is not numeric ({arrays[key].dtype})")
        if not np.isfinite(arrays[key]).all():
            raise SceneFileError(f"scene body {name!r}: {key} holds non-finite values")
    if (arrays["scales"] <= 0).any():
        raise SceneFileError(f"scene body {name!r}: scales must be > 0")
    for key in ("opacities", "colors"):
        if ((arrays[key] < 0) | (arrays[key] > 1)).any():
            raise SceneFileError(f"scene body {name!r}: {key} must lie in [0, 1]")
    if (np.linalg.norm(arrays["quats"], axis=-1) < 1e-6).any():
        raise SceneFileError(f"scene body {name!r}: a quaternion has zero norm")
    if expected is not None and n != expected:
        raise SceneFileError(f"scene body {name!r}: the manifest says {expected} Gaussians, {path.name} holds {n}")
    if n == 0:
        raise SceneFileError(f"scene body {name!r} holds no Gaussians")
    particles = arrays.get("particles_m")
    if particles is not None and (particles.ndim != 2 or particles.shape[1] != 3 or particles.dtype.kind != "f"
                                  or not np.isfinite(particles).all()):
        raise SceneFileError(f"scene object {name!r}: particles_m must be finite [P, 3], got {list(particles.shape)}")
    g = GaussianSet(*(torch.from_numpy(arrays[k].astype(np.float32)) for k, _ in _FIELDS))
    return g, particles


def load_scene(path: str | Path, required_bodies: tuple[str, ...] = ()) -> SceneData:
    """Read a scene file (its folder or ``scene.json``). ``required_bodies``: names that must be there (the
    twin's scene's bodies); a missing one, a body file that is missing or whose arrays disagree in shape,
    or an unknown format is a ``SceneFileError`` that says which."""
    p = Path(path)
    manifest_path = p / "scene.json" if p.is_dir() else p
    if not manifest_path.is_file():
        raise SceneFileError(f"no scene file at {path} (expected a folder with scene.json, written by `realsim scan`)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SceneFileError(f"{manifest_path}: not JSON ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != SCENE_FORMAT:
        raise SceneFileError(f"{manifest_path}: not a realsim scene file (format {manifest.get('format') if isinstance(manifest, dict) else None!r})")
    if manifest.get("version") != SCENE_VERSION:
        raise SceneFileError(f"{manifest_path}: scene file version {manifest.get('version')}, this realsim reads {SCENE_VERSION}")
    folder = manifest_path.parent
    entries = _mapping(manifest.get("bodies"), "bodies", manifest_path)
    missing = [b for b in required_bodies if b not in entries]
    if missing:
        raise SceneFileError(f"{manifest_path}: the scene has no {missing} (it has {sorted(entries)}); "
                             f"scan the workspace again with `realsim scan`")
    bodies = {}
    for name, entry in entries.items():
        bodies[name], _ = _read_body(_body_file(folder, name, entry), name, entry.get("count"))
    objects = {}
    for name, entry in _mapping(manifest.get("objects"), "objects", manifest_path).items():
        g, particles = _read_body(_body_file(folder, name, entry), name, entry.get("count"))
        if particles is None:
            raise SceneFileError(f"scene object {name!r} has no particles_m")
        try:
            T = np.asarray(entry.get("T_world_body", np.eye(4).ravel()), dtype=np.float64).reshape(4, 4)
            radius = float(entry.get("particle_radius_m", 0.0))
        except (TypeError, ValueError) as exc:
            raise SceneFileError(f"scene object {name!r}: bad T_world_body or particle_radius_m ({exc})") from exc
        if not (np.isfinite(T).all() and np.allclose(T[:3, :3] @ T[:3, :3].T, np.eye(3), atol=1e-5)
                and np.allclose(T[3], [0, 0, 0, 1])):
            raise SceneFileError(f"scene object {name!r}: T_world_body is not a rigid transform")
        if not (np.isfinite(radius) and radius > 0):
            raise SceneFileError(f"scene object {name!r}: particle_radius_m must be > 0, got {radius}")
        objects[name] = ScannedBody(g, particles.astype(np.float64), radius, T)
    block = _mapping(manifest.get("block"), "block", manifest_path)
    try:
        colors = tuple(tuple(float(x) for x in c) for c in block.get("colors_rgb", []))
    except (TypeError, ValueError) as exc:
        raise SceneFileError(f"{manifest_path}: block.colors_rgb must be a list of RGB triples ({exc})") from exc
    if any(len(c) != 3 or not all(0.0 <= x <= 1.0 for x in c) for c in colors):
        raise SceneFileError(f"{manifest_path}: block.colors_rgb must be RGB triples in [0, 1]")
    cameras = _mapping(manifest.get("cameras"), "cameras", manifest_path)
    for serial, cam in cameras.items():
        k = cam.get("vignetting", 0.0) if isinstance(cam, dict) else None
        if not isinstance(k, (int, float)) or not (0.0 <= k < MAX_VIGNETTING):
            raise SceneFileError(f"{manifest_path}: camera {serial!r}: vignetting must be a number in [0, {MAX_VIGNETTING})")
    return SceneData(bodies=bodies, block_colors=colors, cameras=dict(cameras), objects=objects,
                     info=dict(_mapping(manifest.get("info"), "info", manifest_path)))


def _mapping(value: object, key: str, manifest_path: Path) -> dict:
    """A manifest section that must be a mapping (absent: empty)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SceneFileError(f"{manifest_path}: {key!r} must be a mapping, got {type(value).__name__}")
    return value
