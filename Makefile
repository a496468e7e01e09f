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

# lgnrt against PyTorch and onnxruntime on the same inputs, 1 and all threads;
# fails if any prediction differs. ARGS passes options, e.g. ARGS="--batch 16384".
bench:
	$(BIN)/python bench/compare.py $(ARGS)

# Every asv benchmark once on trimmed grids (LGNRT_BENCH_QUICK=1), so that a
# broken benchmark fails CI; asv exits non-zero if any benchmark fails. The
# machine entry has its own name, so it leaves other entries in
# ~/.asv-machine.json alone. Nothing is saved (--dry-run).
asv-quick:
	$(BIN)/asv machine --yes --machine lgnrt-quick
	LGNRT_BENCH_QUICK=1 $(BIN)/asv run --quick --python=same --dry-run --show-stderr --machine lgnrt-quick

clean:
	rm -rf build runs .pytest_cache lgnrt/*.so src_cy/*.c

# The runtime's tests against a build of the kernels with AddressSanitizer and
# UndefinedBehaviorSanitizer, made in a temporary copy; fails on any report.
# Needs gcc with its AddressSanitizer runtime (libasan). ARGS passes pytest
# options, e.g. ARGS="-x".
.PHONY: sanitize
sanitize:
	BIN=$(BIN) scripts/sanitize.sh $(ARGS)
