"""What a training worker gets out of a GPU: the trainer's samples/s by batch size, against the same host's CPU.

For each model (e5-small, the quick-start encoder; a BERT-base-shaped model, the users' default's shape) and each
batch size, `trainer.train` runs one timed epoch over the same NSMC training reviews, after a warm-up epoch that
meets every batch shape (dynamic padding, grouped by length; bf16 where the GPU has it, as the trainer decides).
While it trains, `nvidia-smi` samples the GPU's utilisation and memory every 200 ms; the row reports their median
and peak. The CPU row is the trainer's default batch on the same host, on fewer reviews (samples/s does not depend
on how many), run in a child process with the GPU hidden.

Run it on the GPU host (the device tool) where a worker would run; on a machine without nvidia-smi the utilisation
columns are empty:

    python -m bench.bench_gpu_training --device cuda [--batch-sizes 16 32 64 128 256] [--train-count 4096]
    python -m bench.bench_gpu_training --device cpu --models e5-small --batch-sizes 16 --train-count 64  # smoke

Writes bench/results/training-gpu.json (or --output).
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Self

from bench.bench_training import ours_metrics
from bench.common import (
    MODEL_CHOICES,
    base_parser,
    environment,
    markdown_table,
    prepare_model_dir,
    sample_nsmc,
    setup_torch,
    write_result,
    write_reviews_csv,
)

NAME = "training-gpu"
SAMPLE_MS = 200


class GpuSampler:
    """`nvidia-smi --query-gpu=utilization.gpu,memory.used -lms 200` in the background while a block runs."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []

    def __enter__(self) -> Self:
        self.process = None
        if shutil.which("nvidia-smi") is None:
            return self
        self.process = subprocess.Popen(
            [
                "nvidia-smi",
                "--query-gpu=utilization.gpu,memory.used",
                "--format=csv,noheader,nounits",
                f"-lms={SAMPLE_MS}",
                "--id=0",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        return self

    def _read(self) -> None:
        for line in self.process.stdout:
            try:
                utilisation, memory = (float(part) for part in line.split(","))
            except ValueError:
                continue
            self.samples.append((utilisation, memory))

    def __exit__(self, *exc_info) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.reader.join(10)

    def summary(self) -> dict[str, Any]:
        if not self.samples:
            return {"gpu_utilisation_median": None, "gpu_utilisation_peak": None, "gpu_memory_peak_mib": None}
        utilisation = [u for u, _ in self.samples]
        return {
            "gpu_utilisation_median": statistics.median(utilisation),
            "gpu_utilisation_peak": max(utilisation),
            "gpu_memory_peak_mib": max(m for _, m in self.samples),
            "samples": len(self.samples),
        }


def one_row(
    model_dir: Path, files: tuple[Path, Path], workdir: Path, *, samples: int, batch_size: int, args, device
) -> dict:
    """One warm-up epoch, then one timed epoch over the `samples` reviews of `files[0]` while nvidia-smi samples."""
    train_file, eval_file = files
    common = {"epochs": 1, "batch_size": batch_size, "seed": args.seed, "device": device}
    ours_metrics(model_dir, train_file, eval_file, workdir / f"warm-up-{batch_size}", **common)
    with GpuSampler() as sampler:
        metrics, seconds = ours_metrics(
            model_dir, train_file, eval_file, workdir / f"timed-{batch_size}", **common
        )
    return {
        "device": str(device),
        "batch_size": batch_size,
        "samples": samples,
        "samples_per_second": round(samples / seconds, 1),
        "max_length": metrics["max_length"],
        "trainer_device": metrics["device"],
        **sampler.summary(),
    }


def cpu_rows(args) -> list[dict[str, Any]]:
    """The same models at the trainer's default batch on this host's CPU: a child process, because the GPU must be
    hidden before torch starts (bench.common.setup_torch)."""
    with tempfile.TemporaryDirectory(prefix="bench-gpu-training-cpu-") as directory:
        output = Path(directory) / "cpu.json"
        command = [
            sys.executable,
            "-m",
            "bench.bench_gpu_training",
            "--device",
            "cpu",
            "--models",
            *args.models,
        ]
        command += ["--batch-sizes", "16", "--train-count", str(args.cpu_count), "--cpu-count", "0"]
        command += ["--shared-dir", str(args.shared_dir), "--seed", str(args.seed), "--output", str(output)]
        subprocess.run(command, check=True)
        return json.loads(output.read_text(encoding="utf-8"))["rows"]


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=MODEL_CHOICES, default=list(MODEL_CHOICES))
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[16, 32, 64, 128, 256])
    parser.add_argument("--train-count", type=int, default=4096, help="training reviews per timed epoch")
    parser.add_argument(
        "--cpu-count", type=int, default=256, help="training reviews for the CPU row (0: none)"
    )
    args = parser.parse_args(argv)
    device = setup_torch(threads=args.threads, device=args.device, seed=args.seed)
    import torch

    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-gpu-training-") as workdir_name:
        workdir = Path(workdir_name)
        reviews = sample_nsmc(
            shared_dir=args.shared_dir, split="train", count=args.train_count, seed=args.seed
        )
        evaluation = sample_nsmc(shared_dir=args.shared_dir, split="test", count=8, seed=args.seed)
        eval_file = write_reviews_csv(evaluation, workdir / "eval.csv")
        train_file = write_reviews_csv(reviews, workdir / "train.csv")
        for name in args.models:
            model_dir = prepare_model_dir(name, shared_dir=args.shared_dir, workdir=workdir, seed=args.seed)
            for batch_size in args.batch_sizes:
                row = {
                    "model": name,
                    **one_row(
                        model_dir,
                        (train_file, eval_file),
                        workdir,
                        samples=len(reviews),
                        batch_size=batch_size,
                        args=args,
                        device=device,
                    ),
                }
                print(row, flush=True)
                rows.append(row)
    if args.cpu_count and device.type != "cpu":
        rows.extend(cpu_rows(args))
    print(
        markdown_table(
            rows,
            [
                "model",
                "device",
                "batch_size",
                "samples_per_second",
                "gpu_utilisation_median",
                "gpu_memory_peak_mib",
            ],
        )
    )
    env = environment(device)
    env["bf16"] = device.type == "cuda" and torch.cuda.is_bf16_supported()
    path = write_result(NAME, {"environment": env, "rows": rows}, args.output)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
