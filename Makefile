# The README's two commands: `make demo` and `make test`. Both set everything up from nothing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SIMGEN := $(VENV)/bin/simgen
export MESA_SHADER_CACHE_DIR ?= $(CURDIR)/.cache/mesa
export HF_HUB_OFFLINE ?= 1

.PHONY: demo test setup setup-all system-deps lint bench clean

# EGL + Mesa llvmpipe for the fast headless renderer; simgen falls back to TinyRenderer without them.
system-deps:
	@if ldconfig -p | grep -q libEGL_mesa; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libegl1 libegl-mesa0 libgl1-mesa-dri libgbm1 >/dev/null; \
	else echo "note: EGL/Mesa not found and cannot apt-get; simgen will render with TinyRenderer"; fi

$(VENV)/.core: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

$(VENV)/.all: $(VENV)/.core
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[all,dev,carla]'  # carla's client wheel: its offline tests run too
	touch $@

setup: system-deps $(VENV)/.core
	@mkdir -p $(MESA_SHADER_CACHE_DIR)

setup-all: system-deps $(VENV)/.all
	@mkdir -p $(MESA_SHADER_CACHE_DIR)

demo: setup
	$(SIMGEN) generate scenes/tabletop_clutter.yaml -n 200 -o out/tabletop --seed 7 --workers 2 --overwrite
	$(SIMGEN) inspect out/tabletop

test: setup-all
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check simgen randomizers validators tests benchmarks

bench: setup-all
	$(PY) benchmarks/throughput.py

clean:
	rm -rf out .cache
