"""Pure inference: load a model version directory and classify texts (no Telegram, no database).

The torch-backed names are imported lazily so that `moderator --help` stays instant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from classifier.errors import EmptyTextError, ModelDirError

if TYPE_CHECKING:
    from classifier.evaluation import evaluate
    from classifier.model import Classifier, Verdict

__all__ = ["Classifier", "EmptyTextError", "ModelDirError", "Verdict", "evaluate"]

_LAZY = {"Classifier": "classifier.model", "Verdict": "classifier.model", "evaluate": "classifier.evaluation"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'classifier' has no attribute {name!r}")
