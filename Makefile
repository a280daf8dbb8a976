# Two commands do all the set-up: `make run` (the main job) and `make test` (the tests).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test venv bench cluster clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# CPU torch first: an unpinned torch would pull gigabytes of CUDA packages.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[train,dev]'
	@touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/python -m bot.quickstart

test: $(STAMP)
	$(BIN)/python -m pytest -ra --durations=15

# The whole set on one machine, for trying it: PostgreSQL, two bots sharing the webhook, a training worker and the
# web app (deploy/Procfile under honcho; docs/cluster.md). Needs TELEGRAM_BOT_TOKEN and WEBHOOK_URL.
cluster: $(STAMP)
	bash deploy/cluster.sh

# The figures in docs/benchmarks.md and docs/reliability.md:
# - CPU serving paths on the quick-start e5 and a fine-tuned scratch model, 10,000 NSMC test reviews, 2 and 1
#   threads (~40 min on 2 cores; trains the models first when models/quickstart-e5 is missing, ~10 min more);
# - the learning loop through the real bot, four scenarios, each writing bench/results/learning_loop_<x>.json:
#   (a) an honest pair in a group, (b) lone users in private chats, (d) an attacker over ten accounts, (c) two
#   colluders over three runs on top of (a) (seven e5 retraining runs with the default settings, (c) training its
#   own (a) first; about 1.5 hours on 2 quiet cores), then the pattern's sets and its class mix in NSMC
#   (bench/results/learning_loop_pattern.json; ~1 min);
# - calibration: the quick-start recipe trained with its fitted temperature and confidence map, ECE before, after
#   the temperature and after the map on 10,000 unseen NSMC test reviews, torch and the int8 fast path
#   (bench/results/calibration.json and a reliability diagram; ~15 min);
# - how many held-out reviews a confidence map needs: maps fitted on 1,000, 2,000 and 5,000 of the quick-start
#   model's int8 scores, two disjoint draws at a time, scored on 10,000 others (calibration_fit_size.json; ~4 min);
# - the ECE a perfectly calibrated model shows on 471, 4,402 and 10,000 examples: sampling noise alone
#   (bench/results/ece_floor.json; seconds);
# - toxicity: the TF-IDF + logistic-regression baselines and the e5 recipe on BEEP! dev and held-out K-MHaS, with
#   bootstrap intervals (bench/results/toxicity.json; ~4 min, and ~15 min more to train the e5 model when
#   data/bench-toxicity has none);
# - the toxicity learning loop through the real bot: lone users and a reviewer correct the first toxicity model's
#   flags on harsh but clean reviews, the admin sends /retrain 표현 (bench/results/toxicity_loop.json; ~18 min);
# - two tasks against one: the first sentiment and toxicity models served side by side through the bot's
#   micro-batchers (bench/results/two_tasks.json; ~4 min, training the two first models when missing);
# - a bot without torch: a second environment without the train extra serves both first models on their fast path,
#   reply for reply as the full one, and its size against the full one (bench/results/torchless.json; ~4 min);
# - two groups moderated at once, 2,000 messages each at 10 a second, serving bench_toxicity's model
#   (bench/results/group.json; ~5 min);
# - 10,000 fuzzed updates through the real bot (~30 min: the bot keeps Telegram's limit of 20 messages a minute
#   in a group, and the fuzzer's group messages all go to one group);
# - SQLite under 32 concurrent handlers: the engine's one connection against the pool it had before, alternately
#   in one process (bench/results/sqlite_pool.json; ~1 min);
# - the web app's pages against 1,000,000 verdicts in a throwaway PostgreSQL (bench/results/web.json; ~5 min);
# - two webhook bot processes sharing one port against one process, 1,000 reviews per burst, on the first models
#   (bench/results/cluster.json; ~8 min), then three retraining runs through one `moderator worker`, asked for
#   from each of two bot processes (bench/results/cluster_runs.json; ~6 min);
# - the kill, stop, refused-token, run-recovery, model-version, training-worker and shared-webhook figures of
#   docs/reliability.md
#   (real processes, the workers on a throwaway PostgreSQL; ~12 min): the tests record them into bench/results/reliability.json (bench/reliability.py), which replaces
#   the old file only when every test passed.
# The other bench/ scripts are run by hand (bench/README.md).
RELIABILITY_JSON := bench/results/reliability.json
bench: $(STAMP)
	$(BIN)/python -m bench.bench_quickstart
	$(BIN)/python -m bench.bench_serving
	for scenario in a b d c; do $(BIN)/python -m bench.bench_learning_loop --scenario $$scenario || exit 1; done
	$(BIN)/python -m bench.learning_loop_data describe --model models/quickstart-e5 \
		--output bench/results/learning_loop_pattern.json
	$(BIN)/python -m bench.bench_calibration
	$(BIN)/python -m bench.bench_calibration_fit_size
	$(BIN)/python -m bench.bench_ece_floor
	$(BIN)/python -m bench.bench_toxicity
	$(BIN)/python -m bench.bench_toxicity_loop
	$(BIN)/python -m bench.bench_two_tasks
	$(BIN)/python -m bench.bench_torchless
	$(BIN)/python -m bench.bench_group
	$(BIN)/python -m bench.bench_fuzz --count 10000
	$(BIN)/python -m bench.bench_sqlite_pool
	bash -c 'source .ci/postgres.sh && pg_start && trap pg_stop EXIT && $(BIN)/python -m bench.bench_web' \
		|| echo "bench_web: a page is over its 300 ms goal, or PostgreSQL did not start (bench/results/web.json)"
	bash -c 'source .ci/postgres.sh && pg_start && trap pg_stop EXIT && $(BIN)/python -m bench.bench_cluster && \
		$(BIN)/python -m bench.bench_cluster_runs'
	rm -f $(RELIABILITY_JSON).partial
	bash -c 'source .ci/postgres.sh && pg_start && trap pg_stop EXIT && \
		RELIABILITY_RESULTS=$(RELIABILITY_JSON).partial RELIABILITY_KILL_AFTER=1,20,100,190 \
		$(BIN)/python -m pytest -q -p no:cacheprovider tests/bot/test_process_signals.py \
		tests/retraining/test_run_recovery.py tests/bot/test_versions.py tests/retraining/test_training_worker.py \
		tests/bot/test_shared_webhook.py'
	mv $(RELIABILITY_JSON).partial $(RELIABILITY_JSON)

clean:
	rm -rf $(VENV) .pytest_cache
