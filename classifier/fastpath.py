"""The CPU fast path: ONNX exports of a model version, run by ONNX Runtime, stored in the version directory.

Two artefacts, in `<version>/onnx/`: `model.onnx`, the torch.onnx export in full precision (same verdicts as
torch, probabilities within ~1e-5), and `model.int8.onnx`, its static int8 quantization (weights per channel,
activation ranges fixed by calibration on training reviews the caller passes, e.g. 256 NSMC training reviews; the
feed-forward output projections stay fp32).
`Classifier.load(..., quantize=True)` serves FAST_BACKEND, chosen by `bench/bench_serving.py` under the rule of
issue 9 (docs/benchmarks.md): the fastest path whose probabilities do not depend on a text's batchmates (within
1e-4) and that costs at most 0.3 accuracy points on 10,000 NSMC test reviews. Static int8 met both (it computes
each text the same way alone or in any batch) and was the fastest such path; dynamic int8 (torch's or ONNX
Runtime's) scales activations over the whole batch, so a text's probability moved with its neighbours.

The artefacts are built once per version (`build_fast_path`, called by `bot.serving.prepare_model_version` when a
version is imported or promoted) and only read at start-up (`fast_path_status`, `open_session`). `manifest.json`
records the fingerprint of the weights they were built from, so a stale or half-written artefact is never served.

    python -m classifier.fastpath --calibration reviews.csv DIR [DIR ...]   # build (or confirm) version artefacts
    python -m classifier.fastpath --kind onnx DIR                           # the fp32 export only (no calibration)
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from classifier.confidence_map import ConfidenceMap

logger = logging.getLogger(__name__)

ARTEFACT_DIR = "onnx"
MANIFEST_FILE = "manifest.json"
FORMAT = 2
# The kinds of artefact, by the Classifier backend that serves them.
ONNX_FP32 = "onnx"  # the torch.onnx export, run in full precision
ONNX_INT8 = "onnx-int8"  # static int8 (QDQ) of that export, calibrated on texts the caller gives
CALIBRATION_SIZE = 256  # texts enough for stable activation ranges (bench_serving measured with 256)
FILES = {ONNX_FP32: "model.onnx", ONNX_INT8: "model.int8.onnx"}
# What `Classifier.load(..., quantize=True)` serves, chosen by bench/bench_serving.py (docs/benchmarks.md).
FAST_BACKEND = ONNX_INT8
INPUT_NAMES = ("input_ids", "attention_mask")
# The export is checked against torch on padded probe texts before it is stored.
EXPORT_TOLERANCE = 1e-3
_PROBE_TEXTS = (
    "정말 재밌게 봤어요",
    "시간 낭비였다. 배우들 연기도 별로고 스토리도 뻔하고 결말은 최악",
    "so-so",
)
_FINGERPRINT_FILES = ("config.json", "model.safetensors", "pytorch_model.bin")


class FastPathError(RuntimeError):
    """The fast-path artefact could not be built."""


def artefact_dir(model_dir: Path) -> Path:
    return Path(model_dir) / ARTEFACT_DIR


def artefact_file(model_dir: Path, kind: str = ONNX_FP32) -> Path:
    return artefact_dir(model_dir) / FILES[kind]


def weights_fingerprint(model_dir: Path) -> str:
    """sha256 over the config and weights files the artefact was exported from."""
    digest = hashlib.sha256()
    for name in _FINGERPRINT_FILES:
        path = Path(model_dir) / name
        if not path.is_file():
            continue
        digest.update(name.encode())
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def _read_manifest(model_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((artefact_dir(model_dir) / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def fast_path_status(
    model_dir: Path, kind: str = ONNX_FP32, *, fingerprint: str | None = None
) -> tuple[bool, str]:
    """(usable, why not): the artefact exists, is complete, and was exported from these very weights."""
    manifest = _read_manifest(model_dir)
    if manifest is None:
        return False, f"no readable {ARTEFACT_DIR}/{MANIFEST_FILE}"
    if manifest.get("format") != FORMAT:
        return False, f"artefact format {manifest.get('format')}, not {FORMAT}"
    entry = manifest.get("files", {}).get(kind)
    path = artefact_file(model_dir, kind)
    if entry is None or not path.is_file():
        return False, f"no {kind} artefact ({ARTEFACT_DIR}/{FILES[kind]})"
    if entry.get("bytes") != path.stat().st_size:
        return False, f"{ARTEFACT_DIR}/{FILES[kind]} does not match its manifest (partly written?)"
    if manifest.get("weights_sha256") != (fingerprint or weights_fingerprint(model_dir)):
        return False, "artefact was exported from other weights (stale)"
    return True, ""


def build_fast_path(
    model_dir: Path,
    kind: str = FAST_BACKEND,
    *,
    calibration_texts: Sequence[str] | None = None,
    force: bool = False,
) -> Path:
    """Build the `kind` artefact of `model_dir` under `<model_dir>/onnx/` unless an up-to-date one is there.

    Returns its file. ONNX_INT8 needs the fp32 export, which is built (or reused) first, and `calibration_texts`
    (training-like reviews: their activation ranges are fixed in the int8 model). Files are written under
    temporary names and renamed into place, the manifest last, so a reader never takes a half-written artefact
    for a complete one. Raises FastPathError.
    """
    model_dir = Path(model_dir)
    if kind not in FILES:
        raise ValueError(f"unknown artefact kind {kind!r}; choose from {', '.join(FILES)}")
    fingerprint = weights_fingerprint(model_dir)
    needed = [ONNX_FP32] if kind == ONNX_FP32 else [ONNX_FP32, kind]
    todo = [
        item for item in needed if force or not fast_path_status(model_dir, item, fingerprint=fingerprint)[0]
    ]
    if not todo:
        logger.info("fast-path artefact (%s) of %s is up to date; reusing it", kind, model_dir)
        return artefact_file(model_dir, kind)
    if importlib.util.find_spec("torch") is None:
        raise FastPathError(
            f"building the fast path of {model_dir} exports it with torch, which is not installed here; build it "
            "where torch is (a training worker builds the versions it promotes), or install the train extra"
        )
    if ONNX_INT8 in todo and not calibration_texts:
        raise FastPathError(
            f"static int8 of {model_dir} needs calibration texts (training-like reviews); none were given"
        )
    start = time.perf_counter()
    target_dir = artefact_dir(model_dir)
    target_dir.mkdir(exist_ok=True)
    manifest = _read_manifest(model_dir) or {}
    if manifest.get("format") != FORMAT or manifest.get("weights_sha256") != fingerprint:
        manifest = {}
    entries: dict[str, Any] = dict(manifest.get("files", {}))
    with tempfile.TemporaryDirectory(dir=target_dir, prefix=".build-") as staging:
        staged: dict[str, Path] = {}
        try:
            for item in todo:
                output = Path(staging) / FILES[item]
                if item == ONNX_FP32:
                    entry = {"max_abs_logit_diff_vs_torch": _export(model_dir, output)}
                else:
                    source = staged.get(ONNX_FP32, artefact_file(model_dir, ONNX_FP32))
                    entry = quantize_int8_static(model_dir, source, output, texts=calibration_texts)
                    int8_map = fit_int8_confidence_map(model_dir, output)
                    if int8_map is not None:
                        entry["confidence_map"] = int8_map
                entry["bytes"] = output.stat().st_size
                entries[item] = entry
                staged[item] = output
        except FastPathError:
            raise
        except Exception as error:  # the exporters and quantizers raise many kinds of errors
            raise FastPathError(
                f"building the {kind} artefact of {model_dir} failed ({type(error).__name__}: {error})"
            ) from error
        manifest = {
            "format": FORMAT,
            "weights_sha256": fingerprint,
            "files": entries,
            "versions": _versions(),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        staged_manifest = Path(staging) / MANIFEST_FILE
        staged_manifest.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        (target_dir / MANIFEST_FILE).unlink(missing_ok=True)  # an old manifest must not vouch for a new file
        for item, path in staged.items():
            os.replace(path, artefact_file(model_dir, item))
        os.replace(staged_manifest, target_dir / MANIFEST_FILE)
    logger.info(
        "built the fast-path artefact (%s) of %s in %.1f s",
        ", ".join(todo),
        model_dir,
        time.perf_counter() - start,
    )
    return artefact_file(model_dir, kind)


def fit_int8_confidence_map(model_dir: Path, int8_file: Path) -> dict[str, Any] | None:
    """The int8 path's own confidence map, fitted on the held-out verdicts the version's map was fitted on
    (classifier/confidence_map.py); None when the version kept none (trained before they were kept)."""
    from classifier.calibration import expected_calibration_error
    from classifier.confidence_map import fit_confidence_map, read_calibration_set
    from classifier.model import Classifier

    held_out = read_calibration_set(model_dir)
    if held_out is None:
        return None
    texts, labels = held_out
    classifier = Classifier.load(
        model_dir, backend=ONNX_INT8, onnx_file=int8_file, apply_confidence_map=False, device="cpu"
    )
    names = [classifier.id2label[label] for label in sorted(classifier.id2label)]
    probabilities = np.array([[v.probabilities[name] for name in names] for v in classifier.predict(texts)])
    fitted = fit_confidence_map(probabilities, np.asarray(labels))
    correct = probabilities.argmax(axis=1) == np.asarray(labels)
    return {
        **fitted.to_json(),
        "ece_before_map_in_sample": expected_calibration_error(probabilities.max(axis=1), correct),
        "ece_after_map_in_sample": expected_calibration_error(
            fitted.apply(probabilities).max(axis=1), correct
        ),
    }


def read_int8_confidence_map(model_dir: Path) -> ConfidenceMap | None:
    """The int8 path's map from the artefact's manifest (None: it has none, so the version's map serves)."""
    entry = (_read_manifest(model_dir) or {}).get("files", {}).get(ONNX_INT8, {})
    data = entry.get("confidence_map") if isinstance(entry, dict) else None
    return ConfidenceMap.from_json(data) if isinstance(data, dict) else None


def quantize_int8_static(
    model_dir: Path, fp32_file: Path, output: Path, *, texts: Sequence[str], skip_ffn_output: bool = True
) -> dict[str, Any]:
    """Static int8 (QDQ) of the fp32 export: weights per channel, activations with ranges fixed by calibration.

    Only MatMuls with a weight are quantized. With `skip_ffn_output`, the feed-forward output projections (whose
    inputs, right after GELU, have the heaviest tails) stay in fp32: quantizing them too cost e5 about a point
    of accuracy. Fixed ranges make a text's probabilities independent of its batchmates.
    """
    import numpy as np
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.preprocess import quant_pre_process
    from transformers import AutoTokenizer

    texts = [text for text in texts if text.strip()]
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    config = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    max_length = min(128, int(config.get("max_position_embeddings", 512)))
    if 0 < getattr(tokenizer, "model_max_length", max_length) < max_length:
        max_length = int(tokenizer.model_max_length)

    class Reader(CalibrationDataReader):
        """One text at a time: the ranges come from real tokens only, never from padding."""

        def __init__(self) -> None:
            self._texts = iter(texts)

        def get_next(self) -> dict[str, Any] | None:
            text = next(self._texts, None)
            if text is None:
                return None
            encoded = tokenizer([text], truncation=True, max_length=max_length, return_tensors="np")
            return {name: encoded[name].astype(np.int64) for name in INPUT_NAMES}

    with tempfile.TemporaryDirectory(dir=output.parent, prefix=".quantize-") as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(fp32_file), str(prepared), skip_symbolic_shape=True)
        graph = onnx.load(str(prepared))
        shapes = {item.name: list(item.dims) for item in graph.graph.initializer}
        weighted = [
            node
            for node in graph.graph.node
            if node.op_type in ("MatMul", "Gemm") and any(name in shapes for name in node.input)
        ]
        # A feed-forward output projection maps the wide intermediate size back to the hidden size.
        ffn_output = {
            node.name
            for node in weighted
            if any(
                name in shapes and len(shapes[name]) == 2 and shapes[name][0] > shapes[name][1]
                for name in node.input
            )
        }
        nodes = [node.name for node in weighted if not (skip_ffn_output and node.name in ffn_output)]
        del graph
        quantize_static(
            str(prepared),
            str(output),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_quantize=nodes,
        )
    return {
        "calibration_texts": len(texts),
        "quantized_matmuls": len(nodes),
        "fp32_matmuls": len(weighted) - len(nodes),
    }


def open_session(path: Path, *, threads: int):
    """An ONNX Runtime CPU session with every graph optimisation, `threads` intra-op threads, no spinning.

    Spinning threads keep polling for work after each batch; on a small shared machine they steal the cores
    the event loop and other processes need.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = max(1, threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _export(model_dir: Path, output: Path) -> float:
    """Export with the torch.onnx (dynamo) exporter, then check the file against torch; returns the max diff."""
    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(model_dir, local_files_only=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    probe = tokenizer(list(_PROBE_TEXTS), padding=True, truncation=True, max_length=64, return_tensors="pt")
    inputs = (probe["input_ids"], probe["attention_mask"])

    wrapper = _logits_only(model)
    batch = torch.export.Dim("batch", min=1, max=4096)
    sequence = torch.export.Dim(
        "sequence", min=1, max=int(getattr(model.config, "max_position_embeddings", 512))
    )
    with warnings.catch_warnings(), torch.no_grad(), _quiet_exporter():
        warnings.simplefilter(
            "ignore"
        )  # the exporter warns about axis renaming; the check below is what counts
        torch.onnx.export(
            wrapper,
            inputs,
            str(output),
            dynamo=True,
            input_names=list(INPUT_NAMES),
            output_names=["logits"],
            dynamic_shapes={"input_ids": {0: batch, 1: sequence}, "attention_mask": {0: batch, 1: sequence}},
            external_data=False,
            verbose=False,
        )
        expected = wrapper(*inputs).float().numpy()
    session = open_session(output, threads=torch.get_num_threads())
    feeds = {name: tensor.numpy().astype(np.int64) for name, tensor in zip(INPUT_NAMES, inputs, strict=True)}
    got = session.run(None, feeds)[0]
    max_diff = float(np.abs(got - expected).max())
    if not np.isfinite(max_diff) or max_diff > EXPORT_TOLERANCE:
        raise FastPathError(
            f"the ONNX export of {model_dir} disagrees with torch (max logit diff {max_diff:.2e})"
        )
    return max_diff


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter logs hundreds of INFO lines (graph rewrites) and prints progress; keep the bot's log readable."""
    names = ("onnxscript", "onnx_ir", "torch.onnx", "torch._export", "torch.export", "torch._dynamo")
    previous = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        for name, level in previous.items():
            logging.getLogger(name).setLevel(level)


def _logits_only(model):
    """`model` as a module that takes and returns plain tensors (what an ONNX graph does)."""
    import torch

    class LogitsOnly(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).logits

    return LogitsOnly(model).eval()


def _versions() -> dict[str, Any]:
    import onnxruntime
    import torch
    import transformers

    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def read_calibration_file(path: Path) -> list[str]:
    """Calibration texts from a CSV/TSV `text` column, or from the lines of any other file."""
    if path.suffix.lower() in {".csv", ".tsv"}:
        import pandas as pd

        frame = pd.read_csv(
            path, sep="\t" if path.suffix.lower() == ".tsv" else ",", dtype=str, keep_default_na=False
        )
        texts = frame["text"].tolist()
    else:
        texts = path.read_text(encoding="utf-8").splitlines()
    return [text for text in texts if text.strip()][:CALIBRATION_SIZE]


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        description="Build the fast-path (ONNX) artefacts of model version directories."
    )
    parser.add_argument("dirs", nargs="+", type=Path, metavar="DIR")
    parser.add_argument(
        "--kind", choices=tuple(FILES), default=FAST_BACKEND, help=f"what to build (default {FAST_BACKEND})"
    )
    parser.add_argument(
        "--calibration",
        type=Path,
        help=f"CSV/TSV with a text column, or a text file with one review per line: static int8's calibration "
        f"(the first {CALIBRATION_SIZE} texts are used)",
    )
    parser.add_argument(
        "--force", action="store_true", help="rebuild even when an up-to-date artefact exists"
    )
    args = parser.parse_args(argv)
    texts = read_calibration_file(args.calibration) if args.calibration else None
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    code = 0
    for directory in args.dirs:
        try:
            print(build_fast_path(directory, args.kind, calibration_texts=texts, force=args.force))
        except FastPathError as error:
            print(f"error: {error}")
            code = 2
    return code


if __name__ == "__main__":
    raise SystemExit(main())
