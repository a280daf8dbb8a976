"""The CPU fast path (classifier/fastpath.py): deterministic, faithful to fp32, built once, optional.

All on the suite's trained scratch model and held-out NSMC test reviews; speed is measured in
bench/bench_serving.py, never here.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from classifier import Classifier, fastpath
from classifier.model import FAST_BACKEND

MODERATOR = Path(sys.executable).with_name("moderator")


@pytest.fixture(scope="module")
def held_out(korpora_root: Path) -> list[str]:
    """300 NSMC test reviews (the scratch model trains on ratings_train.txt only)."""
    frame = pd.read_csv(korpora_root / "nsmc" / "ratings_test.txt", sep="\t", quoting=3, nrows=3000)
    frame = frame.dropna(subset=["document"])
    return frame[frame["document"].str.strip() != ""].sample(300, random_state=3)["document"].tolist()


def copy_version(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(fastpath.ARTEFACT_DIR))
    return target


@pytest.fixture(scope="module")
def calibration(korpora_root: Path) -> list[str]:
    """The bot's own calibration sample (NSMC training reviews)."""
    from bot.retraining.dataset import calibration_texts
    from bot.settings import Settings

    return calibration_texts(Settings(_env_file=None, korpora_root=korpora_root), fastpath.CALIBRATION_SIZE)


@pytest.fixture(scope="module")
def built_dir(
    scratch_model_dir: Path, calibration: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A copy of the scratch version with both ONNX artefacts built."""
    directory = copy_version(scratch_model_dir, tmp_path_factory.mktemp("fast") / "version")
    fastpath.build_fast_path(
        directory, fastpath.ONNX_INT8, calibration_texts=calibration
    )  # fp32 export first
    return directory


def test_static_int8_needs_calibration_texts_and_the_bot_reads_them_from_its_data(
    scratch_model_dir: Path, calibration: list[str], tmp_path: Path
) -> None:
    from bot.retraining.dataset import calibration_texts
    from bot.settings import Settings

    assert len(calibration) == fastpath.CALIBRATION_SIZE and all(len(text) > 5 for text in calibration)
    directory = copy_version(scratch_model_dir, tmp_path / "version")
    with pytest.raises(fastpath.FastPathError, match="needs calibration texts"):
        fastpath.build_fast_path(directory, fastpath.ONNX_INT8, calibration_texts=None)
    # No data on disk: no calibration (and never a download); the version is then served in torch fp32.
    assert calibration_texts(Settings(_env_file=None, korpora_root=tmp_path / "nothing"), 256) is None


def max_gap(first, second) -> float:
    return max(
        abs(a.probabilities[name] - b.probabilities[name])
        for a, b in zip(first, second, strict=True)
        for name in a.probabilities
    )


@pytest.mark.parametrize("backend", [fastpath.ONNX_FP32, fastpath.ONNX_INT8])
def test_a_texts_probabilities_do_not_depend_on_its_batchmates(
    built_dir: Path, held_out: list[str], backend: str
) -> None:
    classifier = Classifier.load(built_dir, device="cpu", backend=backend)
    assert classifier.backend == backend
    texts = held_out[:64]
    in_batch = classifier.predict(texts, batch_size=64)
    alone = [classifier.predict([text], batch_size=1)[0] for text in texts]
    assert max_gap(alone, in_batch) <= 1e-4
    # The probe mixes lengths, so the batch really was padded around most texts.
    assert len({len(text) for text in texts}) > 10


def test_the_old_int8_path_was_batch_dependent(scratch_model_dir: Path, held_out: list[str]) -> None:
    """Why the old default went: dynamic int8 scales activations over the whole batch (padding included)."""
    classifier = Classifier.load(scratch_model_dir, device="cpu", backend="torch-int8")
    texts = held_out[:64]
    in_batch = classifier.predict(texts, batch_size=64)
    alone = [classifier.predict([text], batch_size=1)[0] for text in texts]
    assert max_gap(alone, in_batch) > 1e-4


@pytest.mark.parametrize(("backend", "largest_gap"), [(fastpath.ONNX_FP32, 1e-4), (fastpath.ONNX_INT8, 0.2)])
def test_fast_backends_agree_with_torch_fp32(
    built_dir: Path, scratch_classifier: Classifier, held_out: list[str], backend: str, largest_gap: float
) -> None:
    fast = Classifier.load(built_dir, device="cpu", backend=backend)
    reference = scratch_classifier.predict(held_out)
    verdicts = fast.predict(held_out)
    agreement = sum(a.label == b.label for a, b in zip(reference, verdicts, strict=True)) / len(held_out)
    assert agreement >= 0.95
    assert max_gap(reference, verdicts) < largest_gap
    if backend == fastpath.ONNX_FP32:
        assert agreement == 1.0  # full precision: the same verdicts, not merely close ones


@pytest.mark.parametrize("backend", ["torch", fastpath.ONNX_FP32, fastpath.ONNX_INT8])
def test_every_runtime_serves_the_versions_confidence_map(
    built_dir: Path, held_out: list[str], backend: str
) -> None:
    from classifier.confidence_map import ConfidenceMap

    # The int8 path serves its own map, fitted when its artefact was built; the others the trainer's.
    if backend == fastpath.ONNX_INT8:
        confidence_map = fastpath.read_int8_confidence_map(built_dir)
    else:
        confidence_map = ConfidenceMap.read(built_dir)
    assert confidence_map is not None
    served = Classifier.load(built_dir, device="cpu", backend=backend).predict(held_out)
    unmapped = Classifier.load(built_dir, device="cpu", backend=backend, apply_confidence_map=False).predict(
        held_out
    )

    def rows(verdicts) -> np.ndarray:
        return np.array([list(verdict.probabilities.values()) for verdict in verdicts])

    assert np.abs(rows(served) - confidence_map.apply(rows(unmapped))).max() < 1e-12
    assert [v.label for v in served] == [v.label for v in unmapped]
    assert np.abs(rows(served) - rows(unmapped)).max() > 0.01  # the map moved them
    assert rows(served).max() < 1.0  # no held-out set shows a certainty


def test_the_int8_path_gets_its_own_map_fitted_on_the_versions_held_out_verdicts(
    built_dir: Path, scratch_model_dir: Path, calibration: list[str], tmp_path: Path
) -> None:
    from classifier.confidence_map import CALIBRATION_SET_FILE, ConfidenceMap, read_calibration_set

    held_out_texts, held_out_labels = read_calibration_set(scratch_model_dir)  # the trainer kept them
    assert len(held_out_texts) == len(held_out_labels) > 0
    own = fastpath.read_int8_confidence_map(built_dir)
    assert own is not None and own.fitted_on == len(held_out_texts)
    assert own != ConfidenceMap.read(built_dir)  # fitted on the int8 path's own probabilities
    entry = json.loads((built_dir / fastpath.ARTEFACT_DIR / fastpath.MANIFEST_FILE).read_text())["files"]
    fit = entry[fastpath.ONNX_INT8]["confidence_map"]
    assert fit["ece_after_map_in_sample"] <= fit["ece_before_map_in_sample"]

    # A version trained before the trainer kept them: its int8 path serves the version's map, as before.
    older = copy_version(scratch_model_dir, tmp_path / "older")
    (older / CALIBRATION_SET_FILE).unlink()
    fastpath.build_fast_path(older, fastpath.ONNX_INT8, calibration_texts=calibration)
    assert fastpath.read_int8_confidence_map(older) is None
    assert Classifier.load(
        older, device="cpu", backend=fastpath.ONNX_INT8
    ).confidence_map == ConfidenceMap.read(older)


def test_quantize_true_serves_the_fast_backend_without_torch_weights(built_dir: Path) -> None:
    classifier = Classifier.load(built_dir, device="cpu", quantize=True)
    assert classifier.backend == FAST_BACKEND
    if FAST_BACKEND.startswith("onnx"):
        assert classifier.model is None  # ONNX Runtime serves; the torch weights are never loaded
    classifier.self_check()


WITHOUT_TORCH = """
import json, sys
sys.modules["torch"] = None  # `import torch` raises ImportError, and find_spec finds nothing: as if not installed
from classifier import Classifier
from classifier.errors import ModelDirError
classifier = Classifier.load(sys.argv[1], quantize=True)
verdicts = classifier.predict(json.loads(sys.argv[3]))
try:
    Classifier.load(sys.argv[2], quantize=True)
    refused = ""
except ModelDirError as error:
    refused = str(error)
print(json.dumps({"backend": classifier.backend, "device": str(classifier.device), "refused": refused,
                  "probabilities": [v.probabilities for v in verdicts], "torch": "torch" in sys.modules
                  and sys.modules["torch"] is not None}))
"""


def test_the_fast_path_serves_in_a_process_without_torch(
    built_dir: Path, scratch_model_dir: Path, held_out: list[str]
) -> None:
    """A bot host whose versions are built elsewhere (a training worker) needs no torch: the same probabilities,
    and a clear refusal for a version without its artefact."""
    texts = held_out[:20]
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_TORCH, str(built_dir), str(scratch_model_dir), json.dumps(texts)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    served = json.loads(result.stdout.strip().splitlines()[-1])
    assert served["backend"] == FAST_BACKEND and served["device"] == "cpu" and served["torch"] is False
    expected = Classifier.load(built_dir, device="cpu", quantize=True).predict(texts)
    for got, want in zip(served["probabilities"], expected, strict=True):
        assert got.keys() == want.probabilities.keys()
        assert max(abs(got[name] - want.probabilities[name]) for name in got) < 1e-6
    assert "torch is not installed" in served["refused"] and "fastpath" in served["refused"]


def test_prepare_builds_the_artefact_once_and_loading_reuses_it(
    scratch_model_dir: Path,
    korpora_root: Path,
    calibration: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bot.serving import load_serving_classifier, prepare_model_version
    from bot.settings import Settings

    settings = Settings(_env_file=None, fast_inference=True, korpora_root=korpora_root)
    directory = copy_version(scratch_model_dir, tmp_path / "version")
    assert not fastpath.fast_path_status(directory, FAST_BACKEND)[0]

    prepared = prepare_model_version(directory, settings, calibration_texts=calibration)
    assert prepared.backend == FAST_BACKEND
    artefact = fastpath.artefact_file(directory, FAST_BACKEND)
    assert fastpath.fast_path_status(directory, FAST_BACKEND) == (True, "")
    built_at = artefact.stat().st_mtime_ns
    manifest = json.loads((directory / fastpath.ARTEFACT_DIR / fastpath.MANIFEST_FILE).read_text())
    assert manifest["weights_sha256"] == fastpath.weights_fingerprint(directory)

    def no_rebuild(*args, **kwargs):
        raise AssertionError("the artefact was rebuilt")

    monkeypatch.setattr(fastpath, "_export", no_rebuild)
    monkeypatch.setattr(fastpath, "quantize_int8_static", no_rebuild)
    served = load_serving_classifier(directory, settings)  # start-up: reads, never builds
    again = prepare_model_version(
        directory, settings, calibration_texts=calibration
    )  # a second import or promotion: reuses it
    assert served.backend == again.backend == FAST_BACKEND
    assert artefact.stat().st_mtime_ns == built_at
    texts = ["정말 재밌게 봤어요", "시간 낭비였다"]
    assert max_gap(served.predict(texts), prepared.predict(texts)) == 0.0


def test_a_version_without_the_artefact_still_loads_in_torch_fp32(
    scratch_model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = copy_version(scratch_model_dir, tmp_path / "version")
    with caplog.at_level(logging.WARNING, logger="classifier.model"):
        classifier = Classifier.load(directory, device="cpu", quantize=True)
    assert classifier.backend == "torch"
    assert classifier.model is not None
    assert any("fast path" in record.getMessage() for record in caplog.records)
    classifier.self_check()
    assert not (directory / fastpath.ARTEFACT_DIR).exists()  # loading never builds it


def test_a_stale_artefact_is_not_served(
    built_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = copy_version(built_dir, tmp_path / "version")
    shutil.copytree(built_dir / fastpath.ARTEFACT_DIR, directory / fastpath.ARTEFACT_DIR)
    assert Classifier.load(directory, device="cpu", backend=fastpath.ONNX_FP32).backend == fastpath.ONNX_FP32
    config = json.loads((directory / "config.json").read_text())
    config["stale_marker"] = True  # the weights the artefact came from are no longer these
    (directory / "config.json").write_text(json.dumps(config))
    with caplog.at_level(logging.WARNING, logger="classifier.model"):
        classifier = Classifier.load(directory, device="cpu", backend=fastpath.ONNX_FP32)
    assert classifier.backend == "torch"
    assert any("stale" in record.getMessage() for record in caplog.records)


def test_a_half_written_artefact_is_not_served(built_dir: Path, tmp_path: Path) -> None:
    directory = copy_version(built_dir, tmp_path / "version")
    shutil.copytree(built_dir / fastpath.ARTEFACT_DIR, directory / fastpath.ARTEFACT_DIR)
    onnx_file = fastpath.artefact_file(directory, fastpath.ONNX_FP32)
    onnx_file.write_bytes(onnx_file.read_bytes()[: onnx_file.stat().st_size // 2])
    usable, reason = fastpath.fast_path_status(directory, fastpath.ONNX_FP32)
    assert not usable and "partly written" in reason
    assert Classifier.load(directory, device="cpu", backend=fastpath.ONNX_FP32).backend == "torch"


def test_cli_quantize_and_the_bot_setting_serve_identically(
    built_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.serving import load_serving_classifier
    from bot.settings import Settings

    texts = ["배우 연기가 훌륭했다", "별로였음", "그냥 그랬다 중간에 졸았음"]
    result = subprocess.run(
        [str(MODERATOR), "predict", "--model", str(built_dir), "--quantize", "--json", *texts],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "unavailable" not in result.stderr  # it served the fast path, not the fallback
    cli = [json.loads(line)["probabilities"] for line in result.stdout.splitlines()]

    monkeypatch.setenv("QUANTIZE", "true")  # the old name still selects it
    monkeypatch.delenv("FAST_INFERENCE", raising=False)
    bot = load_serving_classifier(built_dir, Settings(_env_file=None))
    assert bot.backend == FAST_BACKEND
    for from_cli, verdict in zip(cli, bot.predict(texts), strict=True):
        for name, probability in verdict.probabilities.items():
            assert from_cli[name] == pytest.approx(probability, abs=1e-6)


def test_the_switch_has_its_new_and_old_names(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.settings import Settings

    monkeypatch.delenv("QUANTIZE", raising=False)
    monkeypatch.delenv("FAST_INFERENCE", raising=False)
    assert Settings(_env_file=None).fast_inference is True  # the default serves the fast path
    assert Settings(_env_file=None, quantize=False).fast_inference is False
    assert Settings(_env_file=None, fast_inference=False).quantize is False
    monkeypatch.setenv("QUANTIZE", "false")
    assert Settings(_env_file=None).fast_inference is False
    monkeypatch.delenv("QUANTIZE")
    monkeypatch.setenv("FAST_INFERENCE", "false")
    assert Settings(_env_file=None).quantize is False
