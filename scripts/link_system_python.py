"""Let the virtual environment see Debian's ROS 1 Python packages (rospy, rosmaster, genpy, ...).

Debian ships ROS 1 as ``python3-ros*`` packages in ``/usr/lib/python3/dist-packages``. A ``.pth`` file
appends that folder to ``sys.path`` *after* the venv's own site-packages, so the venv's pinned packages
always win and only modules missing from the venv come from Debian.
"""

from __future__ import annotations

import site
import sys
from pathlib import Path

DEBIAN_DIST_PACKAGES = Path("/usr/lib/python3/dist-packages")


def main() -> int:
    if not DEBIAN_DIST_PACKAGES.is_dir():
        print(f"realsim: {DEBIAN_DIST_PACKAGES} not found; ROS 1 backends will be unavailable", file=sys.stderr)
        return 0
    target = Path(site.getsitepackages()[0]) / "zz_realsim_debian_ros.pth"
    target.write_text(f"{DEBIAN_DIST_PACKAGES}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
