"""Data loading: NSMC through Korpora (offline and download branches), CSV/TSV, labels, sampling, clear errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from trainer import TrainConfig, TrainingError, train
from trainer.data import load_nsmc, load_training_data


def test_nsmc_loads_offline_from_local_files_through_korpora_classes(korpora_root: Path):
    from Korpora.korpus_nsmc import NSMCKorpus

    corpus = load_nsmc(korpora_root)
    assert isinstance(corpus, NSMCKorpus)
    assert len(corpus.train.texts) == len(corpus.train.labels) == 150_000
    assert len(corpus.test.texts) == 50_000
    assert set(corpus.train.labels) == {0, 1}
    assert corpus.train.texts[1] == "재미있게 보았습니다 추천드림"  # second line of ratings_train.txt


def test_nsmc_absent_goes_through_korporas_download(tmp_path: Path, korpora_root: Path, monkeypatch):
    import Korpora.utils

    downloads: list[str] = []

    def fake_web_download(url, local_path, corpus_name="", force_download=False):
        # Stands in for the network: "downloads" the first 101 lines of the real file.
        downloads.append(url)
        source = korpora_root / "nsmc" / Path(local_path).name
        with open(source, encoding="utf-8") as src, open(local_path, "w", encoding="utf-8") as dst:
            dst.writelines(line for _, line in zip(range(101), src))

    monkeypatch.setattr(Korpora.utils, "web_download", fake_web_download)
    corpus = load_nsmc(tmp_path)
    assert downloads == [
        "https://raw.githubusercontent.com/e9t/nsmc/master/ratings_train.txt",
        "https://raw.githubusercontent.com/e9t/nsmc/master/ratings_test.txt",
    ]
    assert len(corpus.train.texts) == 100 and len(corpus.test.texts) == 100


def test_nsmc_absent_and_network_unreachable_is_a_clear_error(tmp_path: Path, monkeypatch):
    import Korpora.utils

    def unreachable(url, *args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(Korpora.utils, "web_download", unreachable)
    with pytest.raises(TrainingError, match="--korpora-root"):
        load_nsmc(tmp_path)


def test_nsmc_sampling_is_reproducible_by_seed_and_drops_short_documents(korpora_root: Path, tmp_path: Path):
    def sample(seed: int):
        return load_training_data(
            TrainConfig(
                output=tmp_path / "v", korpora_root=korpora_root, train_size=300, eval_size=100, seed=seed
            )
        )

    first, again, other = sample(1), sample(1), sample(2)
    assert first.train.texts == again.train.texts and first.eval.texts == again.eval.texts
    assert first.train.texts != other.train.texts
    assert len(first.train) == 300 and len(first.eval) == 100
    assert all(len(text.strip()) >= 6 for text in first.train.texts + first.eval.texts)
    assert first.id2label == {0: "부정", 1: "긍정"}
    assert not set(first.train.texts) & set(first.eval.texts) - {""}


def test_csv_with_string_labels_gets_sorted_names_and_a_stratified_holdout(write_review_csv, tmp_path: Path):
    data_path = write_review_csv("reviews.csv", size=400, label_names={0: "neg", 1: "pos"})
    data = load_training_data(
        TrainConfig(output=tmp_path / "v", data=data_path, train_size=None, eval_size=100)
    )
    assert data.id2label == {0: "neg", 1: "pos"}
    assert len(data.eval) == 100 and len(data.train) + len(data.eval) <= 400
    source = pd.read_csv(data_path)
    positive_share = (source["label"] == "pos").mean()
    assert abs(sum(data.eval.labels) / len(data.eval) - positive_share) < 0.03


def test_tsv_with_integer_labels_keeps_ids(tmp_path: Path):
    path = tmp_path / "three.tsv"
    rows = [(f"리뷰 번호 {i} 입니다", label) for i, label in enumerate([0, 2] * 20)]
    pd.DataFrame(rows, columns=["review", "stars"]).to_csv(path, sep="\t", index=False)
    data = load_training_data(
        TrainConfig(output=tmp_path / "v", data=path, text_col="review", label_col="stars", eval_size=10)
    )
    assert data.id2label == {0: "0", 1: "1", 2: "2"}
    assert set(data.train.labels) == {0, 2}


def test_extra_examples_map_names_and_ids_and_are_oversampled(korpora_root: Path, tmp_path: Path):
    extra = tmp_path / "extra.csv"
    pd.DataFrame(
        {
            "text": ["이 영화 진짜 최고였다", "돈 아까운 최악의 영화", "배우 연기가 좋았어요"],
            "label": ["긍정", "0", "1"],
        }
    ).to_csv(extra, index=False)
    data = load_training_data(
        TrainConfig(
            output=tmp_path / "v",
            korpora_root=korpora_root,
            train_size=200,
            eval_size=50,
            extra=extra,
            extra_weight=4,
        )
    )
    assert data.extra_size == 3 and len(data.train) == 200 + 12
    assert data.train.texts.count("이 영화 진짜 최고였다") == 4
    extra_rows = list(zip(data.train.texts[200:], data.train.labels[200:], strict=True))
    assert sorted(set(extra_rows)) == sorted(
        {("이 영화 진짜 최고였다", 1), ("돈 아까운 최악의 영화", 0), ("배우 연기가 좋았어요", 1)}
    )
    assert data.extra_class_mix == {"긍정": {"examples": 2, "rows": 8}, "부정": {"examples": 1, "rows": 4}}


def _balanced_reviews(path: Path, per_class: int) -> Path:
    """A CSV with exactly as many 긍정 as 부정 rows."""
    texts = [f"좋은 영화였다 {i}번째 리뷰" for i in range(per_class)]
    texts += [f"별로인 영화였다 {i}번째 리뷰" for i in range(per_class)]
    pd.DataFrame({"text": texts, "label": ["긍정"] * per_class + ["부정"] * per_class}).to_csv(
        path, index=False
    )
    return path


def _corrections(path: Path, positives: int, negatives: int) -> Path:
    texts = [f"평점 1점 준 사람들 뭐지 진짜 재밌는데 {i}" for i in range(positives)]
    texts += [f"1점도 아깝다 시간 낭비 {i}" for i in range(negatives)]
    pd.DataFrame({"text": texts, "label": ["긍정"] * positives + ["부정"] * negatives}).to_csv(
        path, index=False
    )
    return path


@pytest.mark.parametrize("neighbours", [0, 3])
def test_keep_class_prior_draws_the_random_rows_so_the_whole_set_keeps_the_base_mix(
    tmp_path: Path, neighbours
):
    """30 긍정 and 2 부정 corrections at weight 4 add 120 and 8 rows. A plain sample leaves the training set
    mostly 긍정; keeping the prior draws fewer random 긍정 rows, so the set stays half and half as the base data
    is, and the corrections' own rows are all there."""
    data_path = _balanced_reviews(tmp_path / "reviews.csv", per_class=300)
    extra = _corrections(tmp_path / "extra.csv", positives=30, negatives=2)
    common = {
        "output": tmp_path / "v",
        "base": "scratch",
        "data": data_path,
        "train_size": 200,
        "eval_size": 100,
        "extra": extra,
        "extra_weight": 4,
        "extra_neighbours": neighbours,
    }
    plain = load_training_data(TrainConfig(**common))
    kept = load_training_data(TrainConfig(**common, keep_class_prior=True))
    positive = {name: i for i, name in plain.id2label.items()}["긍정"]
    for data in (plain, kept):
        assert len(data.train) == 200 + 128
        assert data.extra_class_mix == {
            "긍정": {"examples": 30, "rows": 120},
            "부정": {"examples": 2, "rows": 8},
        }
        assert (data.sizes["neighbour_rows"] > 0) == (neighbours > 0)
    # A plain sample: about half its random rows are 긍정, on top of the corrections' 120.
    assert plain.train.labels.count(positive) > 164
    # Kept: half of the 328 rows, unless the neighbours (the first rows) and corrections are already more.
    neighbour_positive = kept.train.labels[: kept.sizes["neighbour_rows"]].count(positive)
    assert kept.train.labels.count(positive) == max(164, 120 + neighbour_positive)
    assert sorted(kept.train.texts[-128:]) == sorted(plain.train.texts[-128:])  # the same correction rows


def test_keep_class_prior_gives_all_random_rows_to_the_other_class_when_the_extra_rows_outnumber_it(
    tmp_path: Path,
):
    data_path = _balanced_reviews(tmp_path / "reviews.csv", per_class=300)
    extra = _corrections(tmp_path / "extra.csv", positives=100, negatives=0)  # 400 긍정 rows
    data = load_training_data(
        TrainConfig(
            output=tmp_path / "v",
            base="scratch",
            data=data_path,
            train_size=200,
            eval_size=100,
            extra=extra,
            extra_weight=4,
            keep_class_prior=True,
        )
    )
    negative = {name: i for i, name in data.id2label.items()}["부정"]
    assert data.train.labels[:200] == [negative] * 200  # as near half and half as the rows allow
    assert len(data.train) == 600


def _config(tmp_path: Path, **overrides) -> TrainConfig:
    return TrainConfig(output=tmp_path / "version", base="scratch", train_size=50, eval_size=10, **overrides)


def test_missing_data_file_is_a_clear_error(tmp_path: Path):
    with pytest.raises(TrainingError, match="Data file not found: .*nope.csv"):
        train(_config(tmp_path, data=tmp_path / "nope.csv"))
    assert not (tmp_path / "version").exists()


def test_unknown_column_lists_the_columns_found(write_review_csv, tmp_path: Path):
    path = write_review_csv("reviews.csv", size=50)
    with pytest.raises(TrainingError, match=r"column\(s\) document not found; columns found: text, label"):
        train(_config(tmp_path, data=path, text_col="document"))


def test_single_class_dataset_is_a_clear_error(tmp_path: Path):
    path = tmp_path / "one.csv"
    pd.DataFrame({"text": [f"좋은 영화 {i}번째 리뷰" for i in range(30)], "label": ["긍정"] * 30}).to_csv(
        path, index=False
    )
    with pytest.raises(TrainingError, match=r"only one class \(긍정\)"):
        train(_config(tmp_path, data=path))


def test_empty_after_filtering_is_a_clear_error(tmp_path: Path):
    path = tmp_path / "short.csv"
    pd.DataFrame({"text": ["좋아", "별로", "굿"], "label": [1, 0, 1]}).to_csv(path, index=False)
    with pytest.raises(
        TrainingError, match="no documents left after dropping those shorter than 6 characters"
    ):
        train(_config(tmp_path, data=path))


def test_unknown_extra_label_is_a_clear_error(korpora_root: Path, tmp_path: Path):
    extra = tmp_path / "extra.csv"
    pd.DataFrame({"text": ["그냥 그랬던 영화"], "label": ["중립"]}).to_csv(extra, index=False)
    with pytest.raises(TrainingError, match=r"unknown label\(s\) 중립; known labels: 0 \(부정\), 1 \(긍정\)"):
        train(_config(tmp_path, korpora_root=korpora_root, extra=extra))


def test_unreachable_hub_name_advises_a_local_path_or_scratch(korpora_root: Path, tmp_path: Path):
    # tests/conftest.py sets HF_HUB_OFFLINE=1: the hub cannot be reached.
    config = TrainConfig(
        output=tmp_path / "version",
        base="nobody/no-such-model",
        korpora_root=korpora_root,
        train_size=50,
        eval_size=10,
    )
    with pytest.raises(TrainingError) as caught:
        train(config)
    message = str(caught.value)
    assert (
        "nobody/no-such-model" in message
        and "multilingual-e5-small-ko" in message
        and "--base scratch" in message
    )
    assert not (tmp_path / "version").exists()


def test_existing_non_empty_output_is_refused(tmp_path: Path):
    (tmp_path / "version").mkdir()
    (tmp_path / "version" / "config.json").write_text("{}")
    with pytest.raises(TrainingError, match="already exists"):
        train(_config(tmp_path))


def test_csv_retraining_of_a_fine_tuned_base_keeps_its_label_ids(tmp_path: Path):
    # A fine-tuned version's labels (0 부정, 1 긍정) must survive retraining on a CSV whose names sort the other way.
    base = tmp_path / "fine-tuned"
    base.mkdir()
    (base / "config.json").write_text('{"id2label": {"0": "부정", "1": "긍정"}}', encoding="utf-8")
    data = tmp_path / "reviews.csv"
    rows = [("정말 최고의 영화였어요", "긍정"), ("시간이 아까운 영화였다", "부정")] * 10
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(data, index=False)

    loaded = load_training_data(TrainConfig(output=tmp_path / "out", base=str(base), data=data, eval_size=4))

    assert loaded.id2label == {0: "부정", 1: "긍정"}
    assert sorted(set(loaded.train.labels)) == [0, 1]
    positive = loaded.train.texts.index("정말 최고의 영화였어요")
    assert loaded.train.labels[positive] == 1


def test_csv_with_a_bare_encoder_base_numbers_label_names_itself(tmp_path: Path):
    base = tmp_path / "encoder"
    base.mkdir()
    (base / "config.json").write_text('{"id2label": {"0": "LABEL_0", "1": "LABEL_1"}}', encoding="utf-8")
    data = tmp_path / "reviews.csv"
    pd.DataFrame([("좋아요 좋아요", "pos"), ("별로예요 별로", "neg")] * 5, columns=["text", "label"]).to_csv(
        data, index=False
    )

    loaded = load_training_data(TrainConfig(output=tmp_path / "out", base=str(base), data=data, eval_size=2))

    assert loaded.id2label == {0: "neg", 1: "pos"}
