"""Training data: NSMC through Korpora, or any CSV/TSV; sampling, filtering and extra examples.

Everything here returns plain Python lists so that the training step does not care where rows came from.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from trainer.config import TrainConfig, TrainingError

logger = logging.getLogger(__name__)

NSMC_ID2LABEL = {0: "부정", 1: "긍정"}
# Neighbours of the extra examples fill at most 1/this of the base rows: they lean towards the starting model's
# mistakes, and a sample made mostly of those (hard, often noisily labelled rows) unlearns the rest. Half, not a
# quarter: the ~145 labels of the learning-loop benchmark's scenario (b) ask for about 1,300 rows of 4,000, and a
# quarter cut them to 1,000 (docs/benchmarks.md has that scenario's run at half).
NEIGHBOUR_SHARE_DIVISOR = 2


@dataclass
class LabelledTexts:
    texts: list[str]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.texts)


@dataclass
class TrainingData:
    train: LabelledTexts
    eval: LabelledTexts
    id2label: dict[int, str]
    extra_size: int = 0  # distinct extra examples, before oversampling
    extra_weight: int = 1
    sizes: dict[str, int] = field(default_factory=dict)
    extra_class_mix: dict[str, dict[str, int]] = field(default_factory=dict)  # label -> examples, rows
    excluded: int = 0  # base rows dropped because their text is in `config.exclude`

    @property
    def label2id(self) -> dict[str, int]:
        return {name: label_id for label_id, name in self.id2label.items()}


# --- NSMC through Korpora ------------------------------------------------------------------------------


def load_nsmc(korpora_root: Path | None):
    """The NSMC corpus object (Korpora's `NSMCKorpus`, `.train`/`.test` with `.texts`/`.labels`).

    Korpora 0.2.0's `Korpora.load` always asks the download server for the file size, even when the files are
    on disk, so it fails offline. When both files exist we build the corpus from them with Korpora's own class
    and readers and skip that check; otherwise Korpora downloads them as usual.
    """
    from Korpora import Korpora
    from Korpora.korpora import Korpus, LabeledSentenceKorpusData
    from Korpora.korpus_nsmc import NSMC_FETCH_INFORMATION, NSMCKorpus, description, license
    from Korpora.utils import default_korpora_path, load_text

    root = Path(korpora_root if korpora_root is not None else default_korpora_path).expanduser().resolve()
    local_paths = {info["destination"]: root / info["destination"] for info in NSMC_FETCH_INFORMATION}
    if not all(path.is_file() for path in local_paths.values()):
        logger.info("NSMC not found under %s; downloading it through Korpora", root)
        try:
            return Korpora.load("nsmc", root_dir=str(root))
        except OSError as error:  # urllib's URLError is an OSError
            raise TrainingError(
                f"NSMC is not under {root} and could not be downloaded ({error}). "
                "Pass --korpora-root pointing at a folder holding nsmc/ratings_train.txt and "
                "nsmc/ratings_test.txt (e.g. ../shared/korpora), or --data with a CSV/TSV file."
            ) from error

    logger.info("Loading NSMC from %s", root)
    corpus = NSMCKorpus.__new__(NSMCKorpus)
    with contextlib.redirect_stdout(io.StringIO()) as banner:  # Korpus prints its licence banner on stdout
        Korpus.__init__(corpus, description, license)
    logger.debug("%s", banner.getvalue())
    for destination, path in local_paths.items():
        try:
            texts, labels = corpus.cleaning(load_text(str(path), num_heads=1))
        except ValueError as error:
            raise TrainingError(f"{path} is not a valid NSMC file: {error}") from error
        if "train" in destination:
            corpus.train = LabeledSentenceKorpusData("NSMC.train", texts, labels)
        else:
            corpus.test = LabeledSentenceKorpusData("NSMC.test", texts, labels)
    return corpus


# --- CSV/TSV -----------------------------------------------------------------------------------------


def _separator(path: Path) -> str:
    suffixes = [
        suffix.lower() for suffix in path.suffixes if suffix.lower() not in {".gz", ".bz2", ".zip", ".xz"}
    ]
    return "\t" if suffixes and suffixes[-1] in {".tsv", ".tab", ".txt"} else ","


def read_table(
    path: Path, *, text_col: str, label_col: str, optional_cols: tuple[str, ...] = ()
) -> pd.DataFrame:
    """Rows of `path` (CSV, or TSV by suffix) as a frame with columns `text` and `label` (raw values), plus
    those of `optional_cols` the file has."""
    if not path.is_file():
        raise TrainingError(f"Data file not found: {path}")
    try:
        frame = pd.read_csv(path, sep=_separator(path), dtype=str, keep_default_na=False, quoting=0)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as error:
        raise TrainingError(f"Cannot read {path}: {error}") from error
    missing = [column for column in (text_col, label_col) if column not in frame.columns]
    if missing:
        found = ", ".join(map(str, frame.columns)) or "(none)"
        raise TrainingError(f"{path}: column(s) {', '.join(missing)} not found; columns found: {found}")
    optional = [column for column in optional_cols if column in frame.columns]
    frame = frame[[text_col, label_col, *optional]].rename(columns={text_col: "text", label_col: "label"})
    frame["text"] = frame["text"].astype(str)
    frame["label"] = frame["label"].astype(str).str.strip()
    blank_labels = frame["label"] == ""
    if blank_labels.any():
        logger.warning("%s: dropping %d row(s) without a label", path, int(blank_labels.sum()))
        frame = frame[~blank_labels]
    return frame.reset_index(drop=True)


def normalized_text(text: str) -> str:
    """Whitespace-folded text: how texts are matched against an exclusion list."""
    return " ".join(str(text).split())


def read_excluded_texts(path: Path) -> set[str]:
    """The normalised texts of a CSV/TSV's `text` column (the `--exclude` file)."""
    if not path.is_file():
        raise TrainingError(f"Exclusion file not found: {path}")
    try:
        frame = pd.read_csv(path, sep=_separator(path), dtype=str, keep_default_na=False, usecols=["text"])
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError, ValueError) as error:
        raise TrainingError(f"Cannot read {path} (it needs a text column): {error}") from error
    return {normalized_text(text) for text in frame["text"]}


def _drop_excluded(frame: pd.DataFrame, excluded: set[str]) -> tuple[pd.DataFrame, int]:
    if not excluded:
        return frame, 0
    keep = ~frame["text"].map(normalized_text).isin(excluded)
    return frame[keep], int((~keep).sum())


def _as_int(value: str) -> int | None:
    try:
        return int(value)
    except ValueError:
        return None


def label_names(raw_labels: pd.Series) -> dict[int, str]:
    """`id2label` for a column of raw labels: integer labels keep their ids, names are numbered in sorted order."""
    distinct = sorted(set(raw_labels))
    as_ints = [_as_int(value) for value in distinct]
    if all(value is not None and value >= 0 for value in as_ints):
        return {label_id: str(label_id) for label_id in range(max(as_ints) + 1)}
    return dict(enumerate(distinct))


def base_label_names(base: str, raw_labels: pd.Series) -> dict[int, str] | None:
    """The label names of a local base that is already a classifier, when they cover `raw_labels`.

    Retraining a fine-tuned version on a CSV must keep its label ids (0 부정, 1 긍정), or the new model's
    labels would not line up with the old one's.
    """
    config_path = Path(base).expanduser() / "config.json"
    if not config_path.is_file():
        return None
    try:
        stored = json.loads(config_path.read_text(encoding="utf-8")).get("id2label") or {}
        id2label = {int(label_id): str(name) for label_id, name in stored.items()}
    except (OSError, ValueError, AttributeError):
        return None
    if not id2label or all(re.fullmatch(r"LABEL_\d+", name) for name in id2label.values()):
        return None  # a bare encoder's placeholder names
    names = set(id2label.values())
    fits = all(
        value in names or (_as_int(value) is not None and _as_int(value) in id2label)
        for value in set(raw_labels)
    )
    return id2label if fits else None


def encode_labels(raw_labels: pd.Series, id2label: dict[int, str], *, source: Path | str) -> list[int]:
    """Label ids for raw labels that are either names in `id2label` or ids; anything else is a clear error."""
    name_to_id = {name: label_id for label_id, name in id2label.items()}
    encoded: list[int] = []
    unknown: set[str] = set()
    for value in raw_labels:
        if value in name_to_id:
            encoded.append(name_to_id[value])
            continue
        as_int = _as_int(value)
        if as_int is not None and as_int in id2label:
            encoded.append(as_int)
        else:
            unknown.add(value)
    if unknown:
        known = ", ".join(f"{label_id} ({name})" for label_id, name in id2label.items())
        raise TrainingError(
            f"{source}: unknown label(s) {', '.join(sorted(unknown)[:10])}; known labels: {known}"
        )
    return encoded


# --- Sampling ------------------------------------------------------------------------------------------


def _keep_long_enough(frame: pd.DataFrame, min_chars: int, *, source: str) -> pd.DataFrame:
    kept = frame[frame["text"].str.strip().str.len() >= min_chars]
    if len(kept) < len(frame):
        logger.info(
            "%s: dropped %d document(s) shorter than %d characters", source, len(frame) - len(kept), min_chars
        )
    if kept.empty:
        raise TrainingError(
            f"{source}: no documents left after dropping those shorter than {min_chars} characters"
        )
    return kept


def _sample(frame: pd.DataFrame, size: int | None, *, seed: int, source: str) -> pd.DataFrame:
    if size is None or size >= len(frame):
        if size is not None and size > len(frame):
            logger.warning("%s: asked for %d rows, only %d available; using all", source, size, len(frame))
        return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    return frame.sample(n=size, random_state=seed).reset_index(drop=True)


def _stratified_holdout(frame: pd.DataFrame, size: int, *, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rest, held_out): `size` rows held out with each label's share kept (at least one row per label)."""
    fraction = min(size / len(frame), 1.0)
    held_out_index: list = []
    for _, group in frame.groupby("label_id"):
        count = max(1, min(len(group) - 1, round(len(group) * fraction)))
        held_out_index.extend(group.sample(n=count, random_state=seed).index)
    held_out = frame.loc[held_out_index]
    return frame.drop(held_out.index), held_out


def _labelled(frame: pd.DataFrame) -> LabelledTexts:
    return LabelledTexts(texts=frame["text"].tolist(), labels=[int(label) for label in frame["label_id"]])


def _require_two_classes(frame: pd.DataFrame, *, source: str, id2label: dict[int, str]) -> None:
    present = sorted(set(frame["label_id"]))
    if len(present) < 2:
        names = ", ".join(id2label[label_id] for label_id in present)
        raise TrainingError(
            f"{source}: only one class ({names}) in the training data; a classifier needs at least two"
        )


def load_training_data(config: TrainConfig) -> TrainingData:
    """Train/eval texts and labels for `config`, sampled reproducibly by `config.seed`."""
    if config.data is not None:
        train_frame = read_table(config.data, text_col=config.text_col, label_col=config.label_col)
        eval_frame = (
            read_table(config.eval_data, text_col=config.text_col, label_col=config.label_col)
            if config.eval_data is not None
            else None
        )
        all_labels = (
            train_frame["label"]
            if eval_frame is None
            else pd.concat([train_frame["label"], eval_frame["label"]])
        )
        if all_labels.empty:
            raise TrainingError(f"{config.data}: no rows")
        id2label = base_label_names(config.base, all_labels) or label_names(all_labels)
        train_frame["label_id"] = encode_labels(train_frame["label"], id2label, source=config.data)
        train_source = str(config.data)
        eval_source = str(config.eval_data)
        if eval_frame is not None:
            eval_frame["label_id"] = encode_labels(eval_frame["label"], id2label, source=config.eval_data)
    elif config.task == "toxicity":
        if config.eval_data is not None:
            raise TrainingError(
                "--eval-data needs --data (toxicity holds its evaluation rows out of BEEP! train)"
            )
        from Korpora.utils import default_korpora_path

        from trainer.toxicity import TOXICITY_ID2LABEL, load_beep, load_kmhas

        korpora_root = config.korpora_root or Path(default_korpora_path)
        beep = load_beep(korpora_root, "train")
        id2label = dict(TOXICITY_ID2LABEL)
        train_frame = pd.DataFrame({"text": beep.texts, "label_id": beep.labels})
        train_source = eval_source = "BEEP! train"
        if config.kmhas_rows > 0:
            kmhas, _ = load_kmhas(korpora_root, three_class=True)
            kmhas_frame = pd.DataFrame({"text": kmhas.texts, "label_id": kmhas.labels})
            kmhas_frame = kmhas_frame.drop_duplicates("text")
            kmhas_frame = _sample(kmhas_frame, config.kmhas_rows, seed=config.seed, source="K-MHaS")
            train_frame = pd.concat([train_frame, kmhas_frame], ignore_index=True)
            train_source = eval_source = f"BEEP! train + {len(kmhas_frame)} K-MHaS comments"
        eval_frame = None  # held out of train below; BEEP! dev stays unseen for scoring
    else:
        if config.eval_data is not None:
            raise TrainingError("--eval-data needs --data (NSMC brings its own test split)")
        corpus = load_nsmc(config.korpora_root)
        id2label = dict(NSMC_ID2LABEL)
        train_frame = pd.DataFrame({"text": list(corpus.train.texts), "label_id": list(corpus.train.labels)})
        eval_frame = pd.DataFrame({"text": list(corpus.test.texts), "label_id": list(corpus.test.labels)})
        train_source, eval_source = "NSMC train", "NSMC test"

    excluded_texts = read_excluded_texts(config.exclude) if config.exclude is not None else set()
    train_frame, excluded = _drop_excluded(train_frame, excluded_texts)
    if eval_frame is not None:
        eval_frame, excluded_eval = _drop_excluded(eval_frame, excluded_texts)
        excluded += excluded_eval
    if excluded:
        logger.info("Dropped %d base row(s) whose text is in %s", excluded, config.exclude)
    train_frame = _keep_long_enough(train_frame, config.min_chars, source=train_source)
    _require_two_classes(train_frame, source=train_source, id2label=id2label)
    if eval_frame is None:
        holdout_size = config.eval_size if config.eval_size is not None else max(1, len(train_frame) // 5)
        if len(train_frame) < 4:
            raise TrainingError(
                f"{train_source}: only {len(train_frame)} usable rows; too few to hold out an evaluation set"
            )
        train_frame, eval_frame = _stratified_holdout(train_frame, holdout_size, seed=config.seed)
        eval_frame = eval_frame.sample(frac=1.0, random_state=config.seed)
    else:
        eval_frame = _keep_long_enough(eval_frame, config.min_chars, source=eval_source)
        eval_frame = _sample(eval_frame, config.eval_size, seed=config.seed, source=eval_source)
    extra_frame = None
    if config.extra is not None:
        if config.extra_weight < 1:
            raise TrainingError(f"--extra-weight must be at least 1, got {config.extra_weight}")
        extra_frame = read_table(config.extra, text_col="text", label_col="label", optional_cols=("weight",))
        extra_frame = extra_frame[extra_frame["text"].str.strip() != ""].copy()
        extra_frame["label_id"] = encode_labels(extra_frame["label"], id2label, source=config.extra)
        extra_frame["rows"] = [
            weight * config.extra_weight for weight in _row_weights(extra_frame, source=config.extra)
        ]
    train_frame, neighbours = _sample_with_neighbours(
        train_frame, extra_frame, config, id2label=id2label, source=train_source
    )
    _require_two_classes(
        train_frame if extra_frame is None else pd.concat([train_frame, extra_frame]),
        source=train_source,
        id2label=id2label,
    )

    train = _labelled(train_frame)
    extra_size = 0
    extra_mix: dict[str, dict[str, int]] = {}
    if extra_frame is not None:
        extra_size = len(extra_frame)
        # Oversampling: repeat each extra example; the Trainer's sampler shuffles them in.
        for text, label_id, repeats in zip(
            extra_frame["text"], extra_frame["label_id"], extra_frame["rows"], strict=True
        ):
            label_id, repeats = int(label_id), int(repeats)
            train.texts.extend([text] * repeats)
            train.labels.extend([label_id] * repeats)
            mix = extra_mix.setdefault(id2label[label_id], {"examples": 0, "rows": 0})
            mix["examples"] += 1
            mix["rows"] += repeats
        logger.info(
            "Added %d extra example(s) as %d rows; by class: %s",
            extra_size,
            sum(mix["rows"] for mix in extra_mix.values()),
            ", ".join(
                f"{name} {mix['examples']} -> {mix['rows']}" for name, mix in sorted(extra_mix.items())
            ),
        )

    evaluation = _labelled(eval_frame)
    return TrainingData(
        train=train,
        eval=evaluation,
        id2label=id2label,
        extra_size=extra_size,
        extra_weight=config.extra_weight,
        sizes={"train_size": len(train), "eval_size": len(evaluation), "neighbour_rows": neighbours},
        extra_class_mix=extra_mix,
        excluded=excluded,
    )


def _sample_with_neighbours(
    frame: pd.DataFrame,
    extra: pd.DataFrame | None,
    config: TrainConfig,
    *,
    id2label: dict[int, str],
    source: str,
) -> tuple[pd.DataFrame, int]:
    """`config.train_size` base rows: the nearest rows to each extra example (`config.extra_neighbours` each, at
    most half the rows; see `trainer.neighbours`), the rest sampled at random (`_sample_rest`). Returns the rows
    and how many are neighbours."""
    wanted = config.extra_neighbours
    if extra is None or extra.empty or wanted <= 0 or config.train_size is None or config.train_size < 2:
        sampled = _sample_rest(
            frame,
            config.train_size,
            config=config,
            prior=frame,
            chosen=_chosen_rows(None, extra),
            id2label=id2label,
            source=source,
        )
        return sampled, 0
    from trainer.neighbours import classifier_judge, nearest_rows

    frame = frame.reset_index(drop=True)
    judge = None if config.is_scratch else classifier_judge(config.base, id2label)
    chosen = nearest_rows(
        frame["text"].tolist(),
        extra["text"].tolist(),
        per_query=wanted,
        limit=min(config.train_size // NEIGHBOUR_SHARE_DIVISOR, len(frame) - 1),
        pool_labels=frame["label_id"].tolist(),
        judge=judge,
    )
    neighbours = frame.iloc[chosen]
    rest = frame.drop(index=chosen)
    mix = neighbours["label_id"].map(id2label).value_counts().sort_index()
    logger.info(
        "Took %d base row(s) nearest to the %d extra example(s) (%s); sampling the other %d",
        len(neighbours),
        len(extra),
        ", ".join(f"{name} {count}" for name, count in mix.items()) or "none",
        config.train_size - len(neighbours),
    )
    sampled = _sample_rest(
        rest,
        config.train_size - len(neighbours),
        config=config,
        prior=frame,
        chosen=_chosen_rows(neighbours, extra),
        id2label=id2label,
        source=source,
    )
    return pd.concat([neighbours, sampled], ignore_index=True), len(neighbours)


def _chosen_rows(neighbours: pd.DataFrame | None, extra: pd.DataFrame | None) -> Counter[int]:
    """Training rows per class id already decided before the random sample: the neighbours, and the extra
    examples as many times as they will be repeated."""
    counts: Counter[int] = Counter()
    if neighbours is not None:
        counts.update(int(label) for label in neighbours["label_id"])
    if extra is not None:
        for label, rows in zip(extra["label_id"], extra["rows"], strict=True):
            counts[int(label)] += int(rows)
    return counts


def _sample_rest(
    frame: pd.DataFrame,
    size: int | None,
    *,
    config: TrainConfig,
    prior: pd.DataFrame,
    chosen: Counter[int],
    id2label: dict[int, str],
    source: str,
) -> pd.DataFrame:
    """`size` random rows of `frame`. With `config.keep_class_prior` (and a size) they are drawn class by class, so
    that they and the rows already `chosen` have `prior`'s class mix as nearly as the rows allow: a class the
    extra examples add many rows to gets fewer random rows."""
    if not config.keep_class_prior or size is None or size <= 0 or not chosen:
        return _sample(frame, size, seed=config.seed, source=source)
    shares = prior["label_id"].value_counts(normalize=True)
    total = size + sum(chosen.values())
    deficits = {label: max(0.0, share * total - chosen[label]) for label, share in shares.items()}
    quotas = _whole_quotas(deficits, size)
    groups = dict(tuple(frame.groupby("label_id")))
    parts = []
    for label, quota in quotas.items():
        group = groups.get(label)
        if group is not None and quota > 0:
            parts.append(group.sample(n=min(quota, len(group)), random_state=config.seed))
    sampled = pd.concat(parts) if parts else frame.iloc[:0]
    if len(sampled) < size:  # a class ran out of rows: the rest at random
        others = frame.drop(index=sampled.index)
        sampled = pd.concat(
            [sampled, others.sample(n=min(size - len(sampled), len(others)), random_state=config.seed)]
        )
    mix = sampled["label_id"].value_counts().sort_index()
    logger.info(
        "Sampled %d base row(s) keeping the class mix with the %d row(s) already chosen: %s",
        len(sampled),
        sum(chosen.values()),
        ", ".join(f"{id2label[label]} {count}" for label, count in mix.items()),
    )
    return sampled.sample(frac=1.0, random_state=config.seed).reset_index(drop=True)


def _whole_quotas(deficits: dict[int, float], size: int) -> dict[int, int]:
    """`size` split in proportion to `deficits`, in whole rows (largest remainders first)."""
    whole_total = sum(deficits.values())
    exact = {label: size * deficit / whole_total for label, deficit in deficits.items()}
    quotas = {label: int(value) for label, value in exact.items()}
    by_remainder = sorted(exact, key=lambda label: exact[label] - quotas[label], reverse=True)
    for label in by_remainder[: size - sum(quotas.values())]:
        quotas[label] += 1
    return quotas


def _row_weights(frame: pd.DataFrame, *, source: Path) -> list[int]:
    """The extra file's optional integer `weight` column (default 1 per row)."""
    if "weight" not in frame.columns:
        return [1] * len(frame)
    weights = [_as_int(value) for value in frame["weight"]]
    bad = [
        value for value, weight in zip(frame["weight"], weights, strict=True) if weight is None or weight < 1
    ]
    if bad:
        raise TrainingError(
            f"{source}: weight must be a whole number >= 1, got {', '.join(map(str, bad[:5]))}"
        )
    return [int(weight) for weight in weights]
