"""ZMQ endpoint checks shared by the robot bridge and the camera stream (a leaf: no zmq import)."""

from __future__ import annotations

import ipaddress
import urllib.parse

__all__ = ["is_loopback_endpoint"]


def is_loopback_endpoint(endpoint: str) -> bool:
    """True for ``ipc://``, ``inproc://`` and ``tcp://`` on a loopback address or ``localhost``; False
    for anything else (wildcards, interface names, other addresses, other transports). Non-loopback
    binds of the robot bridge and the camera stream need CURVE keys."""
    scheme, sep, rest = endpoint.partition("://")
    if not sep:
        return False
    if scheme in ("inproc", "ipc"):
        return True
    if scheme != "tcp":
        return False
    try:
        host = urllib.parse.urlsplit(f"tcp://{rest}").hostname or ""
    except ValueError:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
