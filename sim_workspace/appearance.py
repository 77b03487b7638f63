"""What the simulated workspace looks like, and how far its calibration is from the truth: the part of
the domain gap that the twin's cameras see.

A real lab has a block of some colour (perhaps two-tone or printed), a table with grain, markings and
a tape line, a Panda with white links and dark joints, uneven light (a gradient across the table,
vignetting, each camera's own white balance) and a ChArUco calibration a few millimetres off. Each part
is drawn per run from its config (seeded by the world's seed, from a generator of its own so the
physical gap's draws do not change), and each can be switched off; ``AppearanceGapConfig(enabled=False)``
and ``CalibrationErrorConfig(enabled=False)`` give the twin's nominal palette and an exact calibration.

Colours are RGB in [0, 1]; positions are metres in the body's frame (block, links) or the world frame
(table); camera poses are ``T_world_camera`` with OpenCV axes.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from calibration import CameraIntrinsics

__all__ = ["BlockLookConfig", "TableLookConfig", "RobotLookConfig", "LightingConfig", "AppearanceGapConfig",
           "CalibrationErrorConfig", "Appearance", "CameraPhotometry", "draw_appearance", "apply_appearance",
           "draw_calibration_error", "block_colors_at", "look_generator", "BLOCK_PATTERNS"]

BLOCK_PATTERNS = ("plain", "two_tone", "stripes")


@dataclass(frozen=True)
class BlockLookConfig:
    """The block's colour: any hue, a drawn saturation and brightness; optionally two-tone (the sides a
    darker shade of the top) or printed with stripes across the top."""

    enabled: bool = True
    saturation: tuple[float, float] = (0.55, 0.9)
    value: tuple[float, float] = (0.5, 0.9)
    #: Chances of a two-tone and of a striped block (else plain).
    two_tone_probability: float = 0.25
    stripes_probability: float = 0.25
    #: Brightness of the second tone relative to the first.
    shade: tuple[float, float] = (0.55, 0.75)
    stripe_period_m: float = 0.03


@dataclass(frozen=True)
class TableLookConfig:
    """A table with grain (a few sinusoids along a drawn direction), dark markings and a tape line."""

    enabled: bool = True
    #: Brightness and tint (HSV saturation) of the table's base colour.
    value: tuple[float, float] = (0.35, 0.6)
    saturation: tuple[float, float] = (0.0, 0.25)
    #: Relative brightness change of the grain, and its wavelength [m].
    grain_amplitude: tuple[float, float] = (0.04, 0.1)
    grain_wavelength_m: tuple[float, float] = (0.02, 0.06)
    markings: tuple[int, int] = (2, 5)
    marking_size_m: tuple[float, float] = (0.01, 0.03)
    tape: bool = True
    tape_width_m: float = 0.025


@dataclass(frozen=True)
class RobotLookConfig:
    """A Panda's links are white, its joints' housings dark; the pusher is dark."""

    enabled: bool = True
    link_color: tuple[float, float, float] = (0.92, 0.92, 0.9)
    joint_color: tuple[float, float, float] = (0.12, 0.12, 0.13)
    #: A link's Gaussians this close to its frame's origin (on the joint's axis) are the joint's [m].
    joint_radius_m: float = 0.06
    pusher_color: tuple[float, float, float] = (0.1, 0.1, 0.1)


@dataclass(frozen=True)
class LightingConfig:
    """Uneven light: a brightness gradient across the table (a relative change from one side to the
    other), vignetting (relative loss at the image corners) and each camera's white balance (each channel's
    gain drawn within 1 +- ``white_balance``)."""

    enabled: bool = True
    gradient: tuple[float, float] = (0.1, 0.3)
    vignetting: tuple[float, float] = (0.1, 0.3)
    white_balance: float = 0.06


@dataclass(frozen=True)
class AppearanceGapConfig:
    """The workspace's look (``enabled=False``: the twin's nominal palette, even light)."""

    enabled: bool = True
    block: BlockLookConfig = field(default_factory=BlockLookConfig)
    table: TableLookConfig = field(default_factory=TableLookConfig)
    robot: RobotLookConfig = field(default_factory=RobotLookConfig)
    lighting: LightingConfig = field(default_factory=LightingConfig)


@dataclass(frozen=True)
class CalibrationErrorConfig:
    """The calibration file handed to the twin differs from the truth by a drawn extrinsic error (a
    translation of a drawn length and a rotation of a drawn angle, in random directions) and a focal
    length error (fx and fy scaled by the same drawn factor), per camera."""

    enabled: bool = True
    translation_m: tuple[float, float] = (0.001, 0.004)
    rotation_deg: tuple[float, float] = (0.1, 0.4)
    #: Largest relative focal-length error (drawn uniformly in +-).
    focal_fraction: float = 0.005


@dataclass(frozen=True)
class CameraPhotometry:
    """One camera's response: per-channel white-balance gains and radial vignetting (the image is
    multiplied by ``1 - vignetting * r^2``, r = 1 at the corners)."""

    gains: tuple[float, float, float] = (1.0, 1.0, 1.0)
    vignetting: float = 0.0

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        """``rgb`` [H, W, 3] (linear, [0, 1]) as this camera records it."""
        from twin.perception.scan import vignette_map  # the falloff the twin's scan models

        out = rgb * np.asarray(self.gains)
        if self.vignetting:
            out = out * vignette_map(rgb.shape[0], rgb.shape[1], self.vignetting).numpy()
        return out


@dataclass(frozen=True)
class Appearance:
    """One drawn look of the workspace (see ``draw_appearance``)."""

    block_colors: tuple[tuple[float, float, float], tuple[float, float, float]] | None = None
    block_pattern: str = "plain"
    table_color: tuple[float, float, float] | None = None
    grain: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # amplitude, wavelength [m], direction [rad], phase
    markings: tuple[tuple[float, float, float, float], ...] = ()  # x, y [m], half size [m], darkness
    tape: tuple[float, float, float, tuple[float, float, float]] | None = None  # x, y [m], angle [rad], colour
    gradient: tuple[float, float] = (0.0, 0.0)  # relative change across the table, direction [rad]
    robot: RobotLookConfig | None = None
    cameras: dict[str, CameraPhotometry] = field(default_factory=dict)

    @property
    def block_hue(self) -> float | None:
        """The block's hue in [0, 1) (None: the nominal palette)."""
        return None if self.block_colors is None else colorsys.rgb_to_hsv(*self.block_colors[0])[0]


def look_generator(seed: int) -> np.random.Generator:
    """The generator a world of ``seed`` draws its look and calibration error from (its own stream: the
    physical gap's draws do not change with the look's)."""
    return np.random.default_rng((seed, 29))


def _hsv(h: float, s: float, v: float) -> tuple[float, float, float]:
    return tuple(float(c) for c in colorsys.hsv_to_rgb(h % 1.0, s, v))


def draw_appearance(config: AppearanceGapConfig, serials: tuple[str, ...], rng: np.random.Generator) -> Appearance:
    """Draw the workspace's look for cameras ``serials``. Every draw is made whether its part is enabled or
    not, so switching one part off leaves the others' draws unchanged."""
    b, t, li = config.block, config.table, config.lighting
    hue = float(rng.uniform(0.0, 1.0))
    top = _hsv(hue, rng.uniform(*b.saturation), rng.uniform(*b.value))
    shade = float(rng.uniform(*b.shade))
    pick = float(rng.uniform())
    pattern = ("two_tone" if pick < b.two_tone_probability else
               "stripes" if pick < b.two_tone_probability + b.stripes_probability else "plain")
    second = tuple(shade * c for c in top)
    table = _hsv(rng.uniform(0.05, 0.15), rng.uniform(*t.saturation), rng.uniform(*t.value))
    grain = (float(rng.uniform(*t.grain_amplitude)), float(rng.uniform(*t.grain_wavelength_m)),
             float(rng.uniform(0, np.pi)), float(rng.uniform(0, 2 * np.pi)))
    n_marks = int(rng.integers(t.markings[0], t.markings[1] + 1))
    marks = tuple((float(rng.uniform(0.3, 0.8)), float(rng.uniform(-0.35, 0.35)), float(rng.uniform(*t.marking_size_m)) / 2,
                   float(rng.uniform(0.4, 0.8))) for _ in range(n_marks))
    tape_hue = hue + float(rng.uniform(0.25, 0.75))  # far from the block's hue: a tape is never mistaken for it
    tape = (float(rng.uniform(0.4, 0.7)), float(rng.uniform(-0.25, 0.25)), float(rng.uniform(0, np.pi)),
            _hsv(tape_hue, rng.uniform(0.5, 0.9), rng.uniform(0.6, 0.95)))
    gradient = (float(rng.uniform(*li.gradient)), float(rng.uniform(-np.pi, np.pi)))
    cams = {s: CameraPhotometry(tuple(float(g) for g in rng.uniform(1 - li.white_balance, 1 + li.white_balance, 3)),
                                float(rng.uniform(*li.vignetting))) for s in serials}
    if not config.enabled:
        return Appearance()
    return Appearance(
        block_colors=(top, second) if b.enabled else None,
        block_pattern=pattern if b.enabled else "plain",
        table_color=table if t.enabled else None,
        grain=grain if t.enabled else (0.0, 0.0, 0.0, 0.0),
        markings=marks if t.enabled else (),
        tape=tape if (t.enabled and t.tape) else None,
        gradient=gradient if li.enabled else (0.0, 0.0),
        robot=config.robot if config.robot.enabled else None,
        cameras=cams if li.enabled else {},
    )


def table_colors(look: Appearance, xy: np.ndarray, base: np.ndarray, centre_xy: np.ndarray, size_m: float,
                 tape_width_m: float) -> np.ndarray:
    """The table's colour [n, 3] at world points ``xy`` [n, 2] [m] (grain, markings, tape, light)."""
    rgb = np.tile(np.asarray(look.table_color if look.table_color is not None else base, dtype=np.float64), (len(xy), 1))
    amp, wavelength, direction, phase = look.grain
    if amp:
        d = np.array([np.cos(direction), np.sin(direction)])
        s = xy @ d
        wobble = 0.3 * np.sin(2 * np.pi * (xy @ np.array([-d[1], d[0]])) / (7 * wavelength))
        grain = 0.6 * np.sin(2 * np.pi * s / wavelength + phase + wobble) + 0.4 * np.sin(2 * np.pi * s / (2.7 * wavelength))
        rgb *= (1.0 + amp * grain)[:, None]
    for x, y, half, darkness in look.markings:
        inside = (np.abs(xy[:, 0] - x) < half) & (np.abs(xy[:, 1] - y) < half)
        rgb[inside] *= 1.0 - darkness
    if look.tape is not None:
        x, y, angle, color = look.tape
        normal = np.array([-np.sin(angle), np.cos(angle)])
        on_tape = np.abs((xy - np.array([x, y])) @ normal) < tape_width_m / 2
        rgb[on_tape] = color
    change, direction = look.gradient
    if change:
        s = (xy - centre_xy) @ np.array([np.cos(direction), np.sin(direction)]) / size_m
        rgb *= (1.0 + change * np.clip(s, -0.5, 0.5))[:, None]
    return np.clip(rgb, 0.0, 1.0)


def block_colors_at(look: Appearance, points_m: np.ndarray, thickness_m: float, stripe_period_m: float) -> np.ndarray:
    """The drawn block's colour [n, 3] at points [n, 3] of its surface (block frame, metres)."""
    p = np.asarray(points_m, dtype=np.float64)
    top, second = (np.asarray(c) for c in look.block_colors)
    on_top = p[:, 2] > 0.5 * thickness_m - 1e-3
    rgb = np.tile(top, (len(p), 1))
    if look.block_pattern == "two_tone":
        rgb[~on_top] = second
    elif look.block_pattern == "stripes":
        band = np.floor(p[:, 0] / (stripe_period_m / 2)).astype(int) % 2 == 1
        rgb[on_top & band] = second
    return rgb


def apply_appearance(scene, look: Appearance, table_look: TableLookConfig = TableLookConfig(),
                     block_look: BlockLookConfig = BlockLookConfig()) -> None:  # noqa: ANN001 - GaussianScene
    """Recolour ``scene`` (a ``twin.gaussian_scene.GaussianScene``) with a drawn look, in place."""
    from twin.gaussians import GaussianSet

    def recolored(g: GaussianSet, rgb: np.ndarray) -> GaussianSet:
        return GaussianSet(g.means, g.quats, g.scales, g.opacities, torch.as_tensor(rgb, dtype=g.colors.dtype))

    if look.block_colors is not None:
        g = scene.bodies["block"]
        rgb = block_colors_at(look, g.means.numpy(), scene.twin.block.thickness_m, block_look.stripe_period_m)
        scene.replace_body("block", recolored(g, rgb))
    if look.robot is not None:
        r = look.robot
        for name in scene.dynamic_names:
            g = scene.bodies[name]
            if name == "pusher":
                rgb = np.tile(r.pusher_color, (len(g), 1))
            elif name.startswith("panda_link"):
                near_joint = g.means.norm(dim=1).numpy() < r.joint_radius_m
                rgb = np.where(near_joint[:, None], r.joint_color, r.link_color)
            else:
                continue
            scene.replace_body(name, recolored(g, rgb))
    if look.table_color is not None or look.gradient[0]:
        ws = scene.twin.workspace
        centre = np.array([0.5 * sum(ws.x_range_m), 0.5 * sum(ws.y_range_m)])
        size = max(ws.x_range_m[1] - ws.x_range_m[0], ws.y_range_m[1] - ws.y_range_m[0]) + 2 * scene.config.table_margin_m
        xy = scene.table.means[:, :2].numpy().astype(np.float64)
        rgb = table_colors(look, xy, np.asarray(scene.config.table_color), centre, size, table_look.tape_width_m)
        scene.replace_body("table", recolored(scene.table, rgb))


def _rotation(axis: np.ndarray, angle_rad: float) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_rotvec(axis / np.linalg.norm(axis) * angle_rad).as_matrix()


def draw_calibration_error(config: CalibrationErrorConfig, cameras: dict[str, tuple[CameraIntrinsics, np.ndarray]],
                           rng: np.random.Generator) -> dict[str, tuple[CameraIntrinsics, np.ndarray]]:
    """The calibration the twin is given: serial -> (intrinsics with the focal error, ``T_world_camera``
    moved by the drawn error: rotated about the camera's centre and translated, world frame)."""
    out = {}
    for serial, (intr, T) in cameras.items():
        t_dir, r_dir = rng.normal(size=3), rng.normal(size=3)
        t_len = rng.uniform(*config.translation_m)
        angle = np.deg2rad(rng.uniform(*config.rotation_deg))
        focal = 1.0 + rng.uniform(-config.focal_fraction, config.focal_fraction)
        if not config.enabled:
            out[serial] = (intr, np.asarray(T, dtype=np.float64))
            continue
        T_err = np.asarray(T, dtype=np.float64).copy()
        T_err[:3, :3] = _rotation(r_dir, angle) @ T_err[:3, :3]
        T_err[:3, 3] += t_dir / np.linalg.norm(t_dir) * t_len
        out[serial] = (replace(intr, fx=intr.fx * focal, fy=intr.fy * focal), T_err)
    return out
