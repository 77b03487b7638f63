"""franka_core_msgs / franka_msgs message classes generated at run time with ``genpy.dynamic`` from the
upstream ``.msg`` definitions kept in ``msg/`` (those packages are not available as Debian packages).

The definitions are byte-for-byte upstream text: ``franka_core_msgs`` from franka_ros_interface
(justagist/franka_ros_interface, master f1f3649a), and ``franka_msgs/Errors`` from franka_ros
(frankaemika/franka_ros) in the two forms robots run: the 36-field one of franka_ros 0.2.0 to 0.8.2 (tag
0.7.1 kept, the version franka_ros_interface requires) and the 41-field one of 0.9.0 to 0.10.x (tag
0.10.2 kept). `RobotState` embeds `Errors`, so its ROS MD5 sum, and with it whether a robot PC accepts
the ``robot_state`` subscription, depends on which one the robot runs: ``FrankaRosConfig.franka_ros_version``.

Importing this module imports nothing from ROS; `message_classes` imports genpy and std_msgs.
"""

from __future__ import annotations

import functools
from pathlib import Path

from .._errors import BackendError

__all__ = ["MSG_DIR", "DEFINITION_SETS", "definition_set", "full_text", "message_classes"]

MSG_DIR = Path(__file__).with_name("msg")
_SEPARATOR = "=" * 80

#: franka_ros releases -> the folder of the franka_msgs/Errors.msg they ship ((low, high) inclusive)
DEFINITION_SETS: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    "franka_ros-0.7.1": ((0, 2, 0), (0, 8, 99)),
    "franka_ros-0.10.2": ((0, 9, 0), (0, 10, 99)),
}


def definition_set(franka_ros_version: str) -> str:
    """The ``msg/`` folder holding the franka_msgs definitions of a franka_ros release ("0.7.1")."""
    try:
        v = tuple(int(p) for p in franka_ros_version.strip().split("."))
    except ValueError:
        v = ()
    if len(v) != 3:
        raise BackendError(f"franka_ros_version {franka_ros_version!r} is not a release number like '0.7.1'")
    for name, (lo, hi) in DEFINITION_SETS.items():
        if lo <= v <= hi:
            return name
    known = ", ".join(f"{'.'.join(map(str, lo))}-{'.'.join(map(str, hi[:2]))}.x" for lo, hi in DEFINITION_SETS.values())
    raise BackendError(f"no franka_msgs definitions known for franka_ros {franka_ros_version} (known: {known})")


def _read(root: Path, errors_set: str, pkg_type: str) -> str:
    pkg, name = pkg_type.split("/")
    folder = root / errors_set / pkg if pkg == "franka_msgs" else root / pkg
    return (folder / f"{name}.msg").read_text()


def full_text(core_type: str, deps: tuple[str, ...], errors_set: str, root: Path = MSG_DIR) -> str:
    """The ``gendeps --cat`` style concatenation genpy expects: the type, then each dependency."""
    import std_msgs.msg

    parts = [_read(root, errors_set, core_type)]
    for dep in deps:
        text = std_msgs.msg.Header._full_text if dep == "std_msgs/Header" else _read(root, errors_set, dep)
        parts.append(f"{_SEPARATOR}\nMSG: {dep}\n{text}")
    return "\n".join(parts)


@functools.lru_cache(maxsize=8)
def message_classes(franka_ros_version: str = "0.7.1", root: Path = MSG_DIR) -> dict[str, type]:
    """``{"franka_core_msgs/JointCommand": cls, "franka_core_msgs/RobotState": cls, "franka_msgs/Errors": cls}``
    for a franka_ros release, from the definitions under ``root`` (laid out as ``msg/``)."""
    import genpy.dynamic

    errors_set = definition_set(franka_ros_version)
    out: dict[str, type] = {}
    for core, deps in (
        ("franka_core_msgs/JointCommand", ("std_msgs/Header",)),
        ("franka_core_msgs/RobotState", ("std_msgs/Header", "franka_msgs/Errors")),
    ):
        generated = genpy.dynamic.generate_dynamic(core, full_text(core, deps, errors_set, Path(root)))
        out.update({k: v for k, v in generated.items() if k.startswith("franka")})
    return out
