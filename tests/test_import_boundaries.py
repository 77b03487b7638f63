"""The product's import graph: the simulated workspace is never reached from the product (it plays
reality, and nothing in the product may read its hidden state), and the twin's configuration loads
no networking."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PRODUCT = ("twin", "robot_bridge", "policies", "calibration")


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


@pytest.mark.parametrize("package", PRODUCT)
def test_no_product_module_imports_the_simulated_workspace(package):
    offenders = [str(p.relative_to(REPO)) for p in (REPO / package).rglob("*.py")
                 if any(m.split(".")[0] == "sim_workspace" for m in _imported_modules(p))]
    assert offenders == []


def _new_modules(code: str) -> list[str]:
    probe = (f"import sys; before = set(sys.modules); {code}; "
             "print(' '.join(sorted(set(sys.modules) - before)))")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout.split()


def test_importing_the_live_loop_the_correction_and_the_bridge_does_not_import_the_simulated_workspace():
    new = _new_modules("import twin.live, twin.perception.correction, twin.perception.localize, "
                       "twin.perception.shape_fit, robot_bridge.server, robot_bridge.client, policies.expert, "
                       "calibration, twin.cameras")
    assert "twin.live" in new and "twin.perception.correction" in new  # the probe imported them
    assert not [m for m in new if m.split(".")[0] == "sim_workspace"]


def test_the_twins_config_and_the_robots_limits_load_no_networking():
    new = _new_modules("import twin.config, robot_bridge.limits, robot_bridge.motion")
    assert not [m for m in new if m.split(".")[0] in ("zmq", "msgpack") or m in ("robot_bridge.server", "robot_bridge.client")]
