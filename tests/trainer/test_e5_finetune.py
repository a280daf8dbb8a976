"""Fine-tuning the real pretrained multilingual-e5-small-ko encoder on a small NSMC sample."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from trainer import TrainConfig, train


@pytest.mark.slow
@pytest.mark.timeout(900)  # about 2 minutes on 2 idle cores; far longer when they are shared
def test_e5_fine_tuned_on_1000_reviews_beats_070_on_unseen_test_reviews(
    e5_model_dir: Path, korpora_root: Path, nsmc_test_frame: pd.DataFrame, tmp_path: Path
):
    from transformers import pipeline

    checkpoint = e5_model_dir
    output = tmp_path / "e5-version"
    metrics = train(
        TrainConfig(
            output=output,
            base=str(checkpoint),
            korpora_root=korpora_root,
            train_size=1000,
            eval_size=200,
            epochs=1,
            batch_size=16,
            learning_rate=5e-5,
            max_length=64,
            seed=42,
        )
    )
    assert metrics["base_checkpoint"] == str(checkpoint)
    assert (
        json.loads((output / "metrics.json").read_text(encoding="utf-8"))["accuracy"] == metrics["accuracy"]
    )
    assert metrics["accuracy"] >= 0.70, metrics

    reviews = nsmc_test_frame.sample(n=200, random_state=7)
    classify = pipeline("text-classification", model=str(output), device=-1)
    verdicts = classify(reviews["document"].tolist(), batch_size=64, truncation=True, max_length=64)
    predicted = [{"부정": 0, "긍정": 1}[verdict["label"]] for verdict in verdicts]
    accuracy = sum(int(p == t) for p, t in zip(predicted, reviews["label"])) / len(reviews)
    assert accuracy >= 0.70, f"held-out accuracy {accuracy:.3f}"
