"""Torch dynamic int8 (`Classifier.load(..., backend="torch-int8")`, the old fast path) vs fp32 on the CPU.

Superseded by bench/bench_serving.py (issue 9), which scores 10,000 reviews and every serving path.

The e5 encoder is first fine-tuned briefly with `trainer` (600 NSMC train reviews, 1 epoch, max_length 64) so
that accuracy means something; both variants are then scored on the same NSMC test reviews and timed at
batch 1 (ms/message) and batch 32 (messages/s).

    python -m bench.bench_quantization [--train-size 600] [--eval-size 500] [--threads 2]
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench.common import (
    base_parser,
    e5_dir,
    environment,
    markdown_table,
    ratio,
    sample_nsmc,
    setup_torch,
    timed,
    write_result,
)

NAME = "quantization"


def fine_tune(*, shared_dir: Path, output: Path, train_size: int, max_length: int, seed: int) -> Path:
    from trainer import TrainConfig, train

    train(
        TrainConfig(
            output=output,
            base=str(e5_dir(shared_dir)),
            korpora_root=shared_dir / "korpora",
            train_size=train_size,
            eval_size=200,
            epochs=1,
            batch_size=16,
            max_length=max_length,
            seed=seed,
        )
    )
    return output


def measure(classifier, texts: list[str], labels: list[int], *, single_count: int) -> dict[str, Any]:
    from classifier import evaluate

    classifier.predict(texts[:8], batch_size=8)  # warm-up: first calls allocate and pack weights
    report = evaluate(classifier, texts, labels, batch_size=32)
    single_times = [
        timed(lambda text=text: classifier.predict([text], batch_size=1))[0] for text in texts[:single_count]
    ]
    batch_seconds, _ = timed(lambda: classifier.predict(texts, batch_size=32))
    return {
        "accuracy": report["accuracy"],
        "macro_f1": report["macro_f1"],
        "ms_per_message_batch_1": 1000 * statistics.median(single_times),
        "messages_per_second_batch_32": len(texts) / batch_seconds,
    }


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--train-size", type=int, default=600)
    parser.add_argument("--eval-size", type=int, default=500)
    parser.add_argument("--max-length", type=int, default=64, help="fine-tuning and inference max length")
    parser.add_argument("--single-count", type=int, default=100, help="messages timed one at a time")
    parser.add_argument(
        "--model", type=Path, default=None, help="use this fine-tuned model instead of training"
    )
    args = parser.parse_args()
    device = setup_torch(threads=args.threads, device="cpu", seed=args.seed)  # int8 dynamic is CPU-only

    from classifier import Classifier

    reviews = sample_nsmc(shared_dir=args.shared_dir, split="test", count=args.eval_size, seed=args.seed)
    with tempfile.TemporaryDirectory() as workdir:
        model_dir = args.model
        fine_tune_seconds = None
        if model_dir is None:
            fine_tune_seconds, model_dir = timed(
                lambda: fine_tune(
                    shared_dir=args.shared_dir,
                    output=Path(workdir) / "e5-finetuned",
                    train_size=args.train_size,
                    max_length=args.max_length,
                    seed=args.seed,
                )
            )
        rows = []
        for quantize in (False, True):
            classifier = Classifier.load(
                model_dir,
                device="cpu",
                backend="torch-int8" if quantize else "torch",
                max_length=args.max_length,
            )
            numbers = measure(classifier, reviews.texts, reviews.labels, single_count=args.single_count)
            rows.append({"variant": "int8 dynamic" if quantize else "fp32", **numbers})
            del classifier

    fp32, int8 = rows
    rows.append(
        {
            "variant": "int8 / fp32",
            "accuracy": int8["accuracy"] - fp32["accuracy"],
            "ms_per_message_batch_1": ratio(fp32["ms_per_message_batch_1"], int8["ms_per_message_batch_1"]),
            "messages_per_second_batch_32": ratio(
                int8["messages_per_second_batch_32"], fp32["messages_per_second_batch_32"]
            ),
        }
    )
    columns = ["variant", "accuracy", "macro_f1", "ms_per_message_batch_1", "messages_per_second_batch_32"]
    print(markdown_table(rows, columns))
    print(
        "\n(last row: accuracy difference in points/100; speed-ups as fp32 time / int8 time, higher is better)"
    )
    path = write_result(
        NAME,
        {
            "environment": environment(device),
            "settings": {
                "train_size": args.train_size,
                "eval_size": args.eval_size,
                "max_length": args.max_length,
                "single_count": args.single_count,
                "fine_tune_seconds": fine_tune_seconds,
            },
            "rows": rows,
        },
        args.output,
    )
    print(f"\nresult written to {path}")


if __name__ == "__main__":
    main()
