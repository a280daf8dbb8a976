"""The base corpus's nearest labelled rows to a handful of extra examples.

A few dozen corrections teach a model little against thousands of base rows: it learns those texts, not the
mistake behind them. The base corpus usually holds many more reviews like each corrected one, with gold labels.
Training on them as well teaches the neighbourhood of each correction, and their labels come from the corpus,
not from the labeller: a wrong (or poisoned) label pulls in rows that argue against it.

Similarity is the cosine of character 2-3-gram TF-IDF vectors (within word boundaries): cheap on CPU for the
whole corpus. Wording alone finds rows that share a correction's incidental words as readily as the words behind
the mistake, so when the starting checkpoint is already a classifier over the same labels, each correction's
closest candidates are judged by it, and each correction's share alternates between the ones it gets wrong (the
same mistake, in other reviews, with the corpus's labels) and the ones it gets right. Mistakes alone teach a
shortcut: corrections of "1점 ... 재밌다" from 부정 to 긍정 bring neighbours that are mostly 긍정 and share "1점", and
the model learns "1점 -> 긍정", breaking the 부정 "1점" reviews it had right (docs/benchmarks.md, scenario (a)). The
rows it gets right beside them share the same wording with the other answer, so only what tells the two apart
is learned.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from itertools import zip_longest
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

# Queries are scored against the pool this many at a time (a dense block of chunk x pool floats).
_QUERY_CHUNK = 64
# With a judge, each query's this-many-times-its-share closest rows are candidates.
CANDIDATES_PER_ROW = 8

# texts -> the predicted label id of each
Judge = Callable[[list[str]], list[int]]


def nearest_rows(
    pool: Sequence[str],
    queries: Sequence[str],
    *,
    per_query: int,
    limit: int,
    pool_labels: Sequence[int] | None = None,
    judge: Judge | None = None,
) -> list[int]:
    """Indices into `pool` of up to `per_query` rows most like each query, `limit` at most in all.

    Rows are taken round-robin over the queries, nearest first, so every query gets its share before any gets
    more; rows identical to a query (after normalising spaces) are skipped, and rows with no n-gram in common
    with the query are never taken. With `judge` and `pool_labels`, each query's candidates are its
    `CANDIDATES_PER_ROW * per_query` nearest rows, taken alternately from those the judge gets wrong and those it
    gets right (wrong first). Deterministic for the same inputs."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    if per_query < 1 or limit < 1 or not pool or not queries:
        return []
    vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 3), min_df=2, sublinear_tf=True)
    pool_vectors = vectorizer.fit_transform(pool)
    query_vectors = vectorizer.transform(queries)
    own_texts = {" ".join(query.split()) for query in queries}
    judged = judge is not None and pool_labels is not None
    candidates_per_query = per_query * (CANDIDATES_PER_ROW if judged else 1)
    ranked: list[list[int]] = []
    for start in range(0, len(queries), _QUERY_CHUNK):
        block = (query_vectors[start : start + _QUERY_CHUNK] @ pool_vectors.T).toarray()
        for similarities in block:
            # A stable sort on the negated scores: ties keep the pool's order, so the choice is deterministic.
            candidates = np.argsort(-similarities, kind="stable")[: candidates_per_query + len(own_texts)]
            ranked.append(
                [
                    int(index)
                    for index in candidates
                    if similarities[index] > 0 and " ".join(pool[index].split()) not in own_texts
                ][:candidates_per_query]
            )
    if judged:
        ranked = _mistakes_and_right_answers_alternating(ranked, pool, pool_labels, judge)
    chosen: list[int] = []
    seen: set[int] = set()
    for depth in range(per_query):
        for rows in ranked:
            if depth < len(rows) and rows[depth] not in seen:
                seen.add(rows[depth])
                chosen.append(rows[depth])
                if len(chosen) == limit:
                    return chosen
    return chosen


def _mistakes_and_right_answers_alternating(
    ranked: list[list[int]], pool: Sequence[str], pool_labels: Sequence[int], judge: Judge
) -> list[list[int]]:
    """Each query's candidates, alternately one the judge gets wrong and one it gets right (each kind in nearness
    order, a mistake first); when one kind runs out, the other fills the rest."""
    candidates = sorted({index for rows in ranked for index in rows})
    predicted = dict(zip(candidates, judge([pool[index] for index in candidates]), strict=True))
    wrong = {index for index in candidates if predicted[index] != pool_labels[index]}
    logger.info(
        "The starting model gets %d of %d neighbour candidates wrong; each correction's share alternates them with"
        " rows it gets right",
        len(wrong),
        len(candidates),
    )
    return [
        [
            index
            for pair in zip_longest([i for i in rows if i in wrong], [i for i in rows if i not in wrong])
            for index in pair
            if index is not None
        ]
        for rows in ranked
    ]


def classifier_judge(base: str, id2label: dict[int, str], *, batch_size: int = 64, max_length: int = 128):
    """The checkpoint `base` as a `Judge`, when it is a sequence classifier over exactly `id2label`; else None
    (a bare encoder or another task's model knows nothing of these labels)."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    base = str(Path(base).expanduser())
    try:
        config = AutoConfig.from_pretrained(base)
    except (OSError, ValueError):
        return None
    labels = {int(key): name for key, name in (getattr(config, "id2label", None) or {}).items()}
    if labels != id2label:
        return None
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(base).eval()
    # Never longer than the model's positions (a scratch model has few); 128 tokens judge a review well enough.
    limits = (max_length, getattr(config, "max_position_embeddings", None), tokenizer.model_max_length)
    max_length = min(limit for limit in limits if isinstance(limit, int) and limit > 0)

    def judge(texts: list[str]) -> list[int]:
        order = sorted(
            range(len(texts)), key=lambda i: len(texts[i])
        )  # similar lengths batch with less padding
        predicted = [0] * len(texts)
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                batch = tokenizer(
                    [texts[i] for i in chunk],
                    truncation=True,
                    max_length=max_length,
                    padding=True,
                    return_tensors="pt",
                )
                for i, label in zip(chunk, model(**batch).logits.argmax(-1).tolist(), strict=True):
                    predicted[i] = label
        return predicted

    return judge
