#!/usr/bin/env bash
# Installs the Debian packages realsim needs (idempotent). Runs apt-get only when root and only when
# something is missing; otherwise prints what to install.
#   libusb-1.0-0   : pyrealsense2's USB backend
#   python3-ros*   : a real ROS 1 master and rospy for the franka_ros backend and its tests
#   chromium, chromium-driver : a real headless browser for the browser teleoperator's tests (Selenium)
set -euo pipefail
PKGS=(libusb-1.0-0 python3-rospy python3-rosmaster python3-roslaunch python3-genpy python3-genmsg
      python3-std-msgs python3-sensor-msgs python3-rosgraph python3-rosgraph-msgs chromium chromium-driver)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "realsim: missing Debian packages: ${missing[*]}" >&2
  echo "realsim: run as root or: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
