# One-command entry points. `make setup` once, then `make demo` or `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup data demo test bench asv-quick clean

setup:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip>=23.2"
	$(BIN)/pip install --quiet -e ".[all]"

# Full Fashion-MNIST (IDX files under /usr/share/datasets/fashion-mnist); needs root.
data:
	apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist

# The main job: train on real digits, export model.lgn, load it, measure
# throughput and check deployed predictions against the training side.
demo:
	$(BIN)/lgnrt demo --out runs/demo

test:
	$(BIN)/python -m pytest -q

bench:
	$(BIN)/python bench/compare.py

asv-quick:
	$(BIN)/asv run --quick --python=same --dry-run --show-stderr

clean:
	rm -rf build runs .pytest_cache lgnrt/*.so src_cy/*.c
