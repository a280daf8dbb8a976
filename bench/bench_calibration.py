"""Calibration of the quick-start sentiment model: expected calibration error before the trainer's calibration,
after its temperature, and after its confidence map too (what the bot serves), on 10,000 NSMC test reviews the
model never saw (neither trained nor fitted on), on the paths the bot serves (torch fp32 and the ONNX static int8
fast path).

The trainer bakes T into the head, so a version outputs logits / T; the "before" probabilities are recovered
exactly as softmax(T * log p). The confidence map is applied to those as the classifier does, and checked against
the classifier's own output on 200 reviews. Writes bench/results/calibration.json and a reliability diagram
(bench/results/calibration-reliability.png), quoted by docs/benchmarks.md.

    .venv/bin/python -m bench.bench_calibration [--shared-dir ../shared] [--count 10000] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import REPO_ROOT, e5_dir, ece_with_interval, environment, write_result

logger = logging.getLogger("bench.calibration")

DEFAULT_WORKDIR = REPO_ROOT / "data" / "bench-calibration"
BOOTSTRAP_RESAMPLES = 1000
SERVED_CHECK = 200  # reviews scored again by the classifier as the bot loads it


def quickstart_config(output: Path, shared_dir: Path):
    """What `make run` trains (bot/quickstart.py): e5, 2,000 NSMC train reviews, 1 epoch, max length 128."""
    from bot.quickstart import FIRST_MODEL_RECIPE
    from trainer import TrainConfig

    return TrainConfig(
        output=output, base=str(e5_dir(shared_dir)), korpora_root=shared_dir / "korpora", **FIRST_MODEL_RECIPE
    )


def unseen_test_reviews(config, count: int, seed: int) -> tuple[list[str], list[int]]:
    """`count` NSMC test reviews (the trainer's length rule) outside the evaluation split the temperature was
    fitted on."""
    import pandas as pd

    from trainer.data import load_nsmc, load_training_data

    fitted_on = set(load_training_data(config).eval.texts)
    test = load_nsmc(config.korpora_root).test
    frame = pd.DataFrame({"text": list(test.texts), "label": list(test.labels)})
    frame = frame[(frame["text"].str.strip().str.len() >= config.min_chars) & ~frame["text"].isin(fitted_on)]
    frame = frame.sample(n=count, random_state=seed)
    return frame["text"].tolist(), [int(label) for label in frame["label"]]


def _score(probabilities: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    from classifier.calibration import reliability_table

    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    ece, low, high = ece_with_interval(confidence, correct, resamples=BOOTSTRAP_RESAMPLES)
    return {
        "accuracy": float(correct.mean()),
        "mean_confidence": float(confidence.mean()),
        "ece": ece,
        "ece_interval_95": [low, high],
        "reliability": reliability_table(confidence, correct),
    }


def score_path(version: Path, backend: str, texts: list[str], labels: list[int], temperature: float) -> dict:
    """The three stages on one runtime, from one pass: `before` (the model without its temperature), `after`
    (the temperature baked into its head) and `after_map` (then its confidence map: what the bot serves)."""
    from classifier import Classifier
    from classifier.confidence_map import ConfidenceMap
    from classifier.fastpath import ONNX_INT8, read_int8_confidence_map
    from trainer.temperature import undo_temperature

    classifier = Classifier.load(version, backend=backend, apply_confidence_map=False)
    # The int8 path serves its own map (fitted on the same held-out verdicts when its artefact was built).
    own_map = read_int8_confidence_map(version) if backend == ONNX_INT8 else None
    confidence_map = own_map or ConfidenceMap.read(version)
    if confidence_map is None:
        raise SystemExit(f"{version} was trained before confidence maps; remove it and run again")
    started = time.perf_counter()
    verdicts = classifier.predict(texts)
    seconds = time.perf_counter() - started
    ids = sorted(classifier.id2label)
    after = np.array([[verdict.probabilities[classifier.id2label[i]] for i in ids] for verdict in verdicts])
    before = undo_temperature(after, temperature)  # the model before its temperature
    mapped = confidence_map.apply(after)
    # What the bot serves is the classifier with its map: the same numbers as the map applied here.
    served = Classifier.load(version, backend=backend).predict(texts[:SERVED_CHECK])
    served = np.array([[verdict.probabilities[classifier.id2label[i]] for i in ids] for verdict in served])
    served_difference = float(np.abs(served - mapped[:SERVED_CHECK]).max())
    if served_difference > 1e-9:
        raise SystemExit(f"{backend}: the served probabilities differ from the map's by {served_difference}")
    truth = np.asarray(labels)
    return {
        "backend": classifier.backend,
        "map": "the int8 path's own"
        if own_map is not None
        else "the version's (fitted on torch's probabilities)",
        "seconds": round(seconds, 1),
        "before": _score(before, truth),
        "after": _score(after, truth),
        "after_map": _score(mapped, truth),
        "served_equals_map_applied": {"reviews": SERVED_CHECK, "max_difference": served_difference},
        "best_single_temperature": best_single_temperature(before, truth),
    }


def best_single_temperature(probabilities: np.ndarray, truth: np.ndarray) -> dict:
    """The floor of temperature scaling on these reviews: the lowest ECE any one T reaches when it is chosen on
    the very set it is scored on (an oracle no deployed model has; it says what a better fit could still win)."""
    from classifier.calibration import expected_calibration_error
    from trainer.temperature import undo_temperature

    correct = probabilities.argmax(axis=1) == truth
    # softmax(log p / t): undoing a temperature of 1/t applies t.
    best_ece, best_t = min(
        (expected_calibration_error(undo_temperature(probabilities, 1.0 / t).max(axis=1), correct), float(t))
        for t in np.geomspace(0.2, 5.0, 241)
    )
    return {"temperature": round(best_t, 4), "ece": best_ece}


def plot(result: dict, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    paths = result["paths"]
    figure = Figure(figsize=(4.2 * len(paths), 4), layout="constrained")
    FigureCanvasAgg(figure)
    for axes, (name, scored) in zip(
        np.atleast_1d(figure.subplots(1, len(paths))), paths.items(), strict=True
    ):
        axes.plot([0, 1], [0, 1], color="grey", linestyle=":", label="calibrated")
        for stage, style, legend in (
            ("before", "o--", "before T"),
            ("after", "s:", "after T"),
            ("after_map", "^-", "after T and map"),
        ):
            rows = [row for row in scored[stage]["reliability"] if row["count"]]
            axes.plot(
                [row["mean_confidence"] for row in rows],
                [row["accuracy"] for row in rows],
                style,
                label=f"{legend} (ECE {scored[stage]['ece']:.3f})",
            )
        axes.set_xlim(0.45, 1.0)
        axes.set_ylim(0.3, 1.0)
        axes.set_xlabel("confidence (15 bins)")
        axes.set_ylabel("accuracy")
        axes.set_title(f"{name}, n={result['reviews']}")
        axes.legend(loc="upper left", fontsize=8)
    figure.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared-dir", type=Path, default=REPO_ROOT.parent / "shared")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--count", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from classifier.fastpath import ONNX_INT8, build_fast_path
    from trainer import train

    version = args.workdir / "quickstart-e5"
    config = quickstart_config(version, args.shared_dir)
    if not trained_by_recipe(version, config):  # none yet, an older recipe's, or one without a confidence map
        shutil.rmtree(version, ignore_errors=True)
        args.workdir.mkdir(parents=True, exist_ok=True)
        train(config)
    import json

    metrics = json.loads((version / "metrics.json").read_text(encoding="utf-8"))
    calibration = metrics.get("calibration")
    if not calibration:
        raise SystemExit(f"{version} was trained before temperatures were fitted; remove it and run again")
    texts, labels = unseen_test_reviews(config, args.count, args.seed)
    train_texts = load_calibration_texts(config)
    build_fast_path(version, ONNX_INT8, calibration_texts=train_texts)
    temperature = float(calibration["temperature"])
    result = {
        "model": "the quick-start recipe (bot/quickstart.py: e5-small, "
        f"{config.train_size:,} NSMC train reviews, {config.eval_size:,} held out, 1 epoch), trained by this script",
        "temperature": temperature,
        "fit": calibration,
        "reviews": len(texts),
        "data": f"NSMC test, {len(texts)} reviews outside the {calibration['fitted_on']} the temperature and the "
        f"confidence map were fitted on (seed {args.seed})",
        "ece_bins": 15,
        "paths": {
            backend: score_path(version, backend, texts, labels, temperature)
            for backend in ("torch", ONNX_INT8)
        },
        "environment": environment("cpu"),
    }
    path = write_result("calibration", result, args.output)
    plot(result, (args.output or path).with_name("calibration-reliability.png"))
    for name, scored in result["paths"].items():
        logger.info(
            "%s: accuracy %.4f -> %.4f -> %.4f, ECE %.4f -> %.4f -> %.4f (before T, after T, after the map)",
            name,
            scored["before"]["accuracy"],
            scored["after"]["accuracy"],
            scored["after_map"]["accuracy"],
            scored["before"]["ece"],
            scored["after"]["ece"],
            scored["after_map"]["ece"],
        )
    print(f"wrote {path}")
    return 0


def trained_by_recipe(version: Path, config) -> bool:
    import json

    try:
        data = json.loads((version / "metrics.json").read_text(encoding="utf-8"))["data"]
    except (OSError, ValueError, KeyError):
        return False
    sizes = (data.get("train_size"), data.get("eval_size"))
    kept = all((version / name).is_file() for name in ("confidence_map.json", "calibration_set.jsonl"))
    return kept and sizes == (config.train_size, config.eval_size)


def load_calibration_texts(config) -> list[str]:
    """Training reviews that fix the int8 activation ranges (not the temperature), as promotion uses them."""
    from classifier.fastpath import CALIBRATION_SIZE
    from trainer.data import load_training_data

    return load_training_data(config).train.texts[:CALIBRATION_SIZE]


if __name__ == "__main__":
    raise SystemExit(main())
