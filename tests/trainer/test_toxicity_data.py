"""Toxicity data (trainer/toxicity.py): BEEP!'s labelled files and K-MHaS's binary signal with a fixed held-out
fifth, read from the shared files; and the scores the toxicity benchmark reports (bench/bench_toxicity.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.bench_toxicity import beep_scores, binary_f1, bootstrap, f1_scores
from trainer.config import TrainingError
from trainer.toxicity import TOXICITY_ID2LABEL, kmhas_as_beep, load_beep, load_kmhas, toxic


def test_beep_splits_have_the_published_sizes_and_the_three_labels(korpora_root: Path):
    train, dev = load_beep(korpora_root, "train"), load_beep(korpora_root, "dev")
    assert (len(train), len(dev)) == (7896, 471)
    # Read independently: the label column counted by hand.
    raw = pd.read_csv(
        korpora_root / "korean_hate_speech" / "labeled" / "dev.tsv",
        sep="\t",
        quoting=3,
        keep_default_na=False,
    )
    expected = {
        TOXICITY_ID2LABEL[{"none": 0, "offensive": 1, "hate": 2}[name]]: count
        for name, count in raw["hate"].value_counts().items()
    }
    found = {TOXICITY_ID2LABEL[label]: dev.labels.count(label) for label in TOXICITY_ID2LABEL}
    assert found == expected and found["공격적"] == 189
    assert dev.texts[0] == raw["comments"][0]
    assert [toxic(label) for label in (0, 1, 2)] == [0, 1, 1]


def test_kmhas_held_out_fifth_is_fixed_disjoint_and_binary(korpora_root: Path):
    train, held_out = load_kmhas(korpora_root)
    again_train, again_held_out = load_kmhas(korpora_root)
    assert held_out.texts == again_held_out.texts and train.texts == again_train.texts
    assert len(train) + len(held_out) == 21939
    assert 0.18 < len(held_out) / 21939 < 0.22
    assert not set(train.texts) & set(held_out.texts)
    by_text = dict(zip(train.texts + held_out.texts, train.labels + held_out.labels, strict=True))
    # "8" alone is not hate; any category 0-7 is (the file's second row is "2,3", quoted CSV-style).
    assert by_text["그만큼 길예르모가 잘했다고 보면되겠지 기대되네 셰이프 오브 워터"] == 0
    assert by_text["1. 8넘의 문재앙"] == 1
    assert by_text['일본 자민당 한국지사 "자유한국당"=좃선일보=친일파 후손=토착왜구=아베=적폐'] == 1


def test_kmhas_read_as_beep_classes_keeps_the_split_and_the_binary_signal(korpora_root: Path):
    # Aimed at a group identity (0 origin, 4 age, 5 gender, 6 race, 7 religion) is 혐오; profanity (3),
    # appearance (1) or politics (2) alone is 공격적; "8" alone is 정상.
    assert [kmhas_as_beep(set(labels)) for labels in ("8", "3", "12", "23", "25", "0", "7", "38")] == [
        0,
        1,
        1,
        1,
        2,
        2,
        2,
        1,
    ]
    (binary_train, binary_held_out), (train, held_out) = (
        load_kmhas(korpora_root),
        load_kmhas(korpora_root, three_class=True),
    )
    assert train.texts == binary_train.texts and held_out.texts == binary_held_out.texts
    assert [
        toxic(label) for label in train.labels + held_out.labels
    ] == binary_train.labels + binary_held_out.labels
    by_text = dict(zip(train.texts + held_out.texts, train.labels + held_out.labels, strict=True))
    assert by_text["1. 8넘의 문재앙"] == 1  # "2": politics
    assert set(by_text.values()) == {0, 1, 2}


def test_kmhas_rows_join_beep_train_in_their_own_class_mix_and_never_the_held_out_fifth(
    korpora_root: Path, tmp_path: Path
):
    from collections import Counter

    from trainer.config import TrainConfig
    from trainer.data import load_training_data

    def data(rows: int):
        return load_training_data(
            TrainConfig(
                output=tmp_path / "unused",
                task="toxicity",
                korpora_root=korpora_root,
                train_size=None,
                eval_size=500,
                kmhas_rows=rows,
            )
        )

    beep_only, with_kmhas = data(0), data(3000)
    _, held_out = load_kmhas(korpora_root)
    added = (
        len(with_kmhas.train.texts)
        + len(with_kmhas.eval.texts)
        - (len(beep_only.train.texts) + len(beep_only.eval.texts))
    )
    assert 2900 <= added <= 3000  # a few drawn comments are shorter than --min-chars
    seen = set(with_kmhas.train.texts) | set(with_kmhas.eval.texts)
    assert not seen & set(held_out.texts)
    beep_texts = set(load_beep(korpora_root, "train").texts)
    added_labels = Counter(
        label
        for text, label in zip(with_kmhas.train.texts, with_kmhas.train.labels, strict=True)
        if text not in beep_texts
    )
    # Clean and toxic as K-MHaS has them (54 % "not hate speech"): toxic rows alone taught the domain as a cue.
    assert 0.45 < added_labels[0] / sum(added_labels.values()) < 0.63 and added_labels[1] and added_labels[2]
    with pytest.raises(TrainingError, match="--kmhas-rows"):
        TrainConfig(output=tmp_path / "unused", task="toxicity", kmhas_rows=-1)
    with pytest.raises(TrainingError, match="--task toxicity and no --data"):
        TrainConfig(output=tmp_path / "unused", task="sentiment", kmhas_rows=100)
    with pytest.raises(TrainingError, match="--task toxicity and no --data"):
        TrainConfig(output=tmp_path / "unused", task="toxicity", data=tmp_path / "own.csv", kmhas_rows=100)


def test_missing_or_malformed_files_get_a_clear_message(tmp_path: Path):
    with pytest.raises(TrainingError, match="--korpora-root"):
        load_beep(tmp_path, "train")
    labelled = tmp_path / "korean_hate_speech" / "labeled"
    labelled.mkdir(parents=True)
    (labelled / "dev.tsv").write_text("comments\thate\n좋은 글이네요\tspam\n", encoding="utf-8")
    with pytest.raises(TrainingError, match="unknown hate label"):
        load_beep(tmp_path, "dev")


def test_f1_scores_by_hand():
    truth = np.array([0, 0, 1, 1, 2, 2])
    predicted = np.array([0, 1, 1, 1, 2, 0])
    # class 0: tp 1, true 2, predicted 2 -> 0.5; class 1: tp 2, 2, 3 -> 0.8; class 2: tp 1, 2, 1 -> 2/3
    assert f1_scores(truth, predicted, 3) == pytest.approx([0.5, 0.8, 2 / 3])
    assert binary_f1(np.array([1, 1, 0, 0]), np.array([1, 0, 1, 0])) == pytest.approx(0.5)
    scores = beep_scores(truth.tolist(), predicted.tolist(), TOXICITY_ID2LABEL)
    assert scores["macro_f1"]["value"] == pytest.approx(round((0.5 + 0.8 + 2 / 3) / 3 * 100, 2))
    # toxic = 1 or 2: truth 0 0 1 1 1 1, predicted 0 1 1 1 1 0 -> tp 3, true 4, predicted 4 -> 0.75
    assert scores["binary_f1"]["value"] == 75.0
    assert scores["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]


def test_bootstrap_interval_brackets_the_value_and_narrows_with_more_data():
    rng = np.random.default_rng(3)

    def interval(size: int) -> dict[str, float]:
        truth = rng.integers(0, 3, size)
        predicted = np.where(rng.uniform(size=size) < 0.7, truth, rng.integers(0, 3, size))
        return bootstrap(lambda t, p: float(f1_scores(t, p, 3).mean()), truth, predicted)

    small, large = interval(400), interval(10000)
    for result in (small, large):
        assert result["low"] <= result["value"] <= result["high"]
    assert large["high"] - large["low"] < (small["high"] - small["low"]) / 3


def test_paired_difference_is_zero_for_the_same_answers_and_sees_a_better_model():
    from bench.bench_toxicity import paired_difference

    rng = np.random.default_rng(5)
    truth = rng.integers(0, 3, 1000)
    noisy = np.where(rng.uniform(size=1000) < 0.6, truth, rng.integers(0, 3, 1000))
    better = np.where(rng.uniform(size=1000) < 0.9, truth, noisy)

    def macro(t: np.ndarray, p: np.ndarray) -> float:
        return float(f1_scores(t, p, 3).mean())

    assert paired_difference(macro, truth, noisy, noisy) == {"value": 0.0, "low": 0.0, "high": 0.0}
    gain = paired_difference(macro, truth, better, noisy)
    assert gain["low"] > 0 and gain["low"] <= gain["value"] <= gain["high"]


def test_the_benchmark_reuses_its_model_only_for_the_same_recipe(tmp_path: Path, monkeypatch):
    import trainer
    from bench import bench_toxicity
    from trainer.config import TrainConfig

    trained = []

    def fake_train(config):  # what the bench checks for: the version folder with its confidence map
        config.output.mkdir(parents=True)
        (config.output / "confidence_map.json").write_text("{}", encoding="utf-8")
        trained.append(config.output)

    monkeypatch.setattr(trainer, "train", fake_train)
    config = TrainConfig(output=tmp_path / "bench-toxicity" / "e5-toxicity", task="toxicity", seed=3)
    bench_toxicity.fine_tuned_e5(config)
    bench_toxicity.fine_tuned_e5(config)
    assert len(trained) == 1  # the same recipe: trained once
    monkeypatch.setitem(bench_toxicity.E5_RECIPE, "balanced_class_weights", True)
    bench_toxicity.fine_tuned_e5(config)
    assert len(trained) == 2  # another recipe: the old model is replaced
    (tmp_path / "bench-toxicity" / "bench-recipe.json").unlink()
    bench_toxicity.fine_tuned_e5(config)
    assert len(trained) == 3  # a model without its recipe stamp is not trusted
