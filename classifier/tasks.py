"""What a model judges: its task. Two tasks exist, each with its own labels; label names are unique across tasks,
so a label name alone says which task it belongs to (`/feedback 혐오` can only mean toxicity)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

SENTIMENT: Final = "sentiment"
TOXICITY: Final = "toxicity"
TASKS: Final = (SENTIMENT, TOXICITY)

# id -> name, as the trainer writes them into a model's config (NSMC's and BEEP!'s label order).
TASK_ID2LABEL: Final[dict[str, dict[int, str]]] = {
    SENTIMENT: {0: "부정", 1: "긍정"},
    TOXICITY: {0: "정상", 1: "공격적", 2: "혐오"},
}
# Each task's name as people read it (replies, run reports): what its labels judge.
TASK_TITLES: Final[dict[str, str]] = {SENTIMENT: "감성(긍정/부정)", TOXICITY: "표현(정상/공격적/혐오)"}
# The toxicity verdict that needs no attention; the others are toxic (binary "toxic" = 공격적 or 혐오).
CLEAN_LABEL: Final = "정상"


def task_of_label(label_name: str) -> str | None:
    """The task whose label this is, or None for a name no task has."""
    for task, id2label in TASK_ID2LABEL.items():
        if label_name in id2label.values():
            return task
    return None


def task_of_model(id2label: Mapping[int, str], metrics: Mapping[str, Any] | None = None) -> str:
    """The task a model judges: what its metrics.json records (the trainer writes `data.task`), else what its
    labels say (a model with toxicity's labels is a toxicity model); anything else counts as sentiment, the
    tutorial's task (e.g. a model trained on a CSV with labels of its own)."""
    recorded = ((metrics or {}).get("data") or {}).get("task")
    if recorded in TASKS:
        return recorded
    if set(id2label.values()) == set(TASK_ID2LABEL[TOXICITY].values()):
        return TOXICITY
    return SENTIMENT


def parse_task(text: str) -> str | None:
    """A task named by its id ("toxicity"), its title's first word ("표현") or one of its labels ("혐오"); None
    when the text names no task."""
    word = text.strip().lower()
    for task, title in TASK_TITLES.items():
        if word in (task, title.lower(), title.split("(")[0]):
            return task
    return task_of_label(word) if word else None
