# The README's two commands: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = "0" ] || echo sudo)
# The lock: every install (make, CI, Binder) comes from requirements.lock, resolved by `make lock`.
LOCK_VENV ?= .venv-lock
RESOLVER := pip==25.3 pip-tools==7.6.2
LOCK_EXTRAS := lab test bench cluster
# torch stays at its locked CPU build across `make lock UPGRADE=--upgrade`; move it with TORCH=torch==X+cpu
TORCH ?= $(shell grep -m1 '^torch==' requirements.lock)
TORCH_INDEX ?= https://download.pytorch.org/whl/cpu
UPGRADE ?=

.PHONY: demo test test-fast test-browser lab chromium bench clean sync lock

$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(MAKE) sync
	touch $(STAMP)

## Make .venv exactly the lock: the pinned versions, then this package without dependencies.
## torch is locked as its CPU build (+cpu): taken from a local wheel or mirror where pip finds one,
## otherwise from PyTorch's CPU index (TORCH_INDEX), which pip only asks when the first try fails.
sync:
	$(PY) -m pip install --quiet -r requirements.lock \
	  || $(PY) -m pip install --quiet --extra-index-url $(TORCH_INDEX) -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .

## Re-resolve requirements.lock from pyproject.toml (all extras that make/CI/Binder install).
## UPGRADE="--upgrade" moves every pin to its newest release; UPGRADE="-P name" one package.
lock:
	test -x $(LOCK_VENV)/bin/pip-compile || ( $(PYTHON) -m venv $(LOCK_VENV) \
	  && $(LOCK_VENV)/bin/pip install --quiet $(RESOLVER) )
	$(LOCK_VENV)/bin/pip-compile pyproject.toml $(LOCK_EXTRAS:%=--extra %) -P $(TORCH) $(UPGRADE) \
	  --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links \
	  --output-file requirements.lock

## Run the main job on the bundled data and write the exported dashboard to out/.
demo: $(STAMP)
	$(PY) -m marble_widgets.demo --out out

## Install what the tests need (Debian chromium included) and run the whole suite.
test: $(STAMP) chromium
	$(PY) -m pytest

## Everything except real-browser, notebook and slow science tests.
test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow and not browser and not notebooks"

test-browser: $(STAMP) chromium
	$(PY) -m pytest -m browser

chromium:
	@command -v chromium >/dev/null 2>&1 || ( $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium )

## Open the tutorials in JupyterLab.
lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/01_quickstart.ipynb

bench: $(STAMP)
	$(PY) benchmarks/data_layer.py

clean:
	rm -rf out .pytest_cache
