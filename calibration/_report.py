"""Calibration quality report: reprojection RMS [px] and hand-eye consistency [mm, deg] per camera."""

from __future__ import annotations

import dataclasses

from ._file import SetupCalibration


@dataclasses.dataclass(frozen=True)
class QualityThresholds:
    """Limits a calibration must meet.

    Attributes:
        max_reprojection_rms_px: largest acceptable RMS corner reprojection error [px].
        max_handeye_pos_mm: largest acceptable hand-eye position consistency [mm].
        max_handeye_rot_deg: largest acceptable hand-eye rotation consistency [deg].
        max_age_days: calibrations older than this are flagged (0 disables).
    """

    max_reprojection_rms_px: float = 1.0
    max_handeye_pos_mm: float = 2.0
    max_handeye_rot_deg: float = 0.5
    max_age_days: float = 0.0


@dataclasses.dataclass(frozen=True)
class QualityItem:
    serial: str
    name: str
    value: float
    limit: float
    ok: bool


@dataclasses.dataclass(frozen=True)
class QualityReport:
    """Per-camera checks; ``ok`` when every check passes and every camera has extrinsics."""

    items: tuple[QualityItem, ...]
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems and all(i.ok for i in self.items)

    def format(self) -> str:
        lines = []
        for it in self.items:
            lines.append(f"{it.serial:>16}  {it.name:<28} {it.value:10.4f}  (limit {it.limit:g})  {'ok' if it.ok else 'FAIL'}")
        lines += [f"problem: {p}" for p in self.problems]
        lines.append("calibration OK" if self.ok else "calibration NOT OK")
        return "\n".join(lines)


_LIMITS = {
    "reprojection_rms_px": "max_reprojection_rms_px",
    "handeye_pos_consistency_mm": "max_handeye_pos_mm",
    "handeye_rot_consistency_deg": "max_handeye_rot_deg",
}


def quality_report(calibration: SetupCalibration, thresholds: QualityThresholds | None = None) -> QualityReport:
    """Check every camera's residuals against ``thresholds``; a camera without extrinsics is a problem."""
    import datetime as _dt

    th = thresholds or QualityThresholds()
    items: list[QualityItem] = []
    problems: list[str] = []
    if not calibration.cameras:
        problems.append("the calibration holds no cameras")
    for serial in calibration.serials:
        cam = calibration.cameras[serial]
        if cam.mount == "static" and cam.T_world_camera is None:
            problems.append(f"camera {serial}: no T_world_camera (extrinsics not calibrated)")
        if cam.mount == "wrist" and cam.T_flange_camera is None:
            problems.append(f"camera {serial}: no T_flange_camera (hand-eye not calibrated)")
        for key, attr in _LIMITS.items():
            if key in cam.residuals:
                v, lim = cam.residuals[key], getattr(th, attr)
                items.append(QualityItem(serial, key, v, lim, bool(v <= lim)))
        if th.max_age_days > 0 and cam.date:
            try:
                when = _dt.datetime.fromisoformat(cam.date)
                if when.tzinfo is None:
                    when = when.replace(tzinfo=_dt.timezone.utc)
                age = (_dt.datetime.now(_dt.timezone.utc) - when).total_seconds() / 86400.0
                items.append(QualityItem(serial, "age_days", age, th.max_age_days, age <= th.max_age_days))
            except ValueError:
                problems.append(f"camera {serial}: unreadable date {cam.date!r}")
    return QualityReport(tuple(items), tuple(problems))


__all__ = ["QualityItem", "QualityReport", "QualityThresholds", "quality_report"]
