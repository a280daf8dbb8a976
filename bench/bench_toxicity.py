"""Toxicity (정상 / 공격적 / 혐오): scores on BEEP! dev and the held-out fifth of K-MHaS, with bootstrap intervals.

Models:
- `tfidf`: the baseline every model must beat, a character TF-IDF + logistic regression trained on BEEP! train
  (the regularisation chosen by 5-fold cross-validation on train, never on dev). The published anchor for it is
  about 59 macro-F1 on BEEP! dev (monologg/KoELECTRA's finetune README lists base-size transformers at 64-68).
- `e5`: multilingual-e5-small-ko fine-tuned by the trainer (`--task toxicity`: BEEP! train, evaluation rows held
  out of train, temperature and confidence map fitted on them), recipe below; trained into data/bench-toxicity/
  when missing.

Reported, each with a 95% percentile-bootstrap interval (BEEP! dev has only 471 comments):
- BEEP! dev: macro-F1 over the three classes, per-class F1, binary F1 (toxic = 공격적 or 혐오), and for the
  fine-tuned model its paired difference from the baseline and its ECE before the calibration, after the
  temperature and after the confidence map (what the bot serves);
- K-MHaS held out (trainer/toxicity.py: a fixed fifth chosen by hash, never trained on): binary F1 (its labels
  are not BEEP!'s, so only "any hate category" vs "not hate speech" is compared), and for the fine-tuned model the
  three-class scores and ECE with K-MHaS read as BEEP!'s classes (`kmhas_as_beep`);
- with `kmhas_rows` in the recipe, the baseline trained on the fine-tuned model's own rows as well.

Writes bench/results/toxicity.json.

    .venv/bin/python -m bench.bench_toxicity [--models tfidf e5] [--shared-dir ../shared]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import REPO_ROOT, e5_dir, ece_with_interval, environment, percentile_bootstrap, write_result

logger = logging.getLogger("bench.toxicity")

BOOTSTRAP_RESAMPLES = 2000
CONFIDENCE = 0.95


def f1_scores(truth: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """Per-class F1 (0 where a class is neither present nor predicted)."""
    scores = np.zeros(classes)
    for label in range(classes):
        true_positive = np.sum((truth == label) & (predicted == label))
        denominator = np.sum(truth == label) + np.sum(predicted == label)
        scores[label] = 2 * true_positive / denominator if denominator else 0.0
    return scores


def binary_f1(truth: np.ndarray, predicted: np.ndarray) -> float:
    """F1 of the positive class (1 = toxic)."""
    return float(f1_scores(truth, predicted, 2)[1])


def bootstrap(
    statistic: Callable[[np.ndarray, np.ndarray], float],
    truth: np.ndarray,
    predicted: np.ndarray,
    *,
    seed: int = 0,
) -> dict[str, float]:
    """The statistic on the data and its percentile-bootstrap interval (resampling examples)."""
    low, high = percentile_bootstrap(
        lambda sample: statistic(truth[sample], predicted[sample]),
        len(truth),
        resamples=BOOTSTRAP_RESAMPLES,
        confidence=CONFIDENCE,
        seed=seed,
    )
    return {"value": float(statistic(truth, predicted)), "low": low, "high": high}


def beep_scores(truth: Sequence[int], predicted: Sequence[int], names: dict[int, str]) -> dict[str, Any]:
    """Macro-F1, per-class F1 and binary F1 on three-class labels, each with its interval (in points)."""
    truth_array, predicted_array = np.asarray(truth), np.asarray(predicted)
    classes = len(names)

    def points(result: dict[str, float]) -> dict[str, float]:
        return {key: round(value * 100, 2) for key, value in result.items()}

    scores = {
        "n": len(truth_array),
        "macro_f1": points(
            bootstrap(lambda t, p: float(f1_scores(t, p, classes).mean()), truth_array, predicted_array)
        ),
        "per_class_f1": {
            names[label]: points(
                bootstrap(
                    lambda t, p, label=label: float(f1_scores(t, p, classes)[label]),
                    truth_array,
                    predicted_array,
                )
            )
            for label in range(classes)
        },
        "binary_f1": points(
            bootstrap(
                lambda t, p: binary_f1((t != 0).astype(int), (p != 0).astype(int)),
                truth_array,
                predicted_array,
            )
        ),
        "confusion_matrix": [
            [int(np.sum((truth_array == row) & (predicted_array == column))) for column in range(classes)]
            for row in range(classes)
        ],
    }
    return scores


def kmhas_scores(truth: Sequence[int], predicted: Sequence[int]) -> dict[str, Any]:
    """Binary F1 on K-MHaS (toxic = 공격적 or 혐오) from BEEP!'s class ids, truth and predicted alike."""
    truth_array, predicted_array = (
        (np.asarray(truth) != 0).astype(int),
        (np.asarray(predicted) != 0).astype(int),
    )
    result = bootstrap(binary_f1, truth_array, predicted_array)
    return {
        "n": len(truth_array),
        "toxic_share": round(float(truth_array.mean()), 4),
        "binary_f1": {key: round(value * 100, 2) for key, value in result.items()},
    }


def tfidf_baseline(train_texts: list[str], train_labels: list[int], *, seed: int):
    """Character 1-4-gram TF-IDF + multinomial logistic regression, C by 5-fold cross-validation on train."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.pipeline import make_pipeline

    model = make_pipeline(
        TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), sublinear_tf=True, min_df=2),
        LogisticRegressionCV(
            Cs=[1, 2, 4, 8, 16, 32, 64, 128],
            l1_ratios=(0.0,),  # plain L2
            cv=5,
            scoring="f1_macro",
            max_iter=3000,
            random_state=seed,
            use_legacy_attributes=False,
        ),
    )
    model.fit(train_texts, train_labels)
    return model


# BEEP! train alone: K-MHaS read as BEEP!'s classes (--kmhas-rows) was measured and made BEEP! dev worse, with or
# without its clean comments (bench/results/toxicity_steps/, docs/benchmarks.md).
E5_RECIPE = {
    "kmhas_rows": 0,
    "epochs": 3.0,
    "batch_size": 16,
    "learning_rate": 5e-5,
    "head_learning_rate": 1e-3,
    "max_length": 64,
    "eval_size": 500,
}


def paired_difference(
    statistic: Callable[[np.ndarray, np.ndarray], float],
    truth: np.ndarray,
    first: np.ndarray,
    second: np.ndarray,
    *,
    seed: int = 0,
) -> dict[str, float]:
    """statistic(first) - statistic(second) on the same examples, with a paired percentile-bootstrap interval."""

    def difference(t: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
        return statistic(t, a) - statistic(t, b)

    low, high = percentile_bootstrap(
        lambda sample: difference(truth[sample], first[sample], second[sample]),
        len(truth),
        resamples=BOOTSTRAP_RESAMPLES,
        confidence=CONFIDENCE,
        seed=seed,
    )
    value = difference(truth, first, second)
    return {key: round(number * 100, 2) for key, number in {"value": value, "low": low, "high": high}.items()}


def e5_config(shared_dir: Path, workdir: Path, seed: int):
    from trainer import TrainConfig

    return TrainConfig(
        output=workdir / "e5-toxicity",
        task="toxicity",
        base=str(e5_dir(shared_dir)),
        korpora_root=shared_dir / "korpora",
        train_size=None,
        seed=seed,
        **E5_RECIPE,
    )


def fine_tuned_e5(config) -> Path:
    """The trainer's toxicity model on e5, trained into the config's output folder unless one of the same recipe
    and seed is there (`bench-recipe.json` beside it says which); a model of another recipe is replaced."""
    import json

    from trainer import train

    output = config.output
    stamp = output.parent / "bench-recipe.json"
    recipe = {**E5_RECIPE, "seed": config.seed}
    trained = (output / "confidence_map.json").is_file() and stamp.is_file()
    if not trained or json.loads(stamp.read_text(encoding="utf-8")) != recipe:
        shutil.rmtree(output, ignore_errors=True)
        stamp.unlink(missing_ok=True)
        output.parent.mkdir(parents=True, exist_ok=True)
        train(config)
        stamp.write_text(json.dumps(recipe), encoding="utf-8")
    return output


def rounded_ece(confidence: np.ndarray, correct: np.ndarray) -> dict[str, float]:
    value, low, high = ece_with_interval(confidence, correct, resamples=BOOTSTRAP_RESAMPLES)
    return {"value": round(value, 4), "low": round(low, 4), "high": round(high, 4)}


def score_fine_tuned(version: Path, dev, kmhas_held_out, baseline_dev: np.ndarray | None) -> dict[str, Any]:
    """`kmhas_held_out` carries BEEP!'s class ids (`load_kmhas(three_class=True)`): binary F1 as for the
    baseline, and three-class scores and ECE on its 4,402 comments. Those read K-MHaS as BEEP!'s classes, so they
    measure a model trained with K-MHaS rows; for one trained on BEEP! alone they show how far the two lines lie
    apart."""
    import json

    from classifier import Classifier
    from classifier.confidence_map import ConfidenceMap
    from trainer.temperature import undo_temperature
    from trainer.toxicity import TOXICITY_ID2LABEL

    # Without the map, to score each calibration step; the map is then applied as the classifier applies it.
    classifier = Classifier.load(version, backend="torch", apply_confidence_map=False)
    ids = sorted(classifier.id2label)

    def probabilities(texts: list[str]) -> np.ndarray:
        return np.array(
            [
                [verdict.probabilities[classifier.id2label[i]] for i in ids]
                for verdict in classifier.predict(texts)
            ]
        )

    dev_probabilities = probabilities(dev.texts)
    kmhas_probabilities = probabilities(kmhas_held_out.texts)
    confidence_map = ConfidenceMap.read(version)
    dev_predicted = dev_probabilities.argmax(axis=1)
    kmhas_predicted = kmhas_probabilities.argmax(axis=1)
    metrics = json.loads((version / "metrics.json").read_text(encoding="utf-8"))
    temperature = float(metrics["calibration"]["temperature"])
    truth = np.asarray(dev.labels)

    def eces(served: np.ndarray, labels: Sequence[int]) -> dict[str, Any]:
        """ECE of the top class before the calibration, after the temperature, after the confidence map."""
        correct = served.argmax(axis=1) == np.asarray(labels)
        return {
            "before": rounded_ece(undo_temperature(served, temperature).max(axis=1), correct),
            "after": rounded_ece(served.max(axis=1), correct),
            "after_map": rounded_ece(confidence_map.apply(served).max(axis=1), correct)
            if confidence_map is not None
            else None,
        }

    scores: dict[str, Any] = {
        "what": "multilingual-e5-small-ko fine-tuned on BEEP! train by the trainer (--task toxicity), "
        + ", ".join(f"{key} {value}" for key, value in E5_RECIPE.items()),
        "temperature": temperature,
        "epochs_trained": metrics.get("epochs_trained"),
        "beep_dev": beep_scores(dev.labels, dev_predicted.tolist(), TOXICITY_ID2LABEL),
        "beep_dev_ece": eces(dev_probabilities, dev.labels),
        "kmhas_held_out": kmhas_scores(kmhas_held_out.labels, kmhas_predicted.tolist()),
        "kmhas_held_out_three_class": {
            **beep_scores(kmhas_held_out.labels, kmhas_predicted.tolist(), TOXICITY_ID2LABEL),
            "ece": eces(kmhas_probabilities, kmhas_held_out.labels),
        },
    }
    if baseline_dev is not None:
        scores["beep_dev_minus_tfidf_macro_f1"] = paired_difference(
            lambda t, p: float(f1_scores(t, p, len(ids)).mean()), truth, dev_predicted, baseline_dev
        )
    return scores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared-dir", type=Path, default=REPO_ROOT.parent / "shared")
    parser.add_argument("--models", nargs="+", choices=("tfidf", "e5"), default=["tfidf", "e5"])
    parser.add_argument("--workdir", type=Path, default=REPO_ROOT / "data" / "bench-toxicity")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from trainer.data import load_training_data
    from trainer.toxicity import TOXICITY_ID2LABEL, load_beep, load_kmhas

    korpora = args.shared_dir / "korpora"
    train, dev = load_beep(korpora, "train"), load_beep(korpora, "dev")
    _, kmhas_held_out = load_kmhas(korpora, three_class=True)
    config = e5_config(args.shared_dir, args.workdir, args.seed)
    models: dict[str, Any] = {}
    baseline_dev = None
    if "tfidf" in args.models:
        baselines = {"tfidf_logreg": ("BEEP! train", train.texts, train.labels)}
        if config.kmhas_rows:  # the baseline on the fine-tuned model's own rows, to tell data from model
            same_data = load_training_data(config).train  # exactly those: its evaluation rows held out
            baselines["tfidf_logreg_same_data"] = (
                f"the fine-tuned model's {len(same_data.texts)} training rows",
                same_data.texts,
                same_data.labels,
            )
        for name, (data, texts, labels) in baselines.items():
            started = time.perf_counter()
            baseline = tfidf_baseline(texts, labels, seed=args.seed)
            seconds = time.perf_counter() - started
            predicted_dev = baseline.predict(dev.texts)
            if name == "tfidf_logreg":
                baseline_dev = (
                    predicted_dev  # the published anchor's setting, which the paired difference uses
                )
            kmhas_predicted = baseline.predict(kmhas_held_out.texts)
            chosen_c = float(np.atleast_1d(baseline[-1].C_)[0])
            models[name] = {
                "what": "character 1-4-gram TF-IDF (char_wb, sublinear, min_df 2) + logistic regression, "
                f"C={chosen_c:g} chosen by 5-fold CV (macro-F1) on {data}",
                "fit_seconds": round(seconds, 1),
                "beep_dev": beep_scores(dev.labels, predicted_dev.tolist(), TOXICITY_ID2LABEL),
                "kmhas_held_out": kmhas_scores(kmhas_held_out.labels, kmhas_predicted.tolist()),
            }
    if "e5" in args.models:
        started = time.perf_counter()
        version = fine_tuned_e5(config)
        models["e5_small"] = score_fine_tuned(version, dev, kmhas_held_out, baseline_dev)
        models["e5_small"]["wall_seconds"] = round(time.perf_counter() - started, 1)
    result = {
        "labels": TOXICITY_ID2LABEL,
        "data": {
            "train": f"BEEP! train ({len(train)} comments)"
            + (
                f" and {config.kmhas_rows} K-MHaS comments outside its held-out fifth"
                if config.kmhas_rows
                else ""
            ),
            "dev": f"BEEP! dev ({len(dev)} comments)",
            "kmhas_held_out": f"K-MHaS, the held-out fifth by hash ({len(kmhas_held_out)} comments): binary, "
            "and read as BEEP!'s classes (trainer.toxicity.kmhas_as_beep) for the e5 model's three-class scores",
        },
        "bootstrap": {"resamples": BOOTSTRAP_RESAMPLES, "confidence": CONFIDENCE},
        "models": models,
        "environment": environment("cpu"),
    }
    path = write_result("toxicity", result, args.output)
    for name, scores in models.items():
        logger.info(
            "%s: BEEP! dev macro-F1 %.2f [%.2f, %.2f], binary F1 %.2f; K-MHaS held-out binary F1 %.2f",
            name,
            scores["beep_dev"]["macro_f1"]["value"],
            scores["beep_dev"]["macro_f1"]["low"],
            scores["beep_dev"]["macro_f1"]["high"],
            scores["beep_dev"]["binary_f1"]["value"],
            scores["kmhas_held_out"]["binary_f1"]["value"],
        )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
