"""What share of a run's fine-tuned weights to keep: what the corrections fixed against what they broke.

A learning-loop run (`bench.bench_learning_loop`) fine-tunes the starting model on the users' labels. Its saved
weights are `RETRAIN_FINE_TUNED_SHARE` of the fine-tuned ones and the rest the starting model's
(`trainer/weight_mix.py`, WiSE-FT). This benchmark takes a scenario's work folder from a run with the share at 1
(the fine-tuned weights as they are; every run before the setting existed), mixes its candidate with its
starting model at each share, and scores every mix on what the benchmark and the gate look at:

- the held-out pattern reviews (never sent to the bot), per class, as `bench_learning_loop` scores them;
- the gate's corrected-pattern slice: the gate's fixed evaluation set's reviews that hold the terms the run's
  corrections share (`bot.retraining.correction_pattern`), per gold class. The corrections are the run's human
  labels that the starting model gets wrong, i.e. the verdicts people corrected.

Scores in torch fp32 (the bot serves ONNX int8: on the learning loop's models the two differed by at most about a
point of pattern error). Writes `bench/results/learning_loop_steps/weight-mix-<name>.json`.

    python -m bench.bench_weight_mix --workdir data/bench-learning-loop-450/a --pattern-reviews 450 --name a-450
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.bench_learning_loop import build_traffic
from bench.bot_under_test import SHARED_DIR
from bench.learning_loop_data import BOT_SIZE, DEFAULT_SEED, LABEL_NAMES, error_report

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "bench" / "results" / "learning_loop_steps"
SHARES = (1.0, 0.8, 0.7, 0.6, 0.5, 0.0)


def _predict(model, tokenizer, texts: list[str], positive: int, batch_size: int = 64) -> list[int]:
    """1 where the model says 긍정, in the texts' order (batched by length: less padding)."""
    import torch

    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    predicted = [0] * len(texts)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            batch = tokenizer(
                [texts[i] for i in chunk], truncation=True, max_length=128, padding=True, return_tensors="pt"
            )
            for i, label in zip(chunk, model(**batch).logits.argmax(-1).tolist(), strict=True):
                predicted[i] = int(label == positive)
    return predicted


def _slice_report(labels: list[int], predictions: list[int]) -> dict[str, Any]:
    """Accuracy per gold class on the gate's pattern slice."""
    report: dict[str, Any] = {}
    for label, name in enumerate(LABEL_NAMES):
        pairs = [(y, p) for y, p in zip(labels, predictions, strict=True) if y == label]
        report[name] = {"n": len(pairs), "accuracy": round(sum(y == p for y, p in pairs) / len(pairs), 4)}
    return report


def measure(workdir: Path, pattern_reviews: int, seed: int, shares: tuple[float, ...]) -> dict[str, Any]:
    import pandas as pd
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from bot.retraining.correction_pattern import correction_pattern
    from trainer.weight_mix import mix_weights

    start_dir = workdir / "models" / "quickstart"
    candidates = sorted((workdir / "models").glob("run-1-*"))
    if not candidates:
        raise SystemExit(f"no candidate of run 1 under {workdir / 'models'}")
    candidate_dir = candidates[0]
    metrics = json.loads((candidate_dir / "metrics.json").read_text(encoding="utf-8"))
    applied = (metrics.get("weight_mix") or {}).get("applied", 1.0)
    if applied != 1.0:
        raise SystemExit(
            f"{candidate_dir} keeps {applied} of its fine-tuned weights; run the scenario with 1"
        )
    tokenizer = AutoTokenizer.from_pretrained(start_dir)
    model = AutoModelForSequenceClassification.from_pretrained(start_dir).eval()
    start = {key: tensor.clone() for key, tensor in model.state_dict().items()}
    fine = AutoModelForSequenceClassification.from_pretrained(candidate_dir).state_dict()
    positive = model.config.label2id["긍정"]

    _, heldout = build_traffic(SHARED_DIR, seed, pattern_reviews)
    gate = pd.read_csv(next((workdir / "runs" / "eval-sets").glob("gate-*.csv")), keep_default_na=False)
    run_dir = workdir / "runs" / "run-1"
    labels = pd.concat(
        [
            pd.read_csv(run_dir / name, keep_default_na=False)
            for name in ("human_labels_train.csv", "human_labels_holdout.csv")
        ]
    )
    said = _predict(model, tokenizer, labels["text"].tolist(), positive)
    corrected = [
        text
        for text, label, verdict in zip(labels["text"], labels["label"], said, strict=True)
        if int(label == "긍정") != verdict
    ]
    pattern = correction_pattern(corrected, gate["text"].tolist())
    slice_rows = gate.iloc[list(pattern.rows)]
    slice_labels = [int(label == "긍정") for label in slice_rows["label"]]

    rows = []
    for share in shares:
        began = time.perf_counter()
        model.load_state_dict(fine if share > 0 else start)
        if 0 < share < 1:
            mix_weights(model, start, fine_tuned_share=share)
        pattern_predictions = _predict(model, tokenizer, heldout["text"].tolist(), positive)
        slice_predictions = _predict(model, tokenizer, slice_rows["text"].tolist(), positive)
        rows.append(
            {
                "fine_tuned_share": share,
                "pattern": error_report(heldout["label"].tolist(), pattern_predictions),
                "gate_pattern_slice": _slice_report(slice_labels, slice_predictions),
                "seconds": round(time.perf_counter() - began, 1),
            }
        )
        print(
            json.dumps(
                {
                    "share": share,
                    "pattern_error": rows[-1]["pattern"]["overall"]["error"],
                    "slice": rows[-1]["gate_pattern_slice"],
                },
                ensure_ascii=False,
            ),
            flush=True,
        )
    before = next(row for row in rows if row["fine_tuned_share"] == 0.0)["pattern"]["overall"]["error"]
    for row in rows:
        row["pattern_error_reduction"] = round(1 - row["pattern"]["overall"]["error"] / before, 4)
    return {
        "candidate": os.path.relpath(candidate_dir, REPO_ROOT),
        "candidate_settings": {key: metrics.get(key) for key in ("best_epoch", "best_metric", "seed")}
        | {"data": metrics.get("data")},
        "corrections_found": len(corrected),
        "human_labels": len(labels),
        "gate_pattern": pattern.record(),
        "heldout_pattern_reviews": len(heldout),
        "shares": rows,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--workdir", type=Path, required=True, help="a scenario's folder, e.g. data/bench-learning-loop/a"
    )
    parser.add_argument("--pattern-reviews", type=int, default=BOT_SIZE, help="as the scenario was run with")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--name", required=True, help="the results file's name: weight-mix-<name>.json")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    load_at_start = [round(value, 2) for value in os.getloadavg()]
    began = time.perf_counter()
    result = {
        "benchmark": "weight_mix",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench.bench_weight_mix", *(argv or sys.argv[1:])]),
        "machine": {
            "cpu_cores": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch_threads": torch.get_num_threads(),
            "load_average_at_start": load_at_start,
        },
        **measure(args.workdir, args.pattern_reviews, args.seed, SHARES),
    }
    result["machine"]["load_average_at_end"] = [round(value, 2) for value in os.getloadavg()]
    result["wall_seconds"] = round(time.perf_counter() - began, 1)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"weight-mix-{args.name}.json"
    path.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
