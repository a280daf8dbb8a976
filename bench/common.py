"""What every benchmark script shares: flags, NSMC samples, model directories, timing and result files."""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO_ROOT / "bench" / "results"
E5_SUBPATH = Path("models") / "multilingual-e5-small-ko"
NSMC_SUBPATH = Path("korpora") / "nsmc"
LABEL_NAMES = ("부정", "긍정")  # NSMC: 0 = negative, 1 = positive

# The benchmarks never reach a model hub: every checkpoint is a local directory.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def base_parser(description: str) -> argparse.ArgumentParser:
    """The flags every benchmark takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--shared-dir",
        type=Path,
        default=Path("../shared"),
        help="the shared/ folder (NSMC under korpora/nsmc, models/multilingual-e5-small-ko)",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count() or 1, help="torch intra-op threads (default: all cores)"
    )
    parser.add_argument(
        "--seed", type=int, default=42, help="seed for sampling reviews and initialising models"
    )
    parser.add_argument(
        "--output", type=Path, default=None, help="result JSON (default bench/results/<name>.json)"
    )
    return parser


def setup_torch(*, threads: int, device: str, seed: int):
    """Use every core, seed everything; returns the torch.device after checking it exists."""
    if device == "cpu":
        # The HF Trainer picks a GPU by itself when it sees one; hide it so both sides run on the CPU.
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    import torch
    from transformers import set_seed
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()  # load reports ("newly initialized head") are expected here
    transformers_logging.disable_progress_bar()
    torch.set_num_threads(threads)
    set_seed(seed)
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device {device}: CUDA is not available on this machine")
    return resolved


def synchronize(device) -> None:
    """Wait for queued GPU work so that wall-clock timings cover it."""
    import torch

    if getattr(device, "type", str(device)).startswith("cuda"):
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class Reviews:
    texts: list[str]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.texts)


def nsmc_file(shared_dir: Path, split: str) -> Path:
    path = shared_dir / NSMC_SUBPATH / f"ratings_{split}.txt"
    if not path.is_file():
        raise SystemExit(f"NSMC {split} split not found at {path} (pass --shared-dir)")
    return path


def sample_nsmc(*, shared_dir: Path, split: str, count: int, seed: int, min_length: int = 5) -> Reviews:
    """The tutorial's sample: reviews longer than `min_length` characters, `count` drawn at random (seeded)."""
    import pandas as pd

    frame = pd.read_csv(
        nsmc_file(shared_dir, split),
        sep="\t",
        quoting=csv.QUOTE_NONE,
        keep_default_na=False,
        dtype={"document": str},
    )
    frame = frame.loc[frame["document"].str.len() > min_length]
    if count > len(frame):
        raise SystemExit(f"asked for {count} {split} reviews, only {len(frame)} are longer than {min_length}")
    frame = frame.sample(count, random_state=seed)
    return Reviews(frame["document"].tolist(), [int(label) for label in frame["label"]])


def write_reviews_csv(reviews: Reviews, path: Path) -> Path:
    """`text,label` CSV (the trainer's extra-examples format)."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(zip(reviews.texts, reviews.labels))
    return path


# --- models -----------------------------------------------------------------------------------------
MODEL_CHOICES = ("e5-small", "bert-base-random")


def e5_dir(shared_dir: Path) -> Path:
    path = shared_dir / E5_SUBPATH
    if not (path / "config.json").is_file():
        raise SystemExit(f"multilingual-e5-small-ko not found at {path} (pass --shared-dir)")
    return path


def prepare_model_dir(name: str, *, shared_dir: Path, workdir: Path, seed: int) -> Path:
    """A sequence-classification model directory that both the tutorial code and `Classifier.load` read.

    `e5-small`: the real pretrained multilingual-e5-small-ko with a fresh 2-label head.
    `bert-base-random`: a randomly initialised BERT of kykim/bert-kor-base's shape (the model hub is out of
    reach here), with the e5 tokenizer, whose 28k ids fit its 42k vocabulary. Speed does not depend on weights.
    """
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    labels = {"id2label": dict(enumerate(LABEL_NAMES)), "label2id": {n: i for i, n in enumerate(LABEL_NAMES)}}
    source = e5_dir(shared_dir)
    tokenizer = AutoTokenizer.from_pretrained(source)
    torch.manual_seed(seed)
    if name == "e5-small":
        model = BertForSequenceClassification.from_pretrained(source, num_labels=2, **labels)
    elif name == "bert-base-random":
        config = BertConfig(
            vocab_size=42000,
            hidden_size=768,
            num_hidden_layers=12,
            num_attention_heads=12,
            intermediate_size=3072,
            pad_token_id=tokenizer.pad_token_id,
            num_labels=2,
            **labels,
        )
        model = BertForSequenceClassification(config)
    else:
        raise SystemExit(f"unknown model {name!r}; choose from {', '.join(MODEL_CHOICES)}")
    target = workdir / name
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


# --- intervals --------------------------------------------------------------------------------------
def percentile_bootstrap(
    statistic: Callable[[Any], float], size: int, *, resamples: int, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """(low, high): the percentile-bootstrap interval of `statistic(sample)`, where each sample is an index array
    drawing `size` examples with replacement (pass the same sample to two models for a paired interval)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    draws = [statistic(rng.integers(0, size, size)) for _ in range(resamples)]
    tail = (1 - confidence) / 2
    low, high = np.quantile(draws, [tail, 1 - tail])
    return float(low), float(high)


def ece_with_interval(confidence, correct, *, resamples: int) -> tuple[float, float, float]:
    """(ECE, low, high): expected calibration error of these verdicts with its 95% percentile-bootstrap interval."""
    from classifier.calibration import expected_calibration_error

    low, high = percentile_bootstrap(
        lambda sample: expected_calibration_error(confidence[sample], correct[sample]),
        len(correct),
        resamples=resamples,
    )
    return expected_calibration_error(confidence, correct), low, high


# --- timing -----------------------------------------------------------------------------------------
def timed(function: Callable[[], Any], *, device=None) -> tuple[float, Any]:
    """(seconds, result) of one call, GPU work included."""
    synchronize(device)
    start = time.perf_counter()
    result = function()
    synchronize(device)
    return time.perf_counter() - start, result


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if not numerator or not denominator:
        return None
    return numerator / denominator


# --- reporting --------------------------------------------------------------------------------------
def environment(device) -> dict[str, Any]:
    import torch
    import transformers

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        # Other jobs on the machine skew timings badly when torch uses every core; record how busy it was.
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    if getattr(device, "type", "") == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def machine_record(load_at_start: list[float]) -> dict[str, Any]:
    """The machine and how busy it was, for a benchmark that runs the real processes (timings follow load)."""
    return {
        "cpu_cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_at_start": load_at_start,
        "load_average_at_end": [round(value, 2) for value in os.getloadavg()],
    }


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    def cell(value: Any) -> str:
        if value is None:
            return "–"
        if isinstance(value, float):
            return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
        return str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(column)) for column in columns) + " |" for row in rows]
    return "\n".join(lines)


def write_result(name: str, result: dict[str, Any], output: Path | None) -> Path:
    path = output or RESULTS_DIR / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    result = {"benchmark": name, "created_at": datetime.now(UTC).isoformat(timespec="seconds"), **result}
    path.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return path
