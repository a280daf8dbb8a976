"""How the learning-loop benchmark scores a model: pattern error on held-out pattern reviews, accuracy on NSMC
test reviews outside the gate's set (paired against the starting model), the attackers' targets, and the goal."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.learning_loop_data import LABEL_NAMES, error_report


def base_evaluation(settings, seed: int, size: int) -> tuple[list[str], list[int]]:
    """10,000 NSMC test reviews outside the gate's fixed set (never trained on, never used to decide)."""
    import pandas as pd

    from bot.retraining.dataset import gate_eval_set
    from trainer.data import load_nsmc, normalized_text

    gate = {normalized_text(text) for text in gate_eval_set(settings).texts}
    corpus = load_nsmc(settings.korpora_root)
    frame = pd.DataFrame({"text": list(corpus.test.texts), "label": list(corpus.test.labels)})
    frame = frame.loc[~frame["text"].map(normalized_text).isin(gate)]
    frame = frame.loc[frame["text"].str.strip().str.len() >= 6].sample(size, random_state=seed)
    return frame["text"].tolist(), [int(label) for label in frame["label"]]


def score(model_path: Path, settings, heldout, base_texts, base_labels, targets=()) -> dict[str, Any]:
    """Pattern error (overall, per class), base accuracy and, given the attackers' `targets` (text, true label),
    how many of those the model now gets wrong, as they asked; all as the bot serves the model."""
    from scipy.stats import binomtest

    from bot.serving import load_serving_classifier

    classifier = load_serving_classifier(model_path, settings)
    positive = classifier.label2id["긍정"]
    pattern = [int(v.label == positive) for v in classifier.predict(heldout["text"].tolist())]
    base = [int(v.label == positive) for v in classifier.predict(base_texts)]
    correct = sum(int(p == y) for p, y in zip(base, base_labels, strict=True))
    interval = binomtest(correct, len(base_labels)).proportion_ci(method="wilson")
    poisoned = (
        [int(v.label == positive) for v in classifier.predict([text for text, _ in targets])]
        if targets
        else []
    )
    return {
        "poison_targets_wrong": sum(int(p != label) for p, (_, label) in zip(poisoned, targets, strict=True)),
        "poison_targets": len(targets),
        "pattern": error_report(heldout["label"].tolist(), pattern),
        "base_accuracy": correct / len(base_labels),
        "base_ci95": [round(interval.low, 4), round(interval.high, 4)],
        "base_n": len(base_labels),
        "base_predictions": base,
    }


def summarise(after: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    from scipy.stats import binomtest

    pairs = list(zip(after["base_predictions"], before["base_predictions"], before["labels"], strict=True))
    gained = sum(1 for a, b, y in pairs if a == y != b)
    lost = sum(1 for a, b, y in pairs if b == y != a)
    p_value = binomtest(gained, gained + lost).pvalue if gained + lost else 1.0
    pattern_before = before["pattern"]["overall"]["error"]
    return {
        "pattern": after["pattern"],
        "pattern_error_change": after["pattern"]["overall"]["error"] - pattern_before,
        "pattern_error_reduction": 1 - after["pattern"]["overall"]["error"] / pattern_before,
        "per_class_error_change_points": {
            name: round(100 * (after["pattern"][name]["error"] - before["pattern"][name]["error"]), 2)
            for name in LABEL_NAMES
        },
        "base_accuracy": after["base_accuracy"],
        "base_ci95": after["base_ci95"],
        "base_change_points": round(100 * (after["base_accuracy"] - before["base_accuracy"]), 2),
        "base_paired": {"gained": gained, "lost": lost, "mcnemar_p": round(p_value, 4)},
        "poison_targets_wrong": after["poison_targets_wrong"],
        "poison_targets": after["poison_targets"],
    }


@dataclass
class Evaluation:
    """What every scenario's models are scored on, and the starting model's scores."""

    settings: Any
    heldout: Any
    base_texts: list[str]
    base_labels: list[int]
    before: dict[str, Any]

    async def after(self, model_path: str | None, targets=()) -> dict[str, Any] | None:
        if not model_path:
            return None
        scores = await asyncio.to_thread(
            score, Path(model_path), self.settings, self.heldout, self.base_texts, self.base_labels, targets
        )
        return summarise(scores, self.before)


def learning_goal(run: dict[str, Any]) -> dict[str, Any]:
    after = run.get("after")
    rule = "pattern error falls >= 50%, neither class's error rises > 10 points"
    if not after:
        return {"rule": rule, "met": False, "why": "no candidate model"}
    rises = after["per_class_error_change_points"]
    return {
        "rule": rule,
        "pattern_error_reduction": round(after["pattern_error_reduction"], 4),
        "per_class_error_change_points": rises,
        "met": after["pattern_error_reduction"] >= 0.5 and max(rises.values()) <= 10,
        "promoted": run["promoted"],
    }
