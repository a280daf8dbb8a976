"""Model version directories for the classifier tests, built offline from the shared e5 checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
from classifier_helpers import build_e5_classifier_dir


@pytest.fixture(scope="session")
def e5_classifier_dir(e5_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_e5_classifier_dir(e5_model_dir, tmp_path_factory.mktemp("e5_classifier"))


@pytest.fixture(scope="session")
def e5_classifier(e5_classifier_dir: Path):
    from classifier import Classifier

    return Classifier.load(e5_classifier_dir, device="cpu")


@pytest.fixture(scope="session")
def scratch_classifier(scratch_model_dir: Path):
    """The suite's trained tiny model (tests/conftest.py): its probabilities are well spread across texts."""
    from classifier import Classifier

    return Classifier.load(scratch_model_dir, device="cpu")
