"""Configuration of a learned chunking policy, grouped by concern, and its JSON form (``config.json``).

    PolicyConfig(type="flow")                        # state inputs, chunk 16, execute 8, flow in 5 steps
    PolicyConfig(type="diffusion", diffusion=DiffusionConfig(num_inference_steps=10))
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from twin.rig import VirtualCameraConfig

from .features import DEFAULT_STATE_FEATURES, FeatureError, StateFeature
from .generative import DiffusionConfig, FlowConfig

__all__ = ["ChunkingConfig", "NetworkConfig", "ObservationConfig", "PolicyConfig", "POLICY_TYPES", "OVERHEAD_VIEW", "WRIST_VIEW",
           "VisionConfig"]

POLICY_TYPES = ("diffusion", "flow")

#: A static view from above the table, 96 x 96 px: the image policies' default viewpoint.
OVERHEAD_VIEW = VirtualCameraConfig("overhead", eye_m=(0.70, 0.0, 0.85), target_m=(0.54, 0.0, 0.0), width=96, height=96,
                                    hfov_deg=45.0)
#: A wrist camera on the flange, 8 cm off the pusher's axis, looking along it past its tip, 96 x 96 px.
WRIST_VIEW = VirtualCameraConfig("wrist", eye_m=(0.08, 0.0, 0.0), target_m=(0.0, 0.0, 0.35), width=96, height=96,
                                 hfov_deg=80.0, mount="hand")


@dataclass(frozen=True)
class VisionConfig:
    """The image encoder (`vision.ImageEncoder`), one per view, and its training augmentation."""

    channels: tuple[int, ...] = (32, 64, 64)
    keypoints: int = 32
    feature_dim: int = 64
    crop_fraction: float = 0.9  # random crops of this share of each side in training, centred at run time

    def __post_init__(self) -> None:
        if not 0.5 <= self.crop_fraction <= 1.0:
            raise ValueError("crop_fraction must be in [0.5, 1]")


@dataclass(frozen=True)
class ObservationConfig:
    """What the policy sees: low-dimensional features selected by name (see `features`), and images
    rendered from the twin for ``images`` viewpoints (``observation.images.<serial>``)."""

    state: tuple[StateFeature, ...] = DEFAULT_STATE_FEATURES
    images: tuple[VirtualCameraConfig, ...] = ()
    vision: VisionConfig = field(default_factory=VisionConfig)
    #: The scanned scene (`realsim scan`'s scene file) the images are rendered with; "" = the twin's
    #: nominal palette.
    scene_path: str = ""

    def __post_init__(self) -> None:
        if not self.state and not self.images:
            raise FeatureError("a policy needs at least one observation feature")
        keys = [f.key for f in self.state]
        if len(set(keys)) != len(keys):
            raise FeatureError(f"observation features repeat a dataset key: {keys}")
        names = [v.serial for v in self.images]
        if len(set(names)) != len(names):
            raise FeatureError(f"image views must have distinct names, got {names}")

    @property
    def state_dim(self) -> int:
        return sum(f.dim for f in self.state)

    @property
    def image_keys(self) -> list[str]:
        return [f"observation.images.{v.serial}" for v in self.images]


@dataclass(frozen=True)
class ChunkingConfig:
    """Action chunks: predict ``horizon`` actions from the last ``n_obs_steps`` observations, execute
    ``n_action_steps`` of them (starting at the current step), then predict again."""

    n_obs_steps: int = 2
    horizon: int = 16
    n_action_steps: int = 8

    def __post_init__(self) -> None:
        if self.n_obs_steps < 1 or self.n_action_steps < 1:
            raise ValueError("n_obs_steps and n_action_steps must be >= 1")
        if self.n_obs_steps - 1 + self.n_action_steps > self.horizon:
            raise ValueError(f"horizon={self.horizon} must cover n_obs_steps - 1 + n_action_steps "
                             f"= {self.n_obs_steps - 1 + self.n_action_steps}")


@dataclass(frozen=True)
class NetworkConfig:
    """The conditional U-Net (`unet.ConditionalUnet1D`)."""

    down_dims: tuple[int, ...] = (64, 128, 256)  # 4.5 M parameters: ~9 training steps/s at batch 64 on 2 CPU cores
    kernel_size: int = 5
    n_groups: int = 8
    time_embed_dim: int = 128


@dataclass(frozen=True)
class PolicyConfig:
    """A learned policy: its type, inputs, chunking, network and generative head, and the twin
    configuration it was trained for (a plain dict, as the job's config writes it; None when unknown)."""

    type: Literal["diffusion", "flow"] = "flow"
    observation: ObservationConfig = field(default_factory=ObservationConfig)
    chunking: ChunkingConfig = field(default_factory=ChunkingConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    twin: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.type not in POLICY_TYPES:
            raise ValueError(f"unknown policy type {self.type!r}; known: {', '.join(POLICY_TYPES)}")
        levels = len(self.network.down_dims)
        if self.chunking.horizon % (2 ** (levels - 1)):
            raise ValueError(f"horizon={self.chunking.horizon} must be divisible by 2^(levels-1) = {2 ** (levels - 1)}")

    def to_json(self) -> dict[str, Any]:
        """``config.json``'s content (LeRobot's layout: the policy ``type`` and its features on top)."""
        out = json.loads(json.dumps(dataclasses.asdict(self)))  # plain: tuples as lists
        out["input_features"] = {f.key: {"type": "STATE", "shape": [f.dim], "names": list(f.names)}
                                 for f in self.observation.state}
        for v, key in zip(self.observation.images, self.observation.image_keys):
            out["input_features"][key] = {"type": "VISUAL", "shape": [3, v.height, v.width]}
        out["output_features"] = {"action": {"type": "ACTION", "shape": [2], "names": ["target_x", "target_y"]}}
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "PolicyConfig":
        """The config in a ``config.json`` (raises ``ValueError`` with the reason when it is not one)."""
        try:
            obs = data["observation"]
            vision = obs.get("vision", {})
            observation = ObservationConfig(
                tuple(StateFeature(f["key"], tuple(f["names"])) for f in obs["state"]),
                tuple(VirtualCameraConfig(**{**v, "eye_m": tuple(v["eye_m"]), "target_m": tuple(v["target_m"])})
                      for v in obs.get("images", [])),
                VisionConfig(**{**vision, "channels": tuple(vision.get("channels", VisionConfig.channels))}))
            return cls(type=data["type"], observation=observation,
                       chunking=ChunkingConfig(**data["chunking"]),
                       network=NetworkConfig(**{**data["network"], "down_dims": tuple(data["network"]["down_dims"])}),
                       diffusion=DiffusionConfig(**data["diffusion"]), flow=FlowConfig(**data["flow"]),
                       twin=data.get("twin"))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a policy config: {exc!r}") from exc

