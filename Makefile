# `make test` and `make demo` do all set-up themselves on a fresh machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# `make test-min`: the package with the lowest versions pyproject.toml allows, in its own venv.
MIN_VENV  := .venv-min
MIN_BIN   := $(MIN_VENV)/bin
MIN_PINS  := $(MIN_VENV)/min-pins.txt
MIN_TOOLS := pytest pytest-socket pytest-timeout hypothesis pyyaml awscli "tomli; python_version < '3.11'"

# `make test-aio`: the aiobotocore peer tests (tests/aio_peer) in a venv of their own, because
# aiobotocore pins a botocore that the aws CLI of the dev extra cannot share.
AIO_VENV  := .venv-aio
AIO_BIN   := $(AIO_VENV)/bin
AIO_STAMP := $(AIO_VENV)/.installed
AIO_TOOLS := pytest pytest-socket pytest-timeout

.PHONY: test test-min test-aio lint typecheck unit demo bench dist clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy --strict taskcreds taskcreds_demo

unit: $(STAMP)
	$(BIN)/pytest

test: lint typecheck unit test-aio

$(AIO_STAMP): pyproject.toml
	$(PYTHON) -m venv $(AIO_VENV)
	$(AIO_BIN)/python -m pip install --quiet --upgrade pip
	$(AIO_BIN)/python -m pip install --quiet -e '.[demo,aio]' $(AIO_TOOLS)
	touch $(AIO_STAMP)

test-aio: $(AIO_STAMP)
	TASKCREDS_TEST_AIO=1 $(AIO_BIN)/pytest tests/aio_peer

# The unit tests against the lower bounds: the runtime dependencies and the demo extra pinned
# exactly to their `>=` versions (tools/min_pins.py reads them from pyproject.toml), the test
# tools at their newest. The venv is made anew every time, so nothing newer lingers in it.
test-min: $(STAMP)
	rm -rf $(MIN_VENV)
	$(PYTHON) -m venv $(MIN_VENV)
	$(BIN)/python tools/min_pins.py --extra demo > $(MIN_PINS)
	@echo "lower bounds:" $$(cat $(MIN_PINS))
	$(MIN_BIN)/python -m pip install --quiet --disable-pip-version-check \
		--constraint $(MIN_PINS) -e '.[demo]' $(MIN_TOOLS)
	$(MIN_BIN)/python -m pip check
	$(MIN_BIN)/pytest tests/unit

demo: $(STAMP)
	$(BIN)/python -m taskcreds demo

bench: $(STAMP) $(AIO_STAMP)
	$(BIN)/python -m bench

# The sdist and the wheel in dist/, built by PyPA build in an isolated environment, then checked.
dist: $(STAMP)
	rm -rf dist
	$(BIN)/python -m build --outdir dist .
	$(BIN)/twine check --strict dist/*

clean:
	rm -rf $(VENV) $(MIN_VENV) $(AIO_VENV) dist build .mypy_cache .pytest_cache .ruff_cache .hypothesis
