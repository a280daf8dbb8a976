"""What the corrections of a run have in common, and the fixed evaluation set's examples that share it.

People correct a model where it errs, and its errors come in patterns ("1점 준 사람들 ..." called 부정). A run
trained on those corrections can overshoot: learn "1점 -> 긍정" and break the reviews of the other class that
name the same thing. The fixed evaluation set holds few such reviews (a few hundred of 20,000), so its per-class
checks cannot see the loss, and the held-out human labels of the other class are often a handful.

So the gate looks for the pattern: the character n-grams that a large share of the corrections contain and that
are many times rarer in the evaluation set (`CorrectionPattern.terms`). The evaluation set's examples containing
one of them (`CorrectionPattern.rows`) are a slice with gold labels, never trained on, where the gate checks each
class (check 6 in `bot.retraining.gate`). Pure and deterministic: the same texts give the same terms and rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# At least this many corrections before a pattern is looked for: fewer share n-grams by chance.
MIN_CORRECTIONS = 8
# A term is contained in at least this share of the corrections ...
MIN_SHARE = 0.25
# ... and is at least this many times as common among them as in the evaluation set.
MIN_LIFT = 20.0
# At most this many terms (the most lifted first): the slice stays the pattern, not everything near it.
MAX_TERMS = 5


@dataclass(frozen=True)
class CorrectionPattern:
    terms: tuple[str, ...]  # the n-grams, most lifted first
    rows: tuple[int, ...]  # indices of the evaluation set's examples that contain one of them

    def record(self) -> dict[str, object]:
        return {"terms": list(self.terms), "rows": len(self.rows)}


NO_PATTERN = CorrectionPattern((), ())


def correction_pattern(corrections: Sequence[str], eval_texts: Sequence[str]) -> CorrectionPattern:
    """The terms `corrections` share far more often than `eval_texts` do, and the rows of `eval_texts` holding
    one (NO_PATTERN when there are too few corrections or no such term)."""
    from sklearn.feature_extraction.text import CountVectorizer

    if len(corrections) < MIN_CORRECTIONS or not eval_texts:
        return NO_PATTERN
    # Characters within word boundaries, 2 to 3 long: a score ("1점"), a slang stem or an insult's core,
    # whatever the spacing and endings around it (Korean attaches particles to words).
    vectorizer = CountVectorizer(analyzer="char_wb", ngram_range=(2, 3), binary=True)
    in_corrections = np.asarray(vectorizer.fit_transform(corrections).mean(axis=0)).ravel()
    eval_matrix = vectorizer.transform(eval_texts).tocsc()
    in_eval = np.asarray(eval_matrix.mean(axis=0)).ravel()
    # Add one example's worth to the evaluation share: a term absent from the set gets a finite lift.
    lift = in_corrections / (in_eval + 1.0 / len(eval_texts))
    names = vectorizer.get_feature_names_out()
    candidates = [
        index
        for index in np.lexsort((names, -lift))  # most lifted first; ties by the term, for determinism
        if in_corrections[index] >= MIN_SHARE and lift[index] >= MIN_LIFT and names[index].strip()
    ]
    chosen = candidates[:MAX_TERMS]
    if not chosen:
        return NO_PATTERN
    rows = np.flatnonzero(np.asarray(eval_matrix[:, chosen].sum(axis=1)).ravel() > 0)
    return CorrectionPattern(tuple(str(names[index]) for index in chosen), tuple(int(row) for row in rows))
