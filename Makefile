# realsim — `make demo` runs the main job, `make test` runs the test suite.
# Both create .venv in the checkout when missing and install everything from the registries.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.realsim-installed
export WARP_CACHE_PATH ?= $(CURDIR)/.warp_cache
export OMP_WAIT_POLICY ?= PASSIVE
export PYTHONUNBUFFERED := 1

.PHONY: demo test test-all venv clean bench-baseline-env lerobot-env libfranka-env

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt scripts/install_system_deps.sh
	bash scripts/install_system_deps.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	$(PY) scripts/link_system_python.py
	touch $(STAMP)

# The main job: live deployment on the simulated workspace (started as a subprocess), 3 episodes.
demo: $(STAMP)
	$(VENV)/bin/realsim deploy --episodes 3

test: $(STAMP) libfranka-env
	$(PY) -m pytest -q

test-all: $(STAMP) libfranka-env
	$(PY) -m pytest -q -m ''

# gym-pusht (the 2-D reference for benchmarks/pusht_rollout.py) pins packages that clash with the
# project's, so it gets its own environment.
bench-baseline-env: .venv-gym-pusht/bin/python
.venv-gym-pusht/bin/python:
	$(PYTHON) -m venv .venv-gym-pusht
	.venv-gym-pusht/bin/pip install -q gym-pusht

# LeRobot (to load our datasets with its own LeRobotDataset) needs a torch/torchvision pair that cannot
# sit beside the pinned torch: its own environment, used by tests/test_dataset_lerobot.py and the slow
# tests/test_lerobot_both_ways.py (lerobot-train on our datasets, realsim train on LeRobot's) when present.
lerobot-env: .venv-lerobot/bin/python
.venv-lerobot/bin/python:
	$(PYTHON) -m venv .venv-lerobot
	.venv-lerobot/bin/pip install -q lerobot==0.4.4

# The libfranka backend's test drives pylibfranka against franky-sim (a libfranka-protocol simulator),
# which pins a mujoco other than Newton's: its own environment (about 20 s to build, 700 MB).
libfranka-env: .venv-libfranka/bin/python
.venv-libfranka/bin/python:
	$(PYTHON) -m venv .venv-libfranka
	.venv-libfranka/bin/pip install -q franky-sim==1.0.4 pylibfranka==0.21.3 pyzmq msgpack numpy

clean:
	rm -rf $(VENV) .venv-gym-pusht .venv-lerobot .venv-libfranka .warp_cache
