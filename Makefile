# Two commands: `make demo` (set up, run the main job) and `make test` (set up, run the tests).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The venv is rebuilt only when its inputs change, so a second `make test` starts in seconds.
STAMP := $(VENV)/.installed
CONSTRAINTS := constraints/dev.txt

.PHONY: venv demo test test-fast bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c $(CONSTRAINTS) -e '.[dev]'
	touch $(STAMP)

# The demo reads the 92-image data from ../shared/data when present (else the user cache, downloading).
# It regenerates runs/demo: --overwrite replaces the results of an earlier `make demo` there.
demo: $(STAMP)
	CORTEXSNN_DATA="$${CORTEXSNN_DATA:-$$(cd ../shared/data 2>/dev/null && pwd)}" $(VENV)/bin/cortexsnn demo --overwrite

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

bench: $(STAMP)
	$(PY) benchmarks/neurons.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
