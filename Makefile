# The README's two commands: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = "0" ] || echo sudo)

.PHONY: demo test test-fast test-browser lab chromium bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[lab,test,bench]"
	touch $(STAMP)

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
