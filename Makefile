# Two commands do all the set-up: `make run` (the main job) and `make test` (the tests).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test venv bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# CPU torch first: an unpinned torch would pull gigabytes of CUDA packages.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/python -m bot.quickstart

test: $(STAMP)
	$(BIN)/python -m pytest -ra

bench: $(STAMP)
	$(BIN)/python -m bench.bench_inference --batch-size 8
	$(BIN)/python -m bench.bench_training
	$(BIN)/python -m bench.bench_quantization --train-size 1000
	$(BIN)/python -m bench.bench_bot
	$(BIN)/python -m bench.bench_retraining

clean:
	rm -rf $(VENV) .pytest_cache
