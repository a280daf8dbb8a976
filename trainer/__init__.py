"""Pure training: base checkpoint + data + extra examples -> model version directory (docs/architecture.md).

`train` is imported lazily so that `import trainer` (and `moderator --help`) does not load torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trainer.config import TrainConfig, TrainingError

if TYPE_CHECKING:
    from trainer.training import train

__all__ = ["TrainConfig", "TrainingError", "train"]


def __getattr__(name: str):
    if name == "train":
        from trainer.training import train

        return train
    raise AttributeError(f"module 'trainer' has no attribute {name!r}")
