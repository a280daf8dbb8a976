"""What a run's corrections share (`bot.retraining.correction_pattern`): the evaluation set's slice the gate
checks per class. Texts are built so the expected terms and rows are known exactly."""

from __future__ import annotations

import random

from bot.retraining.correction_pattern import MIN_CORRECTIONS, NO_PATTERN, correction_pattern

# Every review is made of these, the corrections too: none of them may become the pattern.
FILLER = [
    "배우",
    "연기",
    "스토리",
    "사람들",
    "감독",
    "영상미",
    "결말",
    "주인공",
    "대사",
    "준비",
    "분위기",
    "장면",
]


def review(rng: random.Random, words: int = 4) -> str:
    return " ".join(rng.choice(FILLER) + rng.choice(["가", "는", "도", "이", "만"]) for _ in range(words))


def evaluation_set(rng: random.Random, *, with_term: int, without: int) -> tuple[list[str], set[int]]:
    texts = [review(rng) for _ in range(without)]
    texts += [f"{review(rng, 2)} 1점 {review(rng, 2)}" for _ in range(with_term)]
    order = list(range(len(texts)))
    rng.shuffle(order)
    shuffled = [texts[i] for i in order]
    return shuffled, {position for position, i in enumerate(order) if i >= without}


def test_the_corrections_shared_term_and_the_evaluation_rows_that_contain_it():
    rng = random.Random(0)
    eval_texts, holding = evaluation_set(rng, with_term=40, without=4000)
    corrections = [f"{review(rng, 1)} 1점 {review(rng, 3)}" for _ in range(30)]
    pattern = correction_pattern(corrections, eval_texts)
    assert "1점" in {term.strip() for term in pattern.terms}
    # Every term is the pattern's, not the filler every review has.
    assert all(not any(word[:2] in term for word in FILLER) for term in pattern.terms)
    assert set(pattern.rows) == holding
    assert pattern.record() == {"terms": list(pattern.terms), "rows": 40}
    assert correction_pattern(corrections, eval_texts) == pattern  # deterministic


def test_no_pattern_from_too_few_corrections_or_none_shared():
    rng = random.Random(1)
    eval_texts, _ = evaluation_set(rng, with_term=40, without=2000)
    few = [f"{review(rng, 1)} 1점 {review(rng, 3)}" for _ in range(MIN_CORRECTIONS - 1)]
    assert correction_pattern(few, eval_texts) == NO_PATTERN
    # Corrections that share only what every review has: nothing is many times rarer in the evaluation set.
    ordinary = [review(rng, 5) for _ in range(30)]
    assert correction_pattern(ordinary, eval_texts) == NO_PATTERN
    assert correction_pattern([f"1점 {review(rng)}" for _ in range(30)], []) == NO_PATTERN
