"""franka_core_msgs / franka_msgs message classes generated at run time with ``genpy.dynamic`` from the
``.msg`` definitions kept in ``msg/`` (those packages are not available as Debian packages).

Importing this module imports genpy and std_msgs (ROS 1), so only the franka_ros backend and its
simulated controller import it.
"""

from __future__ import annotations

import functools
from pathlib import Path

__all__ = ["MSG_DIR", "message_classes", "full_text"]

MSG_DIR = Path(__file__).with_name("msg")
_SEPARATOR = "=" * 80


def _read(pkg_type: str) -> str:
    pkg, name = pkg_type.split("/")
    return (MSG_DIR / pkg / f"{name}.msg").read_text()


def full_text(core_type: str, deps: tuple[str, ...]) -> str:
    """The ``gendeps --cat`` style concatenation genpy expects: the type, then each dependency."""
    import std_msgs.msg

    parts = [_read(core_type)]
    for dep in deps:
        text = std_msgs.msg.Header._full_text if dep == "std_msgs/Header" else _read(dep)
        parts.append(f"{_SEPARATOR}\nMSG: {dep}\n{text}")
    return "\n".join(parts)


@functools.lru_cache(maxsize=1)
def message_classes() -> dict[str, type]:
    """``{"franka_core_msgs/JointCommand": cls, "franka_core_msgs/RobotState": cls, "franka_msgs/Errors": cls}``."""
    import genpy.dynamic

    out: dict[str, type] = {}
    for core, deps in (
        ("franka_core_msgs/JointCommand", ("std_msgs/Header",)),
        ("franka_core_msgs/RobotState", ("std_msgs/Header", "franka_msgs/Errors")),
    ):
        generated = genpy.dynamic.generate_dynamic(core, full_text(core, deps))
        out.update({k: v for k, v in generated.items() if k.startswith("franka")})
    return out
