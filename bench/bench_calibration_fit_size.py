"""How many held-out reviews a confidence map needs: the quick-start sentiment model's calibration on its served
path (the ONNX static int8 fast path), with maps fitted on 1,000, 2,000 and 5,000 reviews, scored on 10,000
others.

Why it matters: a retraining candidate fits its temperature and confidence map on `RETRAIN_EVAL_SIZE` held-out
base rows, and the gate's calibration check compares the candidate's ECE on the gate set with the active model's,
within a 1-point tolerance. When two maps fitted on different draws of the same size disagree by more than that,
the check rejects a candidate that is no worse calibrated, only less lucky in its draw.

One pass scores 20,000 NSMC test reviews the model never saw (neither trained nor fitted on), without any map.
They are split into a scoring half and a fitting pool. For each size, every repeat draws two disjoint fit sets
from the pool (two candidates' draws) and fits a map on each (`classifier.confidence_map.fit_confidence_map`, as
the trainer and the int8 build do). Both are scored on the same 10,000 reviews. Writes
bench/results/calibration_fit_size.json, quoted by docs/benchmarks.md.

    .venv/bin/python -m bench.bench_calibration_fit_size [--shared-dir ../shared] [--repeats 40]
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import REPO_ROOT, base_parser, machine_record, write_result
from bot.settings import Settings

logger = logging.getLogger("bench.calibration_fit_size")

FIT_SIZES = (1000, 2000, 5000)
SCORING_SIZE = 10_000
POOL_SIZE = 10_000  # two disjoint fit sets of the largest size
DEFAULT_WORKDIR = REPO_ROOT / "data" / "bench-calibration-fit-size"
GATE_TOLERANCE_POINTS = Settings.model_fields[
    "calibration_tolerance"
].default  # the gate's default, in points


def served_copy(model_dir: Path, workdir: Path, shared_dir: Path):
    """A copy of the model with its int8 fast path built as promotion builds it (the model folder stays as it is),
    and the quick-start recipe's config for it."""
    from bench.bench_calibration import load_calibration_texts, quickstart_config
    from classifier.fastpath import ONNX_INT8, build_fast_path

    copy = workdir / model_dir.name
    shutil.rmtree(copy, ignore_errors=True)  # a fresh copy each time: the model may have been retrained since
    shutil.copytree(model_dir, copy, ignore=shutil.ignore_patterns("onnx", "gate-predictions"))
    config = quickstart_config(copy, shared_dir)
    build_fast_path(copy, ONNX_INT8, calibration_texts=load_calibration_texts(config))
    return copy, config


def served_probabilities(model_dir: Path, texts: list[str]) -> tuple[np.ndarray, str, float]:
    """The probabilities of the path the bot serves, before any confidence map (label ids in order)."""
    from classifier import Classifier

    classifier = Classifier.load(model_dir, quantize=True, apply_confidence_map=False)
    ids = sorted(classifier.id2label)
    started = time.perf_counter()
    verdicts = classifier.predict(texts)
    seconds = time.perf_counter() - started
    probabilities = np.array([[v.probabilities[classifier.id2label[i]] for i in ids] for v in verdicts])
    return probabilities, classifier.backend, seconds


def fit_size_trials(
    fit_pool: tuple[np.ndarray, np.ndarray],
    scoring: tuple[np.ndarray, np.ndarray],
    *,
    size: int,
    repeats: int,
    seed: int,
) -> dict[str, Any]:
    """Repeats of two maps fitted on disjoint draws of `size` reviews, both scored on the same reviews."""
    from classifier.calibration import expected_calibration_error
    from classifier.confidence_map import fit_confidence_map

    pool_probabilities, pool_labels = fit_pool
    probabilities, labels = scoring
    correct = probabilities.argmax(axis=1) == labels
    if 2 * size > len(pool_labels):
        raise SystemExit(f"two disjoint fit sets of {size} need a pool of {2 * size}, not {len(pool_labels)}")
    generator = np.random.default_rng(seed)
    eces: list[float] = []
    differences: list[float] = []
    for _ in range(repeats):
        order = generator.permutation(len(pool_labels))
        pair = []
        for draw in (order[:size], order[size : 2 * size]):
            fitted = fit_confidence_map(pool_probabilities[draw], pool_labels[draw])
            pair.append(expected_calibration_error(fitted.apply(probabilities).max(axis=1), correct))
        eces += pair
        differences.append(abs(pair[0] - pair[1]))
    ece = np.array(eces) * 100
    gap = np.array(differences) * 100
    return {
        "fit_size": size,
        "maps": len(eces),
        "ece_points": {
            "mean": round(float(ece.mean()), 3),
            "p10": round(float(np.percentile(ece, 10)), 3),
            "p90": round(float(np.percentile(ece, 90)), 3),
        },
        "two_draws_difference_points": {
            "mean": round(float(gap.mean()), 3),
            "p90": round(float(np.percentile(gap, 90)), 3),
            "share_over_gate_tolerance": round(float((gap > GATE_TOLERANCE_POINTS).mean()), 3),
        },
    }


def main() -> None:
    from bench.bench_calibration import unseen_test_reviews
    from bench.bot_under_test import ensure_quickstart_model
    from bench.learning_loop_data import DEFAULT_MODEL_DIR
    from classifier.calibration import expected_calibration_error

    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR, help="model version directory")
    parser.add_argument("--repeats", type=int, default=40, help="pairs of maps per fit size")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    load_at_start = [round(value, 2) for value in os.getloadavg()]
    model_dir, config = served_copy(
        ensure_quickstart_model(args.model, args.shared_dir), args.workdir, args.shared_dir
    )

    # NSMC test reviews outside the held-out ones the model's own map was fitted on (bench_calibration's rule).
    texts, label_list = unseen_test_reviews(config, SCORING_SIZE + POOL_SIZE, args.seed)
    labels = np.asarray(label_list, dtype=np.int64)
    probabilities, backend, seconds = served_probabilities(model_dir, texts)
    logger.info("scored %d reviews on %s in %.0f s", len(texts), backend, seconds)
    scoring = (probabilities[:SCORING_SIZE], labels[:SCORING_SIZE])
    fit_pool = (probabilities[SCORING_SIZE:], labels[SCORING_SIZE:])
    scoring_correct = scoring[0].argmax(axis=1) == scoring[1]
    trials = [
        fit_size_trials(fit_pool, scoring, size=size, repeats=args.repeats, seed=args.seed + size)
        for size in FIT_SIZES
    ]
    for trial in trials:
        logger.info("%s", trial)
    result = {
        "command": "python -m bench.bench_calibration_fit_size",
        "machine": machine_record(load_at_start),
        "model": str(args.model),
        "serving": backend,
        "reviews": {"scoring": SCORING_SIZE, "fit_pool": POOL_SIZE, "source": "NSMC test, never trained on"},
        "scoring_accuracy": round(float(scoring_correct.mean()), 4),
        "ece_points_without_map": round(
            100 * expected_calibration_error(scoring[0].max(axis=1), scoring_correct), 3
        ),
        "gate_tolerance_points": GATE_TOLERANCE_POINTS,
        "repeats": args.repeats,
        "seed": args.seed,
        "trials": trials,
        "scoring_seconds": round(seconds, 1),
    }
    path = write_result("calibration_fit_size", result, args.output)
    logger.info("wrote %s", path)


if __name__ == "__main__":
    main()
