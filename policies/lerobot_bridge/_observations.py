"""The twin's observations shaped as the dataset a LeRobot checkpoint was trained on.

A realsim dataset (`policies.dataset`) records, per frame and world frame, metres and radians:

- ``observation.state`` [9] float32: pusher (x, y) and the 7 joint angles (`policies.dataset.STATE_NAMES`);
- ``observation.environment_state`` [19] float32: block (x, y, yaw) and the T's 8 outline corners (x, y)
  (`policies.dataset.ENV_STATE_NAMES`);
- ``observation.images.<view>`` RGB uint8 [H, W, 3]: the twin's state rendered for the view ``<view>``
  of ``meta/twin.json`` by `policies.learned.images.ObservationRenderer` (``_recorder``/``_render``).

The element names of the state features come from the training dataset's ``meta/info.json`` when the
checkpoint's ``train_config.json`` still points at it, else from realsim's dataset definition; each is
computed from the twin's ``Observation`` by `policies.learned.features` (the one definition the
dataset's columns and realsim's own policies share). Views, the Gaussians' sampling and the scene file
come from the dataset's ``meta/twin.json``; without it a view named "top" falls back to `realsim
collect`'s default (the overhead 96 x 96 view), any other view is an error.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from twin.config import TwinConfig
    from twin.env import Observation
    from twin.rig import VirtualCameraConfig

__all__ = ["ObservationEncoder", "dataset_root", "IMAGE_PREFIX"]

log = logging.getLogger(__name__)
IMAGE_PREFIX = "observation.images."


def dataset_root(checkpoint: Path) -> Path | None:
    """The training dataset's root named by ``checkpoint/train_config.json`` (None: not there any more)."""
    try:
        root = json.loads((checkpoint / "train_config.json").read_text())["dataset"]["root"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(root, str) or not (Path(root) / "meta" / "info.json").is_file():
        return None
    return Path(root)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class ObservationEncoder:
    """Turns twin observations of N worlds into a LeRobot checkpoint's input arrays.

    Args:
        input_features: the checkpoint's inputs, key -> shape (images (3, H, W)).
        twin: the twin whose states image views are rendered of (None: only state inputs allowed).
        device: torch device of the renderer ("cpu", "cuda").
        root: the training dataset's root (names, views, Gaussians, scene file), or None.

    Raises ``ValueError`` when an input is not one a realsim dataset has or cannot be made.
    """

    def __init__(self, input_features: dict[str, tuple[int, ...]], twin: "TwinConfig | None", device: str = "cpu",
                 root: Path | None = None) -> None:
        from policies.dataset import ENV_STATE_NAMES, STATE_NAMES
        from policies.learned.features import StateFeature

        self.device = device
        info = _read_json(root / "meta" / "info.json") if root is not None else None
        self._twin_meta = (_read_json(root / "meta" / "twin.json") if root is not None else None) or {}
        defaults = {"observation.state": STATE_NAMES, "observation.environment_state": ENV_STATE_NAMES}
        self.states: dict[str, StateFeature] = {}
        self.images: dict[str, tuple[int, int]] = {}  # view name -> (H, W)
        for key, shape in input_features.items():
            if key.startswith(IMAGE_PREFIX):
                if len(shape) != 3 or shape[0] != 3:
                    raise ValueError(f"image input {key} must be (3, H, W), got {shape}")
                self.images[key[len(IMAGE_PREFIX):]] = (shape[1], shape[2])
                continue
            names = ((info or {}).get("features", {}).get(key) or {}).get("names") or defaults.get(key)
            if names is None:
                raise ValueError(f"input {key} is not a feature of realsim datasets "
                                 f"(known: {', '.join(defaults)}, {IMAGE_PREFIX}<view>)")
            if len(shape) != 1 or shape[0] != len(names):
                raise ValueError(f"input {key} has shape {shape}, the dataset's has {len(names)} elements {list(names)}")
            self.states[key] = StateFeature(key, tuple(names))  # unknown names raise FeatureError (a ValueError)
        self.views = tuple(self._view(name, hw) for name, hw in self.images.items())
        self.renderer = None
        self._last: dict[str, np.ndarray] = {}
        if self.views:
            if twin is None:
                raise ValueError("a checkpoint with image inputs needs the twin's config to render them")
            self.set_twin_config(twin)

    def _view(self, name: str, hw: tuple[int, int]) -> "VirtualCameraConfig":
        from twin.rig import VirtualCameraConfig

        cams = [c for c in self._twin_meta.get("cameras", []) if isinstance(c, dict) and c.get("serial") == name]
        if cams:
            c = cams[0]
            try:
                view = VirtualCameraConfig(**{**c, "eye_m": tuple(c["eye_m"]), "target_m": tuple(c["target_m"])})
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"the dataset's view {name!r} in meta/twin.json is not a camera: {exc}") from None
        elif name == "top":
            from policies.learned.config import OVERHEAD_VIEW

            log.warning("the checkpoint's dataset is not reachable: rendering view 'top' as `realsim collect`'s "
                        "default (overhead, 96 x 96)")
            view = dataclasses.replace(OVERHEAD_VIEW, serial="top")
        else:
            raise ValueError(f"image input {IMAGE_PREFIX}{name}: no view of that name (the checkpoint's "
                             f"train_config.json must name the dataset, whose meta/twin.json holds the view)")
        if (view.height, view.width) != hw:
            raise ValueError(f"view {name!r} renders {view.height} x {view.width} px, the checkpoint takes {hw[0]} x {hw[1]}")
        return view

    def set_twin_config(self, twin: "TwinConfig") -> None:
        """Render the views of ``twin`` (e.g. after the live loop measured the real block)."""
        if not self.views:
            return
        from policies.learned.images import ObservationRenderer
        from twin.gaussian_scene import GaussianSceneConfig

        meta = self._twin_meta.get("gaussians") or {}
        fields = {f.name for f in dataclasses.fields(GaussianSceneConfig)}
        try:
            gaussians = GaussianSceneConfig(**{k: tuple(v) if isinstance(v, list) else v
                                               for k, v in meta.items() if k in fields})
        except (TypeError, ValueError) as exc:
            raise ValueError(f"the dataset's Gaussians in meta/twin.json: {exc}") from None
        scene_path = self._twin_meta.get("scene_path") or ""
        if scene_path and not Path(scene_path).is_dir():
            raise ValueError(f"the dataset's images were rendered with the scene {scene_path}, which is gone")
        self.renderer = ObservationRenderer(twin, self.views, device=self.device, gaussians=gaussians,
                                            scene_path=scene_path)
        self._last = {}

    def encode(self, obs: "Observation", active: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Input key -> array with leading dimension N: state features float32 [N, D], images uint8
        [N, H, W, 3] (rendered for the ``active`` worlds only; the others keep their last image)."""
        n = obs.pusher_xy.shape[0]
        out = {key: np.ascontiguousarray(f.from_observation(obs), dtype=np.float32) for key, f in self.states.items()}
        if self.views:
            if obs.body_poses is None:
                raise ValueError("image inputs need the twin's body poses in its observations")
            active = np.ones(n, dtype=bool) if active is None else np.asarray(active, dtype=bool).reshape(n)
            idx = np.flatnonzero(active)
            rendered = self.renderer.render(obs.body_poses[idx], obs.joint_pos[idx]) if len(idx) else {}
            for v in self.views:
                last = self._last.get(v.serial)
                if last is None or last.shape[0] != n:
                    last = np.zeros((n, v.height, v.width, 3), np.uint8)
                if len(idx):
                    last[idx] = rendered[v.serial]
                self._last[v.serial] = last
                out[IMAGE_PREFIX + v.serial] = last.copy()
        return out
