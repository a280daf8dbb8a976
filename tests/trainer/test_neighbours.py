"""A correction's nearest base rows: what is taken, in what order, and how they enter the training sample."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from trainer import TrainConfig
from trainer.data import load_nsmc, load_training_data
from trainer.neighbours import nearest_rows

POOL = [
    "배우 연기가 정말 좋았다",
    "1점도 아깝다 최악",
    "평점 1점 준 사람들 이해가 안 된다 최고",
    "음악이 좋았다",
    "1점 주는 사람들 뭐냐 재밌기만 한데",
    "지루하고 길다",
    "지루하고 길다",
    "평점 1점 준 사람들 이해가 안 된다 최고",
]


def test_rows_come_round_robin_nearest_first_and_skip_the_query_itself():
    queries = ["평점 1점 준 사람들   이해가 안 된다 최고", "지루한 영화"]
    chosen = nearest_rows(POOL, queries, per_query=2, limit=10)
    # The query's own text (twice in the pool, spaced differently) is never taken.
    assert 2 not in chosen and 7 not in chosen
    # Each query's nearest row comes before any query's second row.
    assert chosen[0] in (1, 4) and chosen[1] in (5, 6)
    assert len(chosen) == len(set(chosen)) == 4
    assert nearest_rows(POOL, queries, per_query=2, limit=10) == chosen  # deterministic


def test_the_limit_and_rows_with_nothing_in_common():
    assert len(nearest_rows(POOL, ["1점 준 사람들", "지루하다"], per_query=3, limit=2)) == 2
    assert nearest_rows(POOL, ["ㅋㅋㅋㅋㅋ"], per_query=3, limit=5) == []  # no shared n-gram: nothing
    assert nearest_rows(POOL, [], per_query=3, limit=5) == []


def test_neighbours_are_taken_out_of_the_sample_and_share_the_corrections_wording(
    korpora_root: Path, tmp_path
):
    extra = tmp_path / "extra.csv"
    corrections = [
        "평점 1점 준 사람들 뭐지? 진짜 재밌는데",
        "1점 주는 알바들 많네 최고의 영화",
        "빵점 준 사람 이해 안 됨",
    ]
    pd.DataFrame({"text": corrections, "label": ["긍정"] * 3}).to_csv(extra, index=False)
    plain = TrainConfig(
        output=tmp_path / "v", korpora_root=korpora_root, train_size=600, eval_size=50, extra=extra
    )
    with_neighbours = TrainConfig(
        output=tmp_path / "v",
        korpora_root=korpora_root,
        train_size=600,
        eval_size=50,
        extra=extra,
        extra_neighbours=20,
    )
    baseline = load_training_data(plain)
    data = load_training_data(with_neighbours)
    assert baseline.sizes["neighbour_rows"] == 0
    taken = data.sizes["neighbour_rows"]
    assert 40 <= taken <= 60  # 20 a correction; a row near two corrections is taken once
    assert len(data.train) == len(baseline.train) == 600 + 3  # the neighbours replace random rows
    score = re.compile(r"(?<![\d.])[0-4]\s*점|빵\s*점")
    neighbours = data.train.texts[:taken]
    random_rows = baseline.train.texts[:600]
    share = sum(bool(score.search(text)) for text in neighbours) / taken
    base_share = sum(bool(score.search(text)) for text in random_rows) / 600
    assert share > 5 * base_share
    # Neighbours carry the corpus's own labels, not the corrections'.
    corpus = load_nsmc(korpora_root)
    gold: dict[str, set[int]] = {}
    for text, label in zip(corpus.train.texts, corpus.train.labels, strict=True):
        gold.setdefault(text, set()).add(label)  # NSMC repeats some texts, a few with both labels
    assert all(label in gold[text] for text, label in zip(neighbours, data.train.labels[:taken], strict=True))
    assert not set(corrections) & set(neighbours)


def test_with_a_judge_the_share_alternates_its_mistakes_and_its_right_answers():
    # Nearest first: the pool is ordered by how much of the query each row shares.
    query = "1점 준 사람 이해 안 됨"
    pool = [
        "1점 준 사람 이해 안 됨 최악",  # 0 부정, judged right
        "1점 준 사람 이해 안 됨 재밌는데",  # 1 긍정, judged wrong
        "1점 준 사람 이해 안 감 최고",  # 2 긍정, judged wrong
        "1점 준 사람 최악이다",  # 3 부정, judged right
        "1점 주는 알바 재밌던데",  # 4 긍정, judged wrong
        "1점도 아깝다",  # 5 부정, judged right
    ]
    labels = [0, 1, 1, 0, 1, 0]
    judged: list[list[str]] = []

    def says_negative_to_every_score(texts: list[str]) -> list[int]:
        judged.append(texts)
        return [0] * len(texts)

    def choose(per_query: int) -> list[int]:
        return nearest_rows(
            pool,
            [query],
            per_query=per_query,
            limit=6,
            pool_labels=labels,
            judge=says_negative_to_every_score,
        )

    # A mistake, then a right answer, then the next mistake: each kind nearest first.
    assert choose(3) == [1, 0, 2]
    assert choose(4) == [1, 0, 2, 3]
    # Each candidate is judged once per call.
    assert all(sorted(texts) == sorted(pool) for texts in judged)
    # When the mistakes run out, the right answers fill the share.
    labels[:] = [0, 1, 0, 0, 0, 0]  # only row 1 is a mistake now
    assert choose(4) == [1, 0, 2, 3]
    assert choose(3) == [1, 0, 2]


def test_only_a_classifier_over_the_same_labels_judges(scratch_model_dir: Path, e5_model_dir: Path, tmp_path):
    from trainer.neighbours import classifier_judge

    judge = classifier_judge(str(scratch_model_dir), {0: "부정", 1: "긍정"})
    assert judge is not None
    predicted = judge(["정말 재밌는 영화", "최악", "시간 아까운 영화였다 정말로"])
    assert len(predicted) == 3 and set(predicted) <= {0, 1}
    assert classifier_judge(str(scratch_model_dir), {0: "정상", 1: "공격적", 2: "혐오"}) is None
    assert classifier_judge(str(e5_model_dir), {0: "부정", 1: "긍정"}) is None  # a bare encoder
    assert classifier_judge(str(tmp_path / "missing"), {0: "부정", 1: "긍정"}) is None
