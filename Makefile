# rnnlab: `make demo` trains the default model; `make test` runs the test suite.
# Both create .venv on first use and are safe to run again.
#
# `make test` runs the suite twice: as this CPU runs it, then with the kernels limited to AVX2
# (no AVX-512, no native bf16), so that the float32 path of CPUs without them is tested on every
# machine, whatever its own CPU. The AVX2 pass is the whole suite again: kernels reach most tests
# through training. Measured on a fresh clone of this 2-core AMD EPYC, nothing else running:
# 6.4 + 6.2 minutes, 14.1 minutes with the install.
AVX2   := ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# torch is pinned here: this exact CPU build installs from local disk, while an
# unpinned "torch" would download a multi-GB CUDA build.
TORCH  := torch==2.13.0

.PHONY: install demo test test-all bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check $(TORCH)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

demo: install
	$(BIN)/rnnlab train --preset grimm-char --run-dir runs/demo --overwrite
	$(BIN)/rnnlab eval runs/demo --split valid
	$(BIN)/rnnlab generate runs/demo --length 30 200 --temperature 0 0.5 1.0 2.0 --seed 0
	$(BIN)/rnnlab generate runs/demo --prompt "The sleeping beauty is" --length 200 --temperature 0.5 --seed 0

test: install
	$(BIN)/ruff check rnnlab tests benchmarks docs notebooks
	$(BIN)/python -m pytest -q -m "not slow"
	$(AVX2) $(BIN)/python -m pytest -q -m "not slow"

test-all: install
	$(BIN)/ruff check rnnlab tests benchmarks docs notebooks
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs .pytest_cache
