r"""Data for the learning-loop benchmark: rated reviews outside NSMC and a pattern the quick-start model gets wrong.

The benchmark (`bench/bench_learning_loop.py`) sends pattern reviews to the bot, lets users correct its
mistakes, retrains, and checks whether the model learned the right lesson: error on held-out pattern reviews,
overall and per class, and NSMC test accuracy, before and after. This module supplies the reviews:

    from bench.learning_loop_data import load_rated_reviews, pattern_reviews, class_mix, error_report, PATTERN
    frame = load_rated_reviews(shared_dir)          # 270,064 rated reviews, none from NSMC (cached)
    bot_set, heldout_set = pattern_reviews(frame)   # 150 / 1,500 pattern reviews, disjoint, same class mix
    error_report(heldout_set["label"], predictions) # error overall / 부정 / 긍정 with 95% Wilson intervals

Run as a script:

    python -m bench.learning_loop_data load                          # build the cache (~5 s), print the pool
    python -m bench.learning_loop_data scan --model models/quickstart-e5 [--per-pattern 400]
    python -m bench.learning_loop_data describe --model models/quickstart-e5

The pool. `load_rated_reviews` keeps the clearly rated reviews of `shared/data/naver_movie_reviews.tsv.gz` the way
NSMC was built (1-4 -> 부정, 9-10 -> 긍정), 6-140 characters, none of them in NSMC by id or by text: 270,064
reviews, 94.5% 긍정 (NSMC used up 100k of the ~116k clear negatives, so only 14,885 부정 are left).

The pattern: **a low score**, regex `(?<![\d.])[0-4]\s*점|빵\s*점` (0점 ... 4점 or 빵점, not 10점 or 3.5점).
Reviews that name a low score come from two kinds of reviewer: one giving it ("1점도 아깝다", "배우 보고 2점")
and one attacking those who gave it ("1점 준 사람들 뭐냐", "1점 주는 사람이 너무 많아서 10점 줌"). The
quick-start model hears the low score and the angry tone and calls nearly all of them 부정. The pattern has
1,661 de-duplicated reviews, 63.7% 긍정 (1,058) and 36.3% 부정 (603), so both classes can be measured: a
retraining that learns the wrong lesson ("N점 -> 긍정") shows up as a higher error on the 부정 third. The lesson
is not one word either: the pattern is a family (five digits and 빵, spelled with or without a space), and the
same words with other numbers (10점, 9점대, 7.5점) are outside the pattern and mostly positive.

Why this one (`bench/results/learning_loop_pattern_scan.json`, 40 candidates, up to 200 reviews of each class
scored, errors weighted by the pattern's own class mix): the patterns with a higher error fail the class-mix
requirement: questions ('?', 52.8%, only 12% 부정), 쩐다 (51.4%, 2% 부정), 뭐냐/뭐지 (47.3%, 22% 부정, and
only 670 reviews). Among those that fit (error >= 35%, minority class >= 25%, room for 150 + >= 400 reviews with
>= 100 of the minority held out), the top four are all variants of "a review talking about scores": 1점 or 알바
(47.7% on the sample), 1점 (47.4%), a low score (46.4%), 0-4점 + 알바 + 테러 (45.0%); then 알바 (41.2%) and
쓰레기 (35.9%). Scored on their whole pools (also in the JSON) the four tie within their 95% intervals: 44.3%,
46.5%, 45.3%, 44.8%. 1점 alone is one point higher but one token, with 1,199 reviews and 31% 부정; a low score
widens it to a family with 1,661 reviews and the most balanced mix (36% 부정), and keeps the lesson coherent
(알바 and 테러 would add accusations of paid or hostile raters, mostly positive).

Quick-start model (`models/quickstart-e5`, NSMC eval accuracy 0.788), on the full held-out set (seed
20261125; 1,500 reviews: 545 부정, 955 긍정), 95% Wilson intervals:

    overall 45.2% [42.7%, 47.7%] (678/1500)
    부정     12.5% [10.0%, 15.5%] (68/545)
    긍정     63.9% [60.8%, 66.9%] (610/955)

On the bot set (150: 54 부정, 96 긍정) it errs on 69: 46.0% overall, 18.5% on 부정, 61.5% on 긍정, so users
correct 59 긍정 and 10 부정 verdicts. Errors on the 부정 side include some label noise: the same
"이것은 절대 1점이 아니다, 11점을 주고 싶은 내 마음" meme posted with a rating of 1 in three wordings.

Costs on the shared 2-core machine, one torch thread: `load_rated_reviews` 4.7 s to build, 0.4 s from the cache;
scoring runs at ~40-50 reviews/s, so a full scan (40 patterns x 400 plus the whole pools of the six that fit,
~15k distinct reviews) takes ~6 minutes the first time and 10-35 s after that: predictions are cached per model
version in `data/bench-cache/` (gitignored), keyed by the weights file's path, size and mtime.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import re
import sys
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SHARED_DIR = REPO_ROOT.parent / "shared"
DEFAULT_MODEL_DIR = REPO_ROOT / "models" / "quickstart-e5"
CACHE_DIR = REPO_ROOT / "data" / "bench-cache"  # /data/ is gitignored
SCAN_RESULT = REPO_ROOT / "bench" / "results" / "learning_loop_pattern_scan.json"
RAW_SUBPATH = Path("data") / "naver_movie_reviews.tsv.gz"
NSMC_SUBPATH = Path("korpora") / "nsmc"
LABEL_NAMES = ("부정", "긍정")  # 0 = negative (ratings 1-4), 1 = positive (ratings 9-10), as in NSMC

MIN_CHARS, MAX_CHARS = 6, 140
NEGATIVE_RATINGS, POSITIVE_RATINGS = (1, 2, 3, 4), (9, 10)
# Bump when load_rated_reviews' recipe changes: the cache file name carries it.
RECIPE_VERSION = 1

DEFAULT_SEED = 20261125
BOT_SIZE = 150
HELDOUT_MIN = 400
HELDOUT_CAP = 1500


# --- the rated pool ----------------------------------------------------------------------------------
def normalise(text: str) -> str:
    """NFC, whitespace runs collapsed to one space, stripped (NSMC's own whitespace rule, plus NFC)."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def _read_tsv(path: Path, **kwargs: Any) -> pd.DataFrame:
    import pandas as pd

    return pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, keep_default_na=False, **kwargs)


def nsmc_frame(shared_dir: Path, split: str) -> pd.DataFrame:
    """NSMC `ratings_{split}.txt` as columns id, document, label."""
    path = Path(shared_dir) / NSMC_SUBPATH / f"ratings_{split}.txt"
    if not path.is_file():
        raise FileNotFoundError(f"NSMC {split} split not found at {path} (pass --shared-dir)")
    return _read_tsv(path, dtype={"document": str})


def _source_fingerprint(paths: Sequence[Path]) -> str:
    digest = hashlib.sha1(f"recipe-{RECIPE_VERSION}".encode())
    for path in paths:
        stat = path.stat()
        digest.update(f"{path.resolve()}:{stat.st_size}:{int(stat.st_mtime)}".encode())
    return digest.hexdigest()[:12]


def load_rated_reviews(
    shared_dir: Path = DEFAULT_SHARED_DIR, *, cache_dir: Path | None = CACHE_DIR, refresh: bool = False
) -> pd.DataFrame:
    """Rated Naver reviews that are not in NSMC, labelled the NSMC way. Columns text, label, rating, review_id.

    Recipe: ratings 1-4 -> 0 (부정), 9-10 -> 1 (긍정), 5-8 dropped; text NFC-normalised with whitespace
    collapsed; 6 to 140 characters kept; every review in NSMC train or test dropped, by review id and by
    identical normalised text; repeated texts kept once (the lowest review id), and texts that occur with
    both labels dropped altogether. Rows are sorted by review_id.

    From the 698,006 raw reviews: 486,706 have a clear rating, 466,631 of them are 6-140 characters, 274,499
    remain after dropping NSMC ids and 271,478 after dropping NSMC texts; 270,064 remain after the in-pool
    de-duplication (1,394 repeats and 20 rows whose text occurs with both labels dropped): 255,179 긍정 (94.5%) and
    14,885 부정. NSMC took 100k of the ~116k clear negatives, so the pool is overwhelmingly positive. Cached as
    a pickle under `cache_dir` (gitignored `data/bench-cache/`), named by the recipe version and the source
    files' size and mtime: 4.7 s to build on the shared 2-core machine, 0.4 s to reload.
    """
    import pandas as pd

    shared_dir = Path(shared_dir)
    raw_path = shared_dir / RAW_SUBPATH
    nsmc_paths = [shared_dir / NSMC_SUBPATH / f"ratings_{split}.txt" for split in ("train", "test")]
    for path in (raw_path, *nsmc_paths):
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found (pass --shared-dir / shared_dir)")
    cache_file = None
    if cache_dir is not None:
        cache_file = Path(cache_dir) / f"rated-reviews-{_source_fingerprint([raw_path, *nsmc_paths])}.pkl"
        if cache_file.is_file() and not refresh:
            return pd.read_pickle(cache_file)

    raw = _read_tsv(raw_path, dtype={"document": str})
    raw = raw.loc[raw["rating"].isin(NEGATIVE_RATINGS + POSITIVE_RATINGS)]
    frame = pd.DataFrame(
        {
            "text": raw["document"].map(normalise),
            "label": raw["rating"].isin(POSITIVE_RATINGS).astype("int64"),
            "rating": raw["rating"].astype("int64"),
            "review_id": raw["review_id"].astype("int64"),
        }
    )
    frame = frame.loc[frame["text"].str.len().between(MIN_CHARS, MAX_CHARS)]

    nsmc = pd.concat([nsmc_frame(shared_dir, split) for split in ("train", "test")], ignore_index=True)
    nsmc_texts = set(nsmc["document"].map(normalise))
    frame = frame.loc[~frame["review_id"].isin(set(nsmc["id"].astype("int64")))]
    frame = frame.loc[~frame["text"].isin(nsmc_texts)]

    frame = frame.sort_values("review_id")
    conflicting = frame.groupby("text")["label"].transform("nunique") > 1
    frame = frame.loc[~conflicting].drop_duplicates("text", keep="first").reset_index(drop=True)

    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        partial = cache_file.with_suffix(f".{os.getpid()}.tmp")
        frame.to_pickle(partial)
        partial.replace(cache_file)
    return frame


# --- patterns ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pattern:
    name: str
    regex: str
    note: str = ""

    def mask(self, texts: pd.Series) -> pd.Series:
        return texts.str.contains(self.regex, regex=True)


PATTERN = Pattern(
    name="a low score (0-4점, 빵점)",
    regex=r"(?<![\d.])[0-4]\s*점|빵\s*점",
    note=(
        "A review that names a low score: 0점, 1점, 2 점, 3점, 4점 or 빵점, not preceded by a digit or a decimal "
        "point (so 10점, 100점, 3.5점, 4.37점 do not count). Two kinds of reviewer write it: the one who gives the low "
        "score ('1점도 아깝다', '배우 보고 2점') and the one who attacks the people who gave it ('1점 준 사람들 "
        "뭐냐', '1점 주는 사람이 너무 많아서 10점 줌'). The quick-start model hears only the low score and the angry tone and "
        "calls both negative, so it misses most of the positive ones. The right lesson is about who the score is "
        "for; the wrong one ('N점 -> 긍정') flips the negative ones, which make up a third of the pattern."
    ),
)

CANDIDATES: tuple[Pattern, ...] = (
    Pattern("ㅠㅠ (crying)", r"[ㅠㅜ]{2,}"),
    Pattern("눈물", r"눈물"),
    Pattern("울었/울컥", r"울었|울어|울음|울고|울컥"),
    Pattern("소름", r"소름"),
    Pattern("미쳤/미친", r"미쳤|미친|미치|미쳐"),
    Pattern("무섭", r"무서|무섭"),
    Pattern("쩐다", r"쩐다|쩔어|쩔었|쩐당"),
    Pattern("대박", r"대박"),
    Pattern("뭐냐/뭐지", r"뭐냐|뭐임|뭐지|뭔데"),
    Pattern("어이없", r"어이\s?없|어이가\s?없"),
    Pattern("ㅋㅋㅋ", r"ㅋ{3,}"),
    Pattern("ㅡㅡ / ;; (annoyed)", r"ㅡㅡ|--|;;"),
    Pattern("~지만 (concession)", r"지만"),
    Pattern("question mark", r"\?"),
    Pattern("English word", r"[A-Za-z]{3,}"),
    Pattern("N점 (a score)", r"\d+\s*점"),
    Pattern("10점/만점", r"10\s*점|십\s*점|만점"),
    Pattern("1점", r"(?<!\d)1\s*점"),
    Pattern("평점", r"평점"),
    Pattern("알바", r"알바"),
    Pattern("1점 or 알바", r"(?<!\d)1\s*점|알바"),
    PATTERN,
    Pattern("rating talk (0-4점, 빵점, 알바, 테러)", r"(?<![\d.])[0-4]\s*점|빵\s*점|알바|테러"),
    Pattern("아깝", r"아깝|아까운|아까워|아까웠"),
    Pattern("지루", r"지루"),
    Pattern("별로", r"별로"),
    Pattern("후회", r"후회"),
    Pattern("재미없", r"재미\s?없"),
    Pattern("최악", r"최악"),
    Pattern("실망", r"실망"),
    Pattern("억지", r"억지"),
    Pattern("유치", r"유치"),
    Pattern("뻔한", r"뻔한|뻔하|뻔했"),
    Pattern("쓰레기", r"쓰레기"),
    Pattern("짜증", r"짜증"),
    Pattern("아쉽", r"아쉽|아쉬운|아쉬움|아쉬웠"),
    Pattern("기대", r"기대"),
    Pattern("욕", r"욕"),
    Pattern("병맛/B급", r"병맛|[Bb]급"),
    Pattern("존나/개- (intensifiers)", r"존나|졸라|존잼|개꿀|개(?:재|웃|쩔|좋|노|감)"),
)


def dedup_key(text: str) -> str:
    """Texts that differ only in case, spacing or punctuation share a key ("돈 아깝다..." ~ "돈아깝다")."""
    return re.sub(r"[\W_]+", "", text.lower())


def pattern_pool(frame: pd.DataFrame, pattern: Pattern = PATTERN) -> pd.DataFrame:
    """The pool's reviews matching `pattern`, near-duplicates (same `dedup_key`) kept once, labels agreeing."""
    matched = frame.loc[pattern.mask(frame["text"])].copy()
    matched["_key"] = matched["text"].map(dedup_key)
    matched = matched.loc[matched["_key"] != ""]
    conflicting = matched.groupby("_key")["label"].transform("nunique") > 1
    matched = matched.loc[~conflicting].drop_duplicates("_key", keep="first")
    return matched.drop(columns="_key").reset_index(drop=True)


def _stratified_order(frame: pd.DataFrame, seed: int) -> dict[int, pd.DataFrame]:
    """Each class's rows in a seeded random order."""
    return {
        label: frame.loc[frame["label"] == label].sample(frac=1.0, random_state=seed + label)
        for label in (0, 1)
    }


def pattern_reviews(
    frame: pd.DataFrame,
    *,
    seed: int = DEFAULT_SEED,
    pattern: Pattern = PATTERN,
    bot_size: int = BOT_SIZE,
    heldout_cap: int = HELDOUT_CAP,
    heldout_min: int = HELDOUT_MIN,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(bot_set, heldout_set): disjoint, de-duplicated pattern reviews, both with the pattern's natural class mix.

    `frame` is `load_rated_reviews()`. Each class is shuffled with the seed and split in proportion to its share
    of the pattern, so both sets have the same mix (to within one review); the bot set has `bot_size` reviews
    and the held-out set all the rest, up to `heldout_cap`. Near-duplicates (same text up to case, spacing and
    punctuation) are kept once before the split, so no review has a twin on the other side. Columns as in
    `frame`, in shuffled order.
    """
    import pandas as pd

    pool = pattern_pool(frame, pattern)
    if len(pool) < bot_size + heldout_min:
        raise ValueError(
            f"pattern {pattern.name!r} has {len(pool)} reviews; need {bot_size} + at least {heldout_min}"
        )
    heldout_size = min(heldout_cap, len(pool) - bot_size)
    share = {label: float((pool["label"] == label).mean()) for label in (0, 1)}
    ordered = _stratified_order(pool, seed)
    bot_counts = _apportion(bot_size, share)
    heldout_counts = _apportion(heldout_size, share)
    for label in (0, 1):  # rounding can ask one more than a class has
        spare = len(ordered[label]) - bot_counts[label] - heldout_counts[label]
        if spare < 0:
            heldout_counts[label] += spare
            heldout_counts[1 - label] -= spare
    bot = pd.concat([ordered[label].iloc[: bot_counts[label]] for label in (0, 1)])
    heldout = pd.concat(
        [
            ordered[label].iloc[bot_counts[label] : bot_counts[label] + heldout_counts[label]]
            for label in (0, 1)
        ]
    )
    bot = bot.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    heldout = heldout.sample(frac=1.0, random_state=seed + 7).reset_index(drop=True)
    return bot, heldout


def _apportion(total: int, share: dict[int, float]) -> dict[int, int]:
    negatives = round(total * share[0])
    return {0: negatives, 1: total - negatives}


def class_mix(frame: pd.DataFrame) -> dict[str, Any]:
    """Size and class counts of a set of reviews."""
    negatives = int((frame["label"] == 0).sum())
    positives = int((frame["label"] == 1).sum())
    total = negatives + positives
    return {
        "n": total,
        LABEL_NAMES[0]: negatives,
        LABEL_NAMES[1]: positives,
        "share_긍정": round(positives / total, 4) if total else None,
    }


# --- scoring -----------------------------------------------------------------------------------------
def wilson_ci(successes: int, trials: int, alpha: float = 0.05) -> tuple[float, float] | None:
    """Wilson score interval (statsmodels if installed, else scipy; both give the same interval)."""
    if trials == 0:
        return None
    try:
        from statsmodels.stats.proportion import proportion_confint

        low, high = proportion_confint(successes, trials, alpha=alpha, method="wilson")
    except ImportError:
        from scipy.stats import binomtest

        interval = binomtest(successes, trials).proportion_ci(confidence_level=1 - alpha, method="wilson")
        low, high = interval.low, interval.high
    return float(low), float(high)


def error_report(labels: Sequence[int], predictions: Sequence[int]) -> dict[str, Any]:
    """Error overall and per true class, with counts and 95% Wilson intervals."""
    if len(labels) != len(predictions):
        raise ValueError("labels and predictions differ in length")

    def part(pairs: list[tuple[int, int]]) -> dict[str, Any]:
        errors = sum(1 for label, prediction in pairs if label != prediction)
        interval = wilson_ci(errors, len(pairs))
        return {
            "n": len(pairs),
            "errors": errors,
            "error": errors / len(pairs) if pairs else None,
            "ci95": [round(bound, 4) for bound in interval] if interval else None,
        }

    pairs = [(int(label), int(prediction)) for label, prediction in zip(labels, predictions, strict=True)]
    report = {"overall": part(pairs)}
    for label, name in enumerate(LABEL_NAMES):
        report[name] = part([pair for pair in pairs if pair[0] == label])
    return report


class CachedScorer:
    """P(긍정) per review id from one model version, remembered on disk so that re-scans are free."""

    def __init__(self, model_dir: Path, *, threads: int = 1, cache_dir: Path | None = CACHE_DIR) -> None:
        self.model_dir = Path(model_dir).resolve()
        self.threads = threads
        self._classifier = None
        weights = self.model_dir / "model.safetensors"
        stamp = (
            f"{self.model_dir}:{weights.stat().st_size}:{int(weights.stat().st_mtime)}"
            if weights.is_file()
            else str(self.model_dir)
        )
        key = hashlib.sha1(stamp.encode()).hexdigest()[:12]
        self.cache_file = Path(cache_dir) / f"predictions-{key}.json" if cache_dir is not None else None
        self.scores: dict[int, float] = {}
        if self.cache_file is not None and self.cache_file.is_file():
            self.scores = {int(k): v for k, v in json.loads(self.cache_file.read_text()).items()}
        self.scored_now = 0
        self.seconds = 0.0

    @property
    def classifier(self):
        if self._classifier is None:
            import torch

            torch.set_num_threads(self.threads)
            from classifier import Classifier

            self._classifier = Classifier.load(self.model_dir, device="cpu")
        return self._classifier

    def positive_probability(self, frame: pd.DataFrame) -> list[float]:
        missing = frame.loc[~frame["review_id"].isin(self.scores.keys())]
        if len(missing):
            classifier = self.classifier
            started = time.perf_counter()
            verdicts = classifier.predict(missing["text"].tolist())
            self.seconds += time.perf_counter() - started
            self.scored_now += len(missing)
            positive = classifier.id2label[1]
            for review_id, verdict in zip(missing["review_id"], verdicts, strict=True):
                self.scores[int(review_id)] = round(float(verdict.probabilities[positive]), 6)
            self.save()
        return [self.scores[int(review_id)] for review_id in frame["review_id"]]

    def predict(self, frame: pd.DataFrame) -> list[int]:
        return [int(probability > 0.5) for probability in self.positive_probability(frame)]

    def save(self) -> None:
        if self.cache_file is None:
            return
        self.cache_file.parent.mkdir(parents=True, exist_ok=True)
        partial = self.cache_file.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps({str(k): v for k, v in self.scores.items()}))
        partial.replace(self.cache_file)


def model_accuracy(model_dir: Path) -> float | None:
    metrics = Path(model_dir) / "metrics.json"
    if not metrics.is_file():
        return None
    return json.loads(metrics.read_text(encoding="utf-8")).get("accuracy")


# --- scan --------------------------------------------------------------------------------------------
def scan_pattern(
    frame: pd.DataFrame, pattern: Pattern, scorer: CachedScorer, *, per_pattern: int, seed: int
) -> dict[str, Any]:
    """Score up to per_pattern/2 reviews of each class (more of one when the other runs short).

    Per-class errors come from the class's own sample; the overall error is weighted by the pattern's natural
    class mix, so it estimates the error on a natural sample while keeping the rarer class measurable.
    """
    import pandas as pd

    pool = pattern_pool(frame, pattern)
    available = {label: int((pool["label"] == label).sum()) for label in (0, 1)}
    positive_share = available[1] / len(pool) if len(pool) else None
    half = per_pattern // 2
    base = {label: min(available[label], half) for label in (0, 1)}
    take = {
        label: base[label] + min(available[label] - base[label], half - base[1 - label]) for label in (0, 1)
    }
    ordered = _stratified_order(pool, seed)
    sample = pd.concat([ordered[label].iloc[: take[label]] for label in (0, 1)])
    report = error_report(sample["label"].tolist(), scorer.predict(sample))
    per_class = {name: report[name]["error"] for name in LABEL_NAMES}
    overall = None
    if positive_share is not None and None not in per_class.values():
        overall = positive_share * per_class["긍정"] + (1 - positive_share) * per_class["부정"]
    elif positive_share is not None:
        overall = report["overall"]["error"]
    return {
        "pattern": pattern.name,
        "regex": pattern.regex,
        "available": len(pool),
        "available_부정": available[0],
        "share_긍정": round(positive_share, 4) if positive_share is not None else None,
        "scored_부정": take[0],
        "scored_긍정": take[1],
        "error": round(overall, 4) if overall is not None else None,
        "error_긍정": round(per_class["긍정"], 4) if per_class["긍정"] is not None else None,
        "error_부정": round(per_class["부정"], 4) if per_class["부정"] is not None else None,
        "chosen": pattern == PATTERN,
    }


def fits_benchmark(row: dict[str, Any]) -> bool:
    """Error >= 35% on a natural sample, minority >= 25%, room for 150 + 400 with >= 100 minority held out."""
    share = row["share_긍정"]
    if share is None or row["error"] is None:
        return False
    minority = min(share, 1 - share)
    heldout = min(HELDOUT_CAP, row["available"] - BOT_SIZE)
    return row["error"] >= 0.35 and minority >= 0.25 and heldout >= HELDOUT_MIN and heldout * minority >= 100


def _print_table(rows: list[dict[str, Any]]) -> None:
    from bench.common import markdown_table

    shown = [
        {
            "": "**chosen**" if row["chosen"] else ("fits" if fits_benchmark(row) else ""),
            "pattern": row["pattern"],
            "available": row["available"],
            "부정 available": row["available_부정"],
            "긍정 share": f"{row['share_긍정']:.0%}" if row["share_긍정"] is not None else None,
            "scored 부정/긍정": f"{row['scored_부정']}/{row['scored_긍정']}",
            "error": _percent(row["error"]),
            "error on 긍정": _percent(row["error_긍정"]),
            "error on 부정": _percent(row["error_부정"]),
        }
        for row in rows
    ]
    print(markdown_table(shown, list(shown[0])))


def _percent(value: float | None) -> str | None:
    return None if value is None else f"{value:.1%}"


def run_scan(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    frame = load_rated_reviews(args.shared_dir, refresh=args.refresh)
    load_seconds = time.perf_counter() - started
    print(
        f"rated pool: {len(frame):,} reviews ({class_mix(frame)}), loaded in {load_seconds:.1f} s", flush=True
    )
    scorer = CachedScorer(args.model, threads=args.threads)
    candidates = list(CANDIDATES)
    if PATTERN not in candidates:
        candidates.append(PATTERN)
    rows = []
    for pattern in candidates:
        row = scan_pattern(frame, pattern, scorer, per_pattern=args.per_pattern, seed=args.seed)
        rows.append(row)
        print(
            f"  {row['pattern']:<24} n={row['available']:>6} 긍정={row['share_긍정']:.0%} "
            f"error={_percent(row['error'])} (긍정 {_percent(row['error_긍정'])}, 부정 {_percent(row['error_부정'])})",
            flush=True,
        )
    rows.sort(key=lambda row: -(row["error"] or 0))
    print()
    _print_table(rows)
    # The candidates that fit are close on a sample: score each one's whole pool (natural mix) to choose.
    whole_pools = []
    by_name = {pattern.name: pattern for pattern in candidates}
    for row in rows:
        if fits_benchmark(row) or row["chosen"]:
            pool = pattern_pool(frame, by_name[row["pattern"]])
            report = error_report(pool["label"].tolist(), scorer.predict(pool))
            whole_pools.append({"pattern": row["pattern"], "mix": class_mix(pool), "model_error": report})
    print("\nwhole pools of the patterns that fit (95% Wilson intervals):")
    for entry in whole_pools:
        errors = entry["model_error"]
        print(
            f"  {entry['pattern']:<36} n={entry['mix']['n']:>5}  overall {_format_error(errors['overall'])}"
            f"  부정 {_format_error(errors['부정'])}  긍정 {_format_error(errors['긍정'])}"
        )
    chosen = describe(frame, scorer, seed=args.seed, shared_dir=args.shared_dir)
    scan_seconds = time.perf_counter() - started
    result = {
        "benchmark": "learning_loop_pattern_scan",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": str(Path(args.model)),
        "model_metrics_accuracy": model_accuracy(args.model),
        "shared_dir": str(args.shared_dir),
        "seed": args.seed,
        "per_pattern": args.per_pattern,
        "method": (
            "Per pattern: its de-duplicated reviews in the rated pool (load_rated_reviews), up to per_pattern/2 "
            "of each class scored (seeded); per-class error on the class's sample, overall error weighted by "
            "the pattern's natural class mix. 'fits' = error >= 35%, minority class >= 25%, and room for "
            f"{BOT_SIZE} bot + >= {HELDOUT_MIN} held-out reviews with >= 100 of the minority class held out."
        ),
        "pool": class_mix(frame),
        "chosen_pattern": asdict(PATTERN),
        "seconds": {
            "load_rated_reviews": round(load_seconds, 1),
            "scan_total": round(scan_seconds, 1),
            "scoring": round(scorer.seconds, 1),
        },
        "reviews_scored_now": scorer.scored_now,
        "reviews_per_second": round(scorer.scored_now / scorer.seconds, 1) if scorer.seconds else None,
        "torch_threads": args.threads,
        "load_average_1m": round(os.getloadavg()[0], 2),
        "rows": rows,
        "whole_pools_of_fitting_patterns": whole_pools,
        "chosen_sets": {key: chosen[key] for key in ("pattern_pool", "seed", "bot_set", "heldout_set")},
    }
    output = args.output or SCAN_RESULT
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(
        f"\nscored {scorer.scored_now} new reviews in {scorer.seconds:.0f} s; scan took {scan_seconds:.0f} s "
        f"-> {output}"
    )


# --- describe ----------------------------------------------------------------------------------------
def nsmc_pattern_mix(shared_dir: Path, pattern: Pattern = PATTERN) -> dict[str, Any]:
    """The class mix of NSMC's reviews that match `pattern`, per split: what the base data a run draws its rows
    and neighbours from teaches about the pattern (NSMC keeps as many 부정 as 긍정 reviews; the rated pool the
    benchmark's pattern reviews come from is mostly 긍정)."""
    mixes = {}
    for split in ("train", "test"):
        nsmc = nsmc_frame(shared_dir, split)
        texts = nsmc["document"].map(normalise)
        mixes[split] = {"reviews": len(nsmc), "matching": class_mix(nsmc.loc[pattern.mask(texts)])}
    return mixes


def describe(
    frame: pd.DataFrame,
    scorer: CachedScorer,
    *,
    seed: int = DEFAULT_SEED,
    shared_dir: Path = DEFAULT_SHARED_DIR,
) -> dict[str, Any]:
    """The chosen pattern's sets, their class mix, and the model's error on each (overall, per class, CIs); and
    the pattern's class mix in NSMC."""
    bot, heldout = pattern_reviews(frame, seed=seed)
    return {
        "pattern": asdict(PATTERN),
        "pattern_pool": class_mix(pattern_pool(frame)),
        "nsmc": nsmc_pattern_mix(shared_dir),
        "seed": seed,
        "bot_set": {"mix": class_mix(bot), "model_error": error_report(bot["label"], scorer.predict(bot))},
        "heldout_set": {
            "mix": class_mix(heldout),
            "model_error": error_report(heldout["label"], scorer.predict(heldout)),
        },
    }


def _format_error(part: dict[str, Any]) -> str:
    low, high = part["ci95"]
    return f"{part['error']:.1%} [{low:.1%}, {high:.1%}] ({part['errors']}/{part['n']})"


def run_describe(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    frame = load_rated_reviews(args.shared_dir, refresh=args.refresh)
    scorer = CachedScorer(args.model, threads=args.threads)
    result = describe(frame, scorer, seed=args.seed, shared_dir=args.shared_dir)
    print(f"pattern {PATTERN.name!r}: {PATTERN.regex}")
    print(f"pattern pool: {result['pattern_pool']}")
    for split, part in result["nsmc"].items():
        print(f"NSMC {split} ({part['reviews']:,} reviews), matching: {part['matching']}")
    for name in ("bot_set", "heldout_set"):
        part = result[name]
        print(f"\n{name}: {part['mix']}")
        for key in ("overall", *LABEL_NAMES):
            print(f"  error {key:<8} {_format_error(part['model_error'][key])}")
    print(f"\nmodel {args.model} (metrics.json accuracy {model_accuracy(args.model)}); 95% Wilson intervals")
    print(f"took {time.perf_counter() - started:.1f} s ({scorer.scored_now} reviews scored now)")
    if args.output:
        result.update(model=str(args.model), created_at=datetime.now(UTC).isoformat(timespec="seconds"))
        args.output.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=("load", "scan", "describe"))
    parser.add_argument("--shared-dir", type=Path, default=DEFAULT_SHARED_DIR)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR, help="model version directory")
    parser.add_argument("--per-pattern", type=int, default=400, help="scan: reviews scored per pattern")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: the CPU is shared)")
    parser.add_argument("--refresh", action="store_true", help="rebuild the rated-review cache")
    parser.add_argument(
        "--output", type=Path, default=None, help="scan: result JSON; describe: optional JSON"
    )
    args = parser.parse_args(argv)
    if args.mode == "load":
        started = time.perf_counter()
        frame = load_rated_reviews(args.shared_dir, refresh=args.refresh)
        print(f"{len(frame):,} rated reviews {class_mix(frame)} in {time.perf_counter() - started:.1f} s")
    elif args.mode == "scan":
        run_scan(args)
    else:
        run_describe(args)


if __name__ == "__main__":
    main(sys.argv[1:])
