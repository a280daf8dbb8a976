"""The promotion gate's scoring: candidate, active model and reference answer the same fixed evaluation set and
the held-out human labels the way the bot serves them; `bot.retraining.gate.decide` then decides.

A version's answers on an evaluation set are computed once and kept in its directory (`{PREDICTIONS_DIR}/`), so
each version is scored on a set once and later gates compare against it (the drift guard's reference) for free.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.model_store import local_version_path
from bot.retraining.correction_pattern import correction_pattern
from bot.retraining.dataset import EvalSet, HumanExample, HumanLabelSplit, accepted_labels
from bot.retraining.gate import GateDecision, Scores, decide
from bot.retraining.version_files import read_id2label
from bot.serving import serving_tag
from bot.settings import Settings

if TYPE_CHECKING:
    from classifier import Classifier

logger = logging.getLogger(__name__)

PREDICTIONS_DIR = "gate-predictions"  # in a version directory: its answers on each evaluation set


def judge(
    candidate: Classifier,
    active: Any,
    served: list[Any],
    eval_set: EvalSet,
    split: HumanLabelSplit,
    id2label: dict[int, str] | None,
    *,
    settings: Settings,
    load_active_classifier: Callable[[Any], Classifier],
) -> GateDecision:
    """Score the candidate, the active model (`load_active_classifier(active)`, loaded only when needed) and the
    reference the same way on the evaluation set and the held-out human labels, find what the run's corrections
    share on the evaluation set, then decide. Blocking."""
    tag = serving_tag(settings)
    candidate_answers = _base_predictions(candidate.path, eval_set, tag, lambda: candidate)
    candidate_base = _correct(candidate_answers.labels, eval_set.labels)
    if active is None:
        return decide(
            candidate=Scores(
                candidate_base, base_confidence=_calibration_confidences(candidate_answers, eval_set)
            ),
            active=None,
            reference=None,
            active_version=None,
            reference_version=None,
            tolerance_points=settings.promotion_tolerance,
            confidence=settings.gate_confidence,
            calibration_tolerance_points=settings.calibration_tolerance,
            num_labels=len(candidate.id2label),
        )
    active_classifier: list[Classifier] = []

    def load_active() -> Classifier:
        if not active_classifier:
            active_classifier.append(load_active_classifier(active))
        return active_classifier[0]

    active_path = local_version_path(active.path, settings)  # its answers are cached beside its files
    active_answers = _base_predictions(active_path, eval_set, tag, load_active)
    active_base = _correct(active_answers.labels, eval_set.labels)
    reference_id, reference_base = active.id, active_base
    for version in served:  # the drift guard's reference: the best version ever promoted, on this set
        if version.id == active.id or version.pruned_at is not None:
            continue
        cached = _cached_base_predictions(version.path, eval_set, tag)
        if cached is not None:
            correct = _correct(cached.labels, eval_set.labels)
            if sum(correct) > sum(reference_base):
                reference_id, reference_base = version.id, correct
    human_candidate: dict[str, list[bool]] = {}
    human_active: dict[str, list[bool]] = {}
    names = id2label or candidate.id2label
    by_class: dict[str, list[HumanExample]] = {}
    for example in split.holdout:
        by_class.setdefault(names.get(example.label, str(example.label)), []).append(example)
    for name, examples in by_class.items():
        example_texts = [example.text for example in examples]
        human_candidate[name] = [v.label_name == name for v in candidate.predict(example_texts)]
        human_active[name] = [v.label_name == name for v in load_active().predict(example_texts)]
    active_labels = read_id2label(active_path) or candidate.id2label
    labels_match = sorted(active_labels.items()) == sorted(candidate.id2label.items())
    return decide(
        candidate=Scores(
            candidate_base,
            human_candidate,
            _calibration_confidences(candidate_answers, eval_set),
            base_classes=eval_set.labels,
        ),
        active=Scores(
            active_base,
            human_active,
            _calibration_confidences(active_answers, eval_set),
            base_classes=eval_set.labels,
        ),
        reference=Scores(reference_base) if reference_id != active.id else None,
        active_version=active.id,
        reference_version=reference_id,
        tolerance_points=settings.promotion_tolerance,
        confidence=settings.gate_confidence,
        calibration_tolerance_points=settings.calibration_tolerance,
        class_tolerance_points=settings.promotion_class_tolerance,
        labels_match=labels_match,
        num_labels=len(candidate.id2label),
        pattern=correction_pattern(_corrections(split), eval_set.texts),
    )


def _corrections(split: HumanLabelSplit) -> list[str]:
    """The texts whose label differs from the verdict they were given: the mistakes the run was asked to fix."""
    return [example.text for example in (*split.train, *split.holdout) if example.is_correction]


def _predictions_file(version_path: str | Path, eval_set: EvalSet, tag: str) -> Path:
    return Path(version_path) / PREDICTIONS_DIR / f"{eval_set.digest[:16]}-{tag}.json"


@dataclass(frozen=True)
class BaseAnswers:
    """A version's verdicts on the evaluation set: label names and their confidences, in the set's order."""

    labels: list[str]
    confidences: list[float] | None  # None: stored before confidences were kept


def _cached_base_predictions(version_path: str | Path, eval_set: EvalSet, tag: str) -> BaseAnswers | None:
    """A version's stored answers on the evaluation set, when it was scored on it before."""
    try:
        stored = json.loads(_predictions_file(version_path, eval_set, tag).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(stored, dict):
        return None
    predictions, confidences = stored.get("predictions"), stored.get("confidences")
    if not isinstance(predictions, list) or len(predictions) != eval_set.size:
        return None
    if not isinstance(confidences, list) or len(confidences) != eval_set.size:
        confidences = None
    try:
        return BaseAnswers(
            [str(label) for label in predictions],
            None if confidences is None else [float(value) for value in confidences],
        )
    except (TypeError, ValueError):
        return None


def _base_predictions(
    version_path: str | Path, eval_set: EvalSet, tag: str, classifier: Callable[[], Classifier]
) -> BaseAnswers:
    """A version's answers on the evaluation set, computed once and kept in its directory: each version is
    scored on a given set once, and later gates compare against it (the drift guard's reference) for free."""
    cached = _cached_base_predictions(version_path, eval_set, tag)
    # A file from before confidences were kept serves the drift guard, but the calibration check needs them:
    # the version is scored again, once.
    if cached is not None and cached.confidences is not None:
        return cached
    verdicts = classifier().predict(eval_set.texts)
    answers = BaseAnswers(
        [verdict.label_name for verdict in verdicts], [verdict.confidence for verdict in verdicts]
    )
    path = _predictions_file(version_path, eval_set, tag)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_text(
            json.dumps(
                {
                    "eval_set": eval_set.identity,
                    "serving": tag,
                    "predictions": answers.labels,
                    "confidences": answers.confidences,
                },
                ensure_ascii=False,
            ),
            encoding="utf-8",
        )
        partial.replace(path)
    except OSError as error:  # a read-only model folder: the gate still works, only without the cache
        logger.warning("could not store gate predictions in %s: %s", path.parent, error)
    return answers


def _correct(predictions: list[str], labels: list[str]) -> list[bool]:
    return [predicted in accepted_labels(label) for predicted, label in zip(predictions, labels, strict=True)]


def _calibration_confidences(answers: BaseAnswers, eval_set: EvalSet) -> list[float | None] | None:
    """The confidences the calibration check reads: None for an example whose label says only toxic or not
    (`EvalSet.binary`), where the top class's probability is not the probability of being right."""
    if answers.confidences is None:
        return None
    if not eval_set.binary:
        return list(answers.confidences)
    return [
        None if binary else confidence
        for confidence, binary in zip(answers.confidences, eval_set.binary, strict=True)
    ]


def holdout_counts(holdout: list[HumanExample], id2label: dict[int, str] | None) -> dict[str, int]:
    counts: dict[str, int] = {}
    for example in holdout:
        name = (id2label or {}).get(example.label, str(example.label))
        counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items()))
