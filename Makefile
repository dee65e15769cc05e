# Everything runs inside a virtual environment that the targets create and refresh.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The runtime (enough for `make bench`), then the tests' and speed benchmarks' extras on top.
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
# torch first, pinned, so pip never swaps in another build while resolving the rest.
TORCH ?= torch==2.14.1 torchvision==0.29.1

MODEL ?=
TASKS ?=
DATA ?=
BENCH_ARGS ?=

.PHONY: bench test perf lint format venv clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check $(TORCH)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	touch $(DEV_STAMP)

venv: $(DEV_STAMP)

bench: $(STAMP)
	$(BIN)/ubench bench $(if $(MODEL),--model $(MODEL)) $(if $(TASKS),--tasks $(TASKS)) \
		$(if $(DATA),--data $(DATA)) $(BENCH_ARGS)

test: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest
	UBENCH=$(BIN)/ubench .ci/bench-check

# Speed figures (JSON under results/perf/): extraction against the model's own forward speed,
# the probes and the image store on real and real-size workloads (benchmarks/workloads.py),
# patch-token extraction into the token cache, the dense (segmentation) probe, and a real task
# exported as a Hugging Face dataset and loaded back.
perf: $(DEV_STAMP)
	$(BIN)/python -m benchmarks.perf --out results/perf
	$(BIN)/python -m benchmarks.perf_probes --out results/perf
	$(BIN)/python -m benchmarks.perf_store --out results/perf
	$(BIN)/python -m benchmarks.perf_corruptions --out results/perf
	$(BIN)/python -m benchmarks.perf_tokens --out results/perf
	$(BIN)/python -m benchmarks.perf_dense --out results/perf
	$(BIN)/python -m benchmarks.perf_hub --out results/perf

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(DEV_STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
