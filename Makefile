# realsim — `make demo` runs the main job, `make test` runs the test suite.
# Both create .venv in the checkout when missing and install everything from the registries.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.realsim-installed
export WARP_CACHE_PATH ?= $(CURDIR)/.warp_cache
export OMP_WAIT_POLICY ?= PASSIVE
export PYTHONUNBUFFERED := 1

.PHONY: demo test test-all venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt scripts/install_system_deps.sh
	bash scripts/install_system_deps.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	$(PY) scripts/link_system_python.py
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/realsim demo

test: $(STAMP)
	$(PY) -m pytest -q

test-all: $(STAMP)
	$(PY) -m pytest -q -m ''

clean:
	rm -rf $(VENV) .warp_cache
