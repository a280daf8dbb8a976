"""Copies of a model version with its classification head rewritten, for tests that need a second, known model."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from classifier.confidence_map import CONFIDENCE_MAP_FILE


def copy_with_head(source: Path, target: Path, rewrite: Callable[[dict], None]) -> Path:
    """Copy the version at `source` to `target`, letting `rewrite` change its weights (a dict of tensors) in place.
    The copy has no confidence map: the source's was fitted to the old head, not to this one."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(source, target)
    weights = load_file(target / "model.safetensors")
    rewrite(weights)
    save_file(weights, target / "model.safetensors", metadata={"format": "pt"})
    (target / CONFIDENCE_MAP_FILE).unlink(missing_ok=True)
    return target
