"""`Classifier`: a fine-tuned sequence-classification model version directory, ready to predict.

torch is imported only where torch computes: a process that serves versions on their ONNX fast path (a bot whose
training runs on a worker host) runs without torch installed (docs/cluster.md measures it).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from transformers import AutoConfig, AutoTokenizer

from classifier.confidence_map import ConfidenceMap, ConfidenceMapError
from classifier.errors import EmptyTextError, ModelDirError
from classifier.fastpath import FAST_BACKEND, ONNX_FP32, ONNX_INT8
from classifier.tasks import task_of_model
from classifier.text import has_visible_text

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "sentencepiece.bpe.model", "spiece.model", "vocab.json")
# Tokenizers report a huge sentinel when no model_max_length is configured.
_UNSET_MAX_LENGTH = 1_000_000
CPU_BATCH_SIZE = 8
GPU_BATCH_SIZE = 64

# Serving backends. "torch": the model in full precision on any device. "onnx": the version's ONNX export run by
# ONNX Runtime in full precision (CPU). "onnx-int8": its static int8 quantization (CPU). Both ONNX files are built
# once per version (classifier/fastpath.py). "torch-int8": torch dynamic int8 (CPU), the old fast path, kept for
# the benchmarks: it loses accuracy and its probabilities depend on the batch.
TORCH = "torch"
ONNX = ONNX_FP32
TORCH_INT8 = "torch-int8"
BACKENDS = (TORCH, ONNX, ONNX_INT8, TORCH_INT8)
# `quantize=True` (`moderator predict --quantize`, the bot's FAST_INFERENCE / QUANTIZE) selects FAST_BACKEND:
# the fastest CPU path that is deterministic and costs at most 0.3 accuracy points, chosen by
# bench/bench_serving.py (classifier/fastpath.py).


@dataclass(frozen=True)
class Verdict:
    label: int
    label_name: str
    confidence: float
    probabilities: dict[str, float]  # label name -> probability, in label-id order
    truncated: bool  # the text was longer than the model's max length and was cut

    def to_json_dict(self, text: str) -> dict[str, Any]:
        return {
            "text": text,
            "label": self.label,
            "label_name": self.label_name,
            "confidence": self.confidence,
            "probabilities": dict(self.probabilities),
        }


def _check_model_dir(path: Path) -> None:
    """Name the missing or corrupt file before transformers fails with a less direct message."""
    if not path.exists():
        raise ModelDirError(path, "directory does not exist")
    if not path.is_dir():
        raise ModelDirError(path, "is not a directory")
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ModelDirError(path, "config.json is missing")
    try:
        json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelDirError(path, f"config.json is unreadable ({error})") from error
    weight_files = [name for name in WEIGHT_FILES if (path / name).is_file()]
    if not weight_files:
        raise ModelDirError(path, f"no weights file (expected one of {', '.join(WEIGHT_FILES)})")
    if weight_files[0] == "model.safetensors":
        _check_safetensors(path, path / "model.safetensors")
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise ModelDirError(path, f"no tokenizer files (expected one of {', '.join(TOKENIZER_FILES)})")


def _check_safetensors(directory: Path, weights: Path) -> None:
    from safetensors import SafetensorError, safe_open

    # Opening validates the header and that the file covers every tensor it lists (catches truncation); the numpy
    # framework reads no tensor and needs no torch.
    try:
        with safe_open(str(weights), framework="numpy"):
            pass
    except (SafetensorError, OSError) as error:
        raise ModelDirError(directory, f"{weights.name} is corrupt or unreadable ({error})") from error


def _read_metrics(path: Path) -> dict | None:
    metrics_file = path / "metrics.json"
    if not metrics_file.is_file():
        return None
    try:
        return json.loads(metrics_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelDirError(path, f"metrics.json is unreadable ({error})") from error


def _quantize_linear_layers(model: torch.nn.Module) -> torch.nn.Module:
    import torch

    # torch.ao is deprecated in favour of torchao, but quantize_dynamic is still the fastest CPU path here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


class TorchRunner:
    """Logits of a padded batch from a torch model (any device)."""

    def __init__(self, model: torch.nn.Module, device: torch.device) -> None:
        self.model = model
        self.device = device

    def __call__(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        import torch

        inputs = {name: torch.from_numpy(array).to(self.device) for name, array in batch.items()}
        with torch.inference_mode():
            logits = self.model(**inputs).logits
        return logits.float().cpu().numpy()


class OnnxRunner:
    """Logits of a padded batch from an ONNX Runtime session taking input_ids and attention_mask."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.input_names = [item.name for item in session.get_inputs()]

    def __call__(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(None, {name: batch[name] for name in self.input_names})[0]


class Classifier:
    """A loaded model version. Use `Classifier.load(path)`; `predict` is safe to call from several threads."""

    def __init__(
        self,
        *,
        path: Path,
        config: Any,
        tokenizer: Any,
        runner: Any,
        device: torch.device | CpuDevice,
        max_length: int,
        backend: str,
        metrics: dict | None,
        model: torch.nn.Module | None = None,
        confidence_map: ConfidenceMap | None = None,
    ) -> None:  # device: a torch.device, or CPU when torch is not installed
        self.path = path
        self.config = config
        self.model = model  # the torch module; None when another runtime serves (backend "onnx")
        self.tokenizer = tokenizer
        self.runner = runner  # padded batch (numpy int64 arrays) -> logits (numpy)
        self.device = device
        self.max_length = max_length
        self.backend = backend
        # int8 weights: probabilities differ slightly from those of the model metrics.json describes
        self.quantized = backend in (TORCH_INT8, ONNX_INT8)
        self.metrics = metrics
        # The version's confidence map (classifier/confidence_map.py), applied after the softmax whatever the runtime.
        self.confidence_map = confidence_map
        self.id2label: dict[int, str] = {int(key): str(value) for key, value in config.id2label.items()}
        self.label2id: dict[str, int] = {name: label for label, name in self.id2label.items()}
        self._label_ids = sorted(self.id2label)
        self.task = task_of_model(self.id2label, metrics)  # what it judges (classifier.tasks)
        # A fast tokenizer mutates its truncation/padding state on every call ("Already borrowed").
        self._tokenizer_lock = threading.Lock()

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        device: str | torch.device | CpuDevice | None = None,
        quantize: bool = False,
        max_length: int | None = None,
        backend: str | None = None,
        onnx_file: str | Path | None = None,
        apply_confidence_map: bool = True,
    ) -> Classifier:
        """Load a model version directory.

        `quantize=True` asks for the CPU fast path (`FAST_BACKEND`); `backend` names one explicitly. The fast
        path needs the version's artefact (built by `classifier.fastpath.build_fast_path` when a version is
        imported or promoted); without it the version still loads, in torch full precision, with a warning.
        `onnx_file` serves another ONNX export of this version instead (benchmark variants). Without torch
        installed only the fast path serves: a version without its artefact raises ModelDirError.
        `apply_confidence_map=False` gives the probabilities before the version's confidence map (benchmarks).
        """
        path = Path(path)
        _check_model_dir(path)
        metrics = _read_metrics(path)
        try:
            confidence_map = ConfidenceMap.read(path) if apply_confidence_map else None
        except ConfidenceMapError as error:
            raise ModelDirError(path, f"its confidence map is unusable ({error})") from error
        target = _device(device)
        if backend is None:
            backend = FAST_BACKEND if quantize else TORCH
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
        if backend != TORCH and target.type != "cpu":
            warnings.warn(
                f"backend {backend!r} (quantize=True) is CPU-only; ignoring it on {target}",
                RuntimeWarning,
                stacklevel=2,
            )
            backend = TORCH
        try:
            config = AutoConfig.from_pretrained(path, local_files_only=True)
        except Exception as error:
            raise ModelDirError(path, f"config.json is invalid ({error})") from error
        try:
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        except Exception as error:
            raise ModelDirError(path, f"tokenizer files are missing or corrupt ({error})") from error

        model: torch.nn.Module | None = None
        runner: Any = None
        if backend in (ONNX, ONNX_INT8):
            runner = _onnx_runner(path, backend, onnx_file)
            if runner is None:
                backend = TORCH
        if backend in (TORCH, TORCH_INT8):
            if not torch_installed():
                raise ModelDirError(
                    path,
                    f"torch is not installed, so only the ONNX fast path can serve, and it is unavailable for "
                    f"backend {backend!r}; build it where torch is (`python -m classifier.fastpath --calibration "
                    f"reviews.csv {path}`, which importing or promoting a version does)",
                )
            from transformers import AutoModelForSequenceClassification

            try:
                model = AutoModelForSequenceClassification.from_pretrained(
                    path, config=config, local_files_only=True
                )
            except Exception as error:
                raise ModelDirError(path, f"weights could not be loaded ({error})") from error
            model.eval()
            if backend == TORCH_INT8:
                model = _quantize_linear_layers(model)
            model.to(target)
            runner = TorchRunner(model, target)

        if backend == ONNX_INT8 and apply_confidence_map and onnx_file is None:
            # The int8 path's own map, fitted on its own held-out verdicts when the artefact was built.
            from classifier import fastpath

            try:
                confidence_map = fastpath.read_int8_confidence_map(path) or confidence_map
            except ConfidenceMapError as error:
                raise ModelDirError(path, f"its int8 confidence map is unusable ({error})") from error
        model_limit = _model_max_length(config, tokenizer)
        if max_length is None:
            max_length = model_limit
        elif not 2 <= max_length <= model_limit:
            raise ValueError(
                f"max_length must be between 2 and the model's limit {model_limit}, got {max_length}"
            )
        logger.info("loaded %s on %s (backend=%s, max_length=%d)", path, target, backend, max_length)
        return cls(
            path=path,
            config=config,
            tokenizer=tokenizer,
            runner=runner,
            device=target,
            max_length=max_length,
            backend=backend,
            metrics=metrics,
            model=model,
            confidence_map=confidence_map,
        )

    def with_runner(self, runner: Any, *, backend: str) -> Classifier:
        """The same version (tokenizer, labels, max length) computed by another runner (benchmark variants)."""
        return type(self)(
            path=self.path,
            config=self.config,
            tokenizer=self.tokenizer,
            runner=runner,
            device=_device("cpu"),
            max_length=self.max_length,
            backend=backend,
            metrics=self.metrics,
            model=getattr(runner, "model", None),
            confidence_map=self.confidence_map,
        )

    @property
    def default_batch_size(self) -> int:
        # On a CPU, small batches stay in cache: BERT-base on 2 cores ran 36 msg/s at 8 but 13 msg/s at 64.
        return CPU_BATCH_SIZE if self.device.type == "cpu" else GPU_BATCH_SIZE

    def predict(self, texts: Sequence[str], *, batch_size: int | None = None) -> list[Verdict]:
        """Classify texts; the verdicts come back in input order."""
        if isinstance(texts, str):
            raise TypeError("predict takes a sequence of texts, not a single str; wrap it in a list")
        if batch_size is None:
            batch_size = self.default_batch_size
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"text at index {index} is {type(text).__name__}, not str")
            if not has_visible_text(text):
                raise EmptyTextError(index)
        if not texts:
            return []

        input_ids, truncated = self._encode(list(texts))
        # Sorting by length keeps padding (wasted compute) small; results go back to input order.
        order = sorted(range(len(input_ids)), key=lambda index: len(input_ids[index]))
        verdicts: list[Verdict | None] = [None] * len(input_ids)
        for start in range(0, len(order), batch_size):
            batch_indices = order[start : start + batch_size]
            probabilities = self._probabilities([input_ids[index] for index in batch_indices])
            for index, row in zip(batch_indices, probabilities, strict=True):
                verdicts[index] = self._verdict(row, truncated=truncated[index])
        return verdicts  # type: ignore[return-value]

    def _encode(self, texts: list[str]) -> tuple[list[list[int]], list[bool]]:
        """Token ids cut at max_length, and whether each text had to be cut."""
        with self._tokenizer_lock:
            encoding = self.tokenizer(
                texts, truncation=True, max_length=self.max_length, return_overflowing_tokens=True
            )
        # Overflow rows beyond the first mean the text was longer than max_length.
        first_rows: dict[int, int] = {}
        row_counts = [0] * len(texts)
        for row, sample in enumerate(encoding["overflow_to_sample_mapping"]):
            first_rows.setdefault(sample, row)
            row_counts[sample] += 1
        input_ids = [encoding["input_ids"][first_rows[sample]] for sample in range(len(texts))]
        return input_ids, [count > 1 for count in row_counts]

    def _probabilities(self, batch_input_ids: list[list[int]]) -> list[list[float]]:
        with self._tokenizer_lock:
            padded = self.tokenizer.pad(
                {"input_ids": batch_input_ids}, padding="longest", return_tensors="np"
            )
        batch = {name: np.asarray(array, dtype=np.int64) for name, array in padded.items()}
        logits = np.asarray(self.runner(batch), dtype=np.float64)
        exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
        probabilities = exp / exp.sum(axis=-1, keepdims=True)
        if self.confidence_map is not None:
            probabilities = self.confidence_map.apply(probabilities)
        return probabilities.tolist()

    def _verdict(self, row: list[float], *, truncated: bool) -> Verdict:
        label = max(range(len(row)), key=row.__getitem__)
        return Verdict(
            label=label,
            label_name=self.id2label[label],
            confidence=row[label],
            probabilities={self.id2label[label_id]: row[label_id] for label_id in self._label_ids},
            truncated=truncated,
        )

    def self_check(self) -> None:
        """A trial prediction: raises ModelDirError unless every probability is finite and each row sums to 1.

        Loading proves the files are readable; this proves the weights compute something usable (NaN weights load
        fine and then turn every message into an error).
        """
        probe = ["정말 재밌게 봤어요", "시간 낭비였다", "so-so"]
        try:
            verdicts = self.predict(probe)
        except Exception as error:  # any failure here means the model cannot serve
            raise ModelDirError(
                self.path, f"trial prediction failed ({type(error).__name__}: {error})"
            ) from error
        for verdict in verdicts:
            values = list(verdict.probabilities.values())
            if not all(math.isfinite(value) for value in values) or abs(sum(values) - 1.0) > 1e-3:
                raise ModelDirError(
                    self.path,
                    f"trial prediction gave unusable probabilities {values} (NaN or broken weights?)",
                )

    def __repr__(self) -> str:
        return f"Classifier(path={str(self.path)!r}, device={self.device}, backend={self.backend})"


def _onnx_runner(path: Path, backend: str, onnx_file: str | Path | None = None) -> OnnxRunner | None:
    """The version's ONNX artefact in an ONNX Runtime session; None (with a warning) when it cannot serve."""
    from classifier import fastpath

    usable, reason = (True, "") if onnx_file is not None else fastpath.fast_path_status(path, backend)
    if usable:
        source = Path(onnx_file) if onnx_file is not None else fastpath.artefact_file(path, backend)
        try:
            return OnnxRunner(fastpath.open_session(source, threads=_intra_op_threads()))
        except Exception as error:  # noqa: BLE001 - onnxruntime missing, or a file it cannot read
            reason = f"ONNX Runtime could not open it ({type(error).__name__}: {error})"
    logger.warning(
        "%s: the fast path (%s) is unavailable: %s; serving torch fp32 instead "
        "(importing or promoting the version builds it; or run `python -m classifier.fastpath --kind %s %s`)",
        path,
        backend,
        reason,
        backend,
        path,
    )
    return None


@dataclass(frozen=True)
class CpuDevice:
    """The device of a Classifier in a process without torch (it has only the CPU fast path)."""

    type: str = "cpu"

    def __str__(self) -> str:
        return self.type


def torch_installed() -> bool:
    return importlib.util.find_spec("torch") is not None


def _device(device: str | torch.device | CpuDevice | None) -> torch.device | CpuDevice:
    """`device` as torch knows it (None: CUDA when there is one), or CpuDevice without torch."""
    if not torch_installed():
        if device is not None and str(device) != "cpu":
            raise ValueError(f"device {device} needs torch, which is not installed; only the CPU can serve")
        return CpuDevice()
    import torch

    if device is not None:
        return torch.device(str(device))
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _intra_op_threads() -> int:
    """ONNX Runtime's threads: torch's setting where torch is (tests and the CLI pin it), else OMP_NUM_THREADS or
    every core."""
    if torch_installed():
        import torch

        return torch.get_num_threads()
    return int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)


def _model_max_length(config: Any, tokenizer: Any) -> int:
    limit = int(getattr(config, "max_position_embeddings", 512))
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(tokenizer_limit, int) and 0 < tokenizer_limit < _UNSET_MAX_LENGTH:
        limit = min(limit, tokenizer_limit)
    return limit
