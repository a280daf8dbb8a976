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

# The figures in docs/benchmarks.md: CPU serving paths on the quick-start e5 and a fine-tuned scratch model, 10,000
# NSMC test reviews, 2 and 1 threads (~40 min on 2 cores; trains the models first when models/quickstart-e5 is
# missing, ~10 min more). The other bench/ scripts are run by hand (bench/README.md).
bench: $(STAMP)
	$(BIN)/python -m bench.bench_serving

clean:
	rm -rf $(VENV) .pytest_cache
