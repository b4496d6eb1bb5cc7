# `make run` starts the capture tool, `make test` runs the whole test suite; both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
ARGS ?=
# The suite runs in this many pytest processes (pytest-xdist); 0 runs it in this one.
TEST_WORKERS ?= 2

.PHONY: run test venv xtools bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	touch $@

# Xvfb and xdotool drive the real OpenCV windows in the GUI tests.
xtools:
	@if ! command -v Xvfb >/dev/null || ! command -v xdotool >/dev/null || ! command -v import >/dev/null; then \
		$(SUDO) apt-get update -qq && \
		$(SUDO) apt-get install -y -qq --no-install-recommends xvfb xauth xdotool imagemagick x11-utils \
			libgl1 libglib2.0-0 libxcb1 libx11-6 libxext6 libsm6 libice6 fonts-dejavu-core; \
	fi

run: venv
	$(PY) main.py $(ARGS)

test: venv xtools
	$(PY) -m pytest -n $(TEST_WORKERS) $(ARGS)

bench: venv xtools
	for b in benchmarks/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache
