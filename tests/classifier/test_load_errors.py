"""A missing or damaged model version directory gives a ModelDirError naming the directory and the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from classifier import Classifier, ModelDirError


def copy_of(model_dir: Path, target: Path, *, without: tuple[str, ...] = ()) -> Path:
    """The model directory rebuilt from symlinks (cheap), leaving out some files."""
    target.mkdir()
    for source in model_dir.iterdir():
        if source.name not in without:
            (target / source.name).symlink_to(source)
    return target


def replace_file(directory: Path, name: str, content: bytes) -> None:
    (directory / name).unlink(missing_ok=True)
    (directory / name).write_bytes(content)


def assert_names(error: ModelDirError, directory: Path, *fragments: str) -> None:
    message = str(error)
    assert str(directory) in message
    for fragment in fragments:
        assert fragment in message, message


def test_missing_directory(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-version"
    with pytest.raises(ModelDirError) as raised:
        Classifier.load(missing)
    assert_names(raised.value, missing, "does not exist")
    assert raised.value.directory == missing


def test_a_file_is_not_a_model_directory(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "model.txt"
    not_a_dir.write_text("hello")
    with pytest.raises(ModelDirError) as raised:
        Classifier.load(not_a_dir)
    assert_names(raised.value, not_a_dir, "not a directory")


def test_missing_config(e5_classifier_dir: Path, tmp_path: Path) -> None:
    broken = copy_of(e5_classifier_dir, tmp_path / "v", without=("config.json",))
    with pytest.raises(ModelDirError) as raised:
        Classifier.load(broken)
    assert_names(raised.value, broken, "config.json", "missing")


def test_corrupt_config(e5_classifier_dir: Path, tmp_path: Path) -> None:
    broken = copy_of(e5_classifier_dir, tmp_path / "v")
    replace_file(broken, "config.json", b'{"model_type": "bert", ')
    with pytest.raises(ModelDirError) as raised:
        Classifier.load(broken)
    assert_names(raised.value, broken, "config.json", "unreadable")


def test_missing_weights(e5_classifier_dir: Path, tmp_path: Path) -> None:
    broken = copy_of(e5_classifier_dir, tmp_path / "v", without=("model.safetensors",))
    with pytest.raises(ModelDirError) as raised:
        Classifier.load(broken)
    assert_names(raised.value, broken, "no weights file", "model.safetensors")


def test_garbage_weights(e5_classifier_dir: Path, tmp_path: Path) -> None:
    broken = copy_of(e5_classifier_dir, tmp_path / "v")
    replace_file(broken, "model.safetensors", b"this is not a safetensors file" * 100)
    with pytest.raises(ModelDirError) as raised:
        Classifier.load(broken)
    assert_names(raised.value, broken, "model.safetensors", "corrupt")


def test_truncated_weights(e5_classifier_dir: Path, tmp_path: Path) -> None:
    broken = copy_of(e5_classifier_dir, tmp_path / "v")
    weights = (e5_classifier_dir / "model.safetensors").read_bytes()
    replace_file(broken, "model.safetensors", weights[: len(weights) // 2])  # an interrupted copy
    with pytest.raises(ModelDirError) as raised:
        Classifier.load(broken)
    assert_names(raised.value, broken, "model.safetensors", "corrupt")


def test_missing_tokenizer(e5_classifier_dir: Path, tmp_path: Path) -> None:
    tokenizer_files = tuple(path.name for path in e5_classifier_dir.glob("tokenizer*"))
    assert "tokenizer.json" in tokenizer_files
    broken = copy_of(e5_classifier_dir, tmp_path / "v", without=tokenizer_files)
    with pytest.raises(ModelDirError) as raised:
        Classifier.load(broken)
    assert_names(raised.value, broken, "no tokenizer files", "tokenizer.json")


def test_corrupt_tokenizer(e5_classifier_dir: Path, tmp_path: Path) -> None:
    broken = copy_of(e5_classifier_dir, tmp_path / "v")
    replace_file(broken, "tokenizer.json", b'{"version": "1.0", "model": ')
    with pytest.raises(ModelDirError) as raised:
        Classifier.load(broken)
    assert_names(raised.value, broken, "tokenizer")


def test_metrics_are_read_and_a_corrupt_metrics_file_is_named(
    e5_classifier_dir: Path, tmp_path: Path
) -> None:
    version = copy_of(e5_classifier_dir, tmp_path / "v")
    (version / "metrics.json").write_text(json.dumps({"accuracy": 0.87, "labels": ["부정", "긍정"]}), "utf-8")
    assert Classifier.load(version, device="cpu").metrics == {"accuracy": 0.87, "labels": ["부정", "긍정"]}

    (version / "metrics.json").write_text("{not json", "utf-8")
    with pytest.raises(ModelDirError) as raised:
        Classifier.load(version, device="cpu")
    assert_names(raised.value, version, "metrics.json")


def test_a_broken_confidence_map_is_named(e5_classifier_dir: Path, tmp_path: Path) -> None:
    from classifier.confidence_map import CONFIDENCE_MAP_FILE

    version = copy_of(e5_classifier_dir, tmp_path / "v")
    (version / CONFIDENCE_MAP_FILE).write_text('{"confidence": [0.6], "calibrated": [1.5]}', "utf-8")
    with pytest.raises(ModelDirError) as raised:
        Classifier.load(version, device="cpu")
    assert_names(raised.value, version, "confidence map")
