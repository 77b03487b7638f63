"""The block tracker: the twin's estimate of the block over time, one result per frame set.

The live loop steps the twin and hands the tracker every frame set; the tracker owns everything
between the frames and the visual forces that is about *time*:

- **latency compensation**: a bounded history of the twin's past states, each stamped with the moment
  the real scene should look like it (the robot executes a step over the next control period, behind a
  lag the loop measures), so a frame set is compared with the twin's state of the moment it shows
  (``camera_latency_s`` earlier than it arrived);
- **carried motion**: the block's motion while the twin's pusher touches it is motion the real block
  shares, carried from a measurement's moment to the present;
- **surprise**: a correction that saturates, a loss well above its recent level, or block-coloured
  pixels outside the twin's block silhouette (the block is lost) -> **re-localisation** from scratch,
  used only when it disagrees with the twin beyond its own precision and explains the pixels better;
- **rest averaging** of successive measurements while nothing pushes the block (`RestAverage`);
- **snapping**: a trusted measurement far from the twin's block puts it there at once;
- the **settle rules**: after a jump of the twin's block (a snap or a re-localisation) and after a push
  (`PushSettle`) the policy waits until the images and the twin agree.

Poses are (x [m], y [m], yaw [rad]) in the world (robot base) frame.
"""

from __future__ import annotations

import collections
import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..pusht import planar_pose_error, pusher_step_touches
from ..transforms import quat_wxyz_to_yaw, wrap_angle
from ._filters import PushSettle, RestAverage
from .correction import CorrectionResult, frame_time_ns

__all__ = ["BlockTrackerConfig", "BlockTracker", "TrackerUpdate", "RestAverage", "PushSettle"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BlockTrackerConfig:
    """The tracker's rules (``LiveConfig.tracker``)."""

    #: Frames show the scene this long before they reach this host [s] (exposure, readout, transport):
    #: a frame set is compared with the twin's state of that earlier moment.
    camera_latency_s: float = 0.05
    #: The pusher touches the block when it comes within its radius plus this [m]: the block's motion
    #: then is carried from a measurement's moment to the present.
    contact_margin_m: float = 0.003
    #: While no push moves the block, each measurement moves the visual forces' target by this fraction
    #: of its offset from the previous target (1 = no averaging), when that offset is within the window
    #: [m], [deg] (further: something moved the block; the measurement is taken as it is).
    rest_filter: float = 0.35
    rest_window_m: float = 0.006
    rest_window_deg: float = 3.0
    #: A correction that saturates this many frames in a row triggers a global re-localisation of the
    #: block, whose pose then becomes the visual-force target (large disturbances, e.g. a nudge).
    relocalize_after_frames: int = 1
    #: A correction is also surprising when its loss exceeds this multiple of the recent median.
    relocalize_loss_ratio: float = 2.0
    #: ... and is only used when it disagrees with the twin by more than its own precision.
    relocalize_min_offset_m: float = 0.015
    relocalize_min_offset_deg: float = 8.0
    #: ... and explains the block's pixels better: its silhouette IoU beats the twin's by this much.
    relocalize_min_iou_gain: float = 0.05
    #: ... or by this much when it turns the block by more than 45 degrees.
    relocalize_flip_iou_gain: float = 0.2
    #: Every frame set, the block-coloured pixels are compared with the twin's block silhouette at the
    #: moment the frames show: this many pixels and this fraction of them outside it (the arm can hide
    #: the block but never adds block colour) mean the twin has lost the block -> re-localisation.
    lost_min_pixels: int = 15
    lost_fraction: float = 0.05
    #: A trusted correction (or an accepted re-localisation) this far from the twin's block puts the
    #: block there at once instead of pulling it with the visual force (which cannot win against the
    #: kinematic pusher pressing it the wrong way) [m], [deg].
    snap_m: float = 0.02
    snap_deg: float = 12.0
    #: After the twin's block is put elsewhere at once (a snap or an accepted re-localisation, e.g. after
    #: a nudge) the policy waits, the arm holding (steps not counted in the episode), until this many
    #: corrected frame sets in a row were unsurprising (not saturated), or ``settle_after_jump_max_frames``
    #: frame sets passed: the correction converges on the new pose first instead of waiting for the
    #: policy's next decision (the expert plans for most of a second on two cores), which then starts
    #: from the converged pose.
    settle_after_jump_frames: int = 2
    settle_after_jump_max_frames: int = 10
    #: After a push (the twin's pusher leaves the block) the policy waits, the arm holding (steps not
    #: counted in the episode), until the visual forces' target and the twin's block agree within
    #: ``settle_after_push_m`` and ``settle_after_push_deg``, or ``settle_after_push_max_frames`` frame
    #: sets passed (0 = never wait). The twin predicts a push with its nominal physics; the real block
    #: comes to rest a few millimetres and degrees elsewhere, and the correction needs a few frame sets
    #: to see it: a policy deciding in between plans its next push from a pose the block is not at.
    settle_after_push_m: float = 0.001
    settle_after_push_deg: float = 0.5
    settle_after_push_max_frames: int = 8

    def __post_init__(self) -> None:
        if min(self.settle_after_jump_frames, self.settle_after_jump_max_frames, self.settle_after_push_max_frames) < 0:
            raise ValueError("the settle_after_*_frames must be >= 0")
        if not (self.settle_after_push_m > 0 and self.settle_after_push_deg > 0):
            raise ValueError("settle_after_push_m and settle_after_push_deg must be > 0")
        if not 0.0 < self.rest_filter <= 1.0:
            raise ValueError(f"rest_filter must be in (0, 1], got {self.rest_filter}")
        if self.camera_latency_s < 0 or self.contact_margin_m < 0:
            raise ValueError("camera_latency_s and contact_margin_m must be >= 0")


@dataclass
class TrackerUpdate:
    """What one frame set did: the correction's result (its target possibly replaced by a
    re-localisation or a rest average), whether it was surprising, and whether the twin's block was
    re-localised or snapped (then the loop's observation is stale)."""

    result: CorrectionResult
    surprising: bool = False
    relocalized: bool = False
    snapped: bool = False


class BlockTracker:
    """Owns the twin block's estimate over time for one twin world. See the module docstring.

    Args:
        config: the tracker's rules.
        twin: the twin (``twin.env.PushTEnv``, one world) whose block it tracks.
        corrector: the visual-force correction (``twin.perception.correction.VisualCorrector``).
        block: the T the twin's block has (``twin.pusht.TShape``); `set_block` when it is measured.
        pusher_radius_m: the twin's pusher radius [m].
        localizer: ``twin.perception.localize.LocalizerConfig`` for re-localisation and silhouettes.
        reach_m: the correction's reach (``CorrectionConfig.reach_m``) [m].
        counters: where events are counted (shared with the loop's other counters).
        correct: False when the loop runs open loop (no push settle then).
    """

    def __init__(self, config: BlockTrackerConfig, twin, corrector, block, pusher_radius_m: float, localizer,
                 reach_m: float, counters: Counter, correct: bool = True) -> None:
        self.config = config
        self.twin = twin
        self.corrector = corrector
        self.block = block
        self.pusher_radius_m = pusher_radius_m
        self.localizer = localizer
        self.reach_m = reach_m
        self.counters = counters
        self._history: collections.deque = collections.deque(maxlen=32)
        self._losses: collections.deque = collections.deque(maxlen=30)
        #: when the real scene should look like the twin's newest state [ns, monotonic]; 0 before any
        self.last_shown_at_ns = 0
        self._pushed_motion = np.zeros(3)  # cumulative block motion while pushed (see after_twin_step)
        self.touching = False
        self._rest_average = RestAverage(config.rest_filter, config.rest_window_m, np.deg2rad(config.rest_window_deg))
        self._push_settle = PushSettle(config.settle_after_push_m, np.deg2rad(config.settle_after_push_deg),
                                       config.settle_after_push_max_frames if correct else 0)
        self._saturated_frames = 0
        self._settle_left = 0  # after a jump: unsurprising frame sets still to see
        self._settle_budget = 0  # ... and frame sets left at most

    # ------------------------------------------------------------------ episode and shape
    def set_block(self, block) -> None:
        """The twin's block has a new shape (measured): its past states no longer compare."""
        self.block = block
        self.forget_history()

    def forget_history(self) -> None:
        self._history.clear()
        self._rest_average.clear()

    def reset(self) -> None:
        """A new episode: no history, no waits, no memory of past losses or surprises."""
        self.corrector.forget_motion()
        self.forget_history()
        self._push_settle.cancel()
        self._losses.clear()
        self._saturated_frames = 0
        self._settle_left = self._settle_budget = 0

    # ------------------------------------------------------------------ waits
    @property
    def settling_after_jump(self) -> bool:
        """The twin's block jumped: the correction converges on its new pose before the policy acts."""
        return self._settle_left > 0

    @property
    def settling_after_push(self) -> bool:
        """A push ended: the twin's block and the images do not agree yet."""
        return self._push_settle.waiting

    @property
    def confirmed(self) -> bool:
        """The twin's block is where the images say (not pushed now, no wait pending)."""
        return not (self.touching or self._push_settle.waiting or self._settle_left > 0)

    # ------------------------------------------------------------------ per twin step
    def after_twin_step(self, before, after, robot_lag_s: float) -> None:
        """Record a twin step (observations ``before`` and ``after`` it): whether the pusher touched the
        block, the motion the real block shares, and the state the real scene should show once the
        robot executed the step (one control period plus ``robot_lag_s`` [s] from now)."""
        touching = pusher_step_touches(self.block, before.block_pose[0], after.block_pose[0], before.pusher_xy[0],
                                       after.pusher_xy[0], self.pusher_radius_m + self.config.contact_margin_m)
        # The block's motion while the pusher touches it (and the step after, while it slides to rest) is
        # motion the real block shares; the rest is the visual forces' own doing and is not carried.
        if touching or self.touching:
            move = after.block_pose[0] - before.block_pose[0]
            move[2] = wrap_angle(move[2])
            self._pushed_motion = self._pushed_motion + move
        was_touching, self.touching = self.touching, touching
        shown_at = time.monotonic_ns() + int((self.twin.dt + robot_lag_s) * 1e9)
        self._history.append((shown_at, self.twin.body_poses()[0], self.twin.link_poses()[0], self._pushed_motion.copy()))
        self.last_shown_at_ns = shown_at
        if touching:
            self._push_settle.cancel()
        elif was_touching:
            self._push_settle.push_ended()

    # ------------------------------------------------------------------ per frame set
    def correct(self, frames) -> CorrectionResult:
        """The correction of one frame set, latency-compensated (no tracking rules applied)."""
        return self.corrector.correct(frames, self.twin, seen_state=self._seen_state(frames),
                                      target_time_ns=self.last_shown_at_ns or None, carried=self._carried_since(frames))

    def update(self, frames, twin_block_pose: np.ndarray) -> TrackerUpdate:
        """One frame set: correct, judge, re-localise, average, snap, and advance the waits.
        ``twin_block_pose`` is the twin's block now (x, y, yaw)."""
        cfg = self.config
        result = self.correct(frames)
        surprising = result.active and (self._saturated(result) or self._loss_jumped(result.loss))
        if not surprising and self._block_lost(frames):
            surprising = True
            self.counters["footprint_mismatches"] += 1
        self._saturated_frames = self._saturated_frames + 1 if surprising else 0
        relocalized = False
        if self._saturated_frames >= cfg.relocalize_after_frames:
            relocalized = self._relocalize(frames, result)
            self._saturated_frames = 0
        self._average_at_rest(result, plain=result.active and not surprising and not relocalized)
        if result.active and np.isfinite(result.loss):
            self._losses.append(result.loss)
        snapped = result.active and self._snap_if_far(frames, result)
        if relocalized or snapped:
            self._settle_left, self._settle_budget = cfg.settle_after_jump_frames, cfg.settle_after_jump_max_frames
            self._push_settle.cancel()
        elif result.active and self._settle_left > 0:
            self._settle_budget -= 1
            self._settle_left = 0 if self._settle_budget <= 0 else (
                self._settle_left - 1 if not surprising else cfg.settle_after_jump_frames)
        if not (relocalized or snapped):
            self._push_settle.update(result.target_pose if result.active else None, twin_block_pose)
        return TrackerUpdate(result, surprising, relocalized, snapped)

    def _seen_entry(self, frames) -> Any:
        """The history entry (shown at [ns], body poses, link poses, pushed motion) of the twin's past
        state the frames show (latency compensation), or None."""
        if not self._history:
            return None
        t = frame_time_ns(frames, list(frames)) - int(self.config.camera_latency_s * 1e9)
        return min(self._history, key=lambda h: abs(h[0] - t))

    def _seen_state(self, frames):
        """The twin's past (body poses, link poses) the frames show, or None for the current one."""
        entry = self._seen_entry(frames)
        return None if entry is None else (entry[1], entry[2])

    def _carried_since(self, frames) -> np.ndarray | None:
        """The block's pushed motion (dx, dy, dyaw) [m, rad] since the moment the frames show."""
        entry = self._seen_entry(frames)
        return None if entry is None else self._pushed_motion - entry[3]

    def _seen_block_pose(self, frames) -> np.ndarray:
        """The twin's block (x, y, yaw) at the moment ``frames`` show."""
        seen = self._seen_state(frames)
        if seen is None:
            return self.twin.observe().block_pose[0]
        pose = seen[0][0]
        return np.array([pose[0], pose[1], float(quat_wxyz_to_yaw(pose[3:]))])

    def _saturated(self, result: CorrectionResult) -> bool:
        return float(np.linalg.norm(result.delta_xy_m)) > 0.75 * self.reach_m or abs(result.delta_yaw_rad) > np.deg2rad(4.0)

    def _loss_jumped(self, loss: float) -> bool:
        """The image residual is well above its recent level: something moved that the twin did not."""
        if len(self._losses) < 10 or not np.isfinite(loss):
            return False
        return loss > self.config.relocalize_loss_ratio * float(np.median(self._losses))

    def _block_lost(self, frames) -> bool:
        """True when the block-coloured pixels of ``frames`` lie outside the twin's block silhouette."""
        from .localize import footprint_mismatch

        check = footprint_mismatch(frames, self._seen_block_pose(frames), self.block, self.localizer)
        return check.outside >= self.config.lost_min_pixels and check.outside_fraction > self.config.lost_fraction

    def _relocalize(self, frames, result: CorrectionResult) -> bool:
        """Replace a surprising correction's target with the block's globally localised pose; True when
        the localisation disagreed with the twin and was used."""
        from .localize import LocalizationError, localize_block, silhouette_iou

        cfg = self.config
        seen = self._seen_block_pose(frames)
        seen_state = self._seen_state(frames)
        # the twin's arm at the frames' moment hides part of the table: those pixels do not count
        occluders = None if seen_state is None else self.corrector.occluder_masks(*seen_state)
        try:
            loc = localize_block(frames, self.block, self.localizer, hints=(seen,), occluders=occluders)
        except LocalizationError as exc:
            self.counters["relocalization_failed"] += 1
            log.debug("re-localisation failed: %s", exc)  # counted; frequent while the arm hides the block
            return False
        if loc.iou < 0.5:
            self.counters["relocalization_rejected"] += 1
            log.debug("re-localisation rejected: IoU %.2f", loc.iou)
            return False
        (off,), (off_yaw,) = planar_pose_error(loc.pose, seen)
        if off < cfg.relocalize_min_offset_m and off_yaw < np.deg2rad(cfg.relocalize_min_offset_deg):
            # within the localiser's own precision: the gradient correction is the better estimate
            self.counters["relocalization_agrees"] += 1
            log.debug("re-localisation agrees with the twin (%.0f mm, %.1f deg)", off * 1e3, np.rad2deg(off_yaw))
            return False
        # accept only a pose that explains the block's pixels better than the twin's own (the localiser can
        # be fooled, e.g. by the arm hiding part of the block, or by the T's near-symmetries)
        iou_twin = silhouette_iou(frames, seen, self.block, self.localizer, occluders)
        # a turn of the T by tens of degrees between two frames is implausible, its near-symmetric poses
        # are not: such a candidate must explain the pixels much better
        gain = cfg.relocalize_min_iou_gain if off_yaw < np.deg2rad(45.0) else cfg.relocalize_flip_iou_gain
        if not loc.iou > iou_twin + gain:
            self.counters["relocalization_rejected"] += 1
            log.debug("re-localisation rejected: IoU %.2f vs the twin's %.2f (%.0f mm, %.0f deg away)",
                      loc.iou, iou_twin, off * 1e3, np.rad2deg(off_yaw))
            return False
        result.target_pose = loc.pose
        result.observed_pose = loc.pose
        result.target_rate = np.zeros(3)
        result.active = True
        self.corrector.forget_motion()
        self.counters["relocalizations"] += 1
        return True

    def _average_at_rest(self, result: CorrectionResult, plain: bool) -> None:
        """While nothing pushes the block, average successive measurements (see ``RestAverage``)."""
        pose = self._rest_average.update(result.target_pose, self._pushed_motion, plain)
        if pose is not None:
            result.target_pose = pose
            result.target_rate = np.zeros(3)
            self.counters["averaged_at_rest"] += 1

    def _snap_if_far(self, frames, result: CorrectionResult) -> bool:
        """Put the twin's block at ``result.target_pose`` when it is far from it and the measurement explains
        the block's pixels at least as well as the twin's own pose of that moment does. True if it did."""
        from .localize import footprint_mismatch

        cfg = self.config
        target = result.target_pose
        (off,), (off_yaw,) = planar_pose_error(target, self.twin.observe().block_pose[0])
        if not (off > cfg.snap_m or off_yaw > np.deg2rad(cfg.snap_deg)):
            return False
        # judged at the frames' moment: the measurement there against the twin's pose then
        observed = result.observed_pose if np.all(np.isfinite(result.observed_pose)) else target
        seen = self._seen_block_pose(frames)
        if footprint_mismatch(frames, observed, self.block, self.localizer).outside > \
                footprint_mismatch(frames, seen, self.block, self.localizer).outside:
            self.counters["snaps_refused"] += 1
            return False
        self.twin.place_blocks(target[None])
        self.counters["snaps"] += 1
        return True
