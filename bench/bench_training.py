"""Training speed: the tutorial's loop (pad to 512, batch 8, Adam) vs `trainer.train` on the same reviews.

Same model directory, same NSMC training reviews, one process; samples per second over one training epoch,
after a warm-up on each side that meets every batch shape it will be timed on: one batch for the tutorial (all
its batches are 8 x 512), a whole epoch over the same reviews for ours (dynamic padding makes many shapes, and
on a GPU each new shape first pays for loading and choosing kernels). Both sides time the same span: the tutorial's `model_train` call, and our Trainer's
epoch from `on_epoch_begin` to `on_epoch_end` (a timing callback; the evaluation and checkpoint save that follow
are left out). The Trainer's own `train_samples_per_second`, which counts them, is reported beside it.

    python -m bench.bench_training [--models e5-small bert-base-random] [--train-count 32] [--device cuda]
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import (
    MODEL_CHOICES,
    Reviews,
    base_parser,
    environment,
    markdown_table,
    prepare_model_dir,
    ratio,
    sample_nsmc,
    setup_torch,
    synchronize,
    timed,
    write_result,
    write_reviews_csv,
)


def tutorial_samples_per_second(model_dir: Path, reviews: Reviews, *, device, progress: bool) -> float:
    import torch

    from bench.tutorial_baseline import CustomBertModel, TokenDataset, make_loader, model_train, reviews_frame

    model = CustomBertModel(model_dir).to(device)
    loss_fn = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-5)
    warm_up = make_loader(TokenDataset(reviews_frame(reviews.texts[:8], reviews.labels[:8]), model_dir))
    model_train(model, warm_up, loss_fn, optimizer, device, progress=False)
    loader = make_loader(TokenDataset(reviews_frame(reviews.texts, reviews.labels), model_dir), batch_size=8)
    seconds, _ = timed(
        lambda: model_train(model, loader, loss_fn, optimizer, device, progress=progress), device=device
    )
    return len(reviews) / seconds


def ours_metrics(
    model_dir: Path,
    train_file: Path,
    eval_file: Path,
    output: Path,
    *,
    epochs: float,
    batch_size: int | None,
    seed: int,
    device,
) -> tuple[dict[str, Any], float]:
    """(metrics.json of `trainer.train`, seconds spent inside its training epochs)."""
    from unittest import mock

    from transformers import TrainerCallback

    import trainer.training
    from trainer import TrainConfig, train

    class EpochTimer(TrainerCallback):
        seconds = 0.0

        def on_epoch_begin(self, args, state, control, **kwargs):
            synchronize(device)
            self.started = time.perf_counter()

        def on_epoch_end(self, args, state, control, **kwargs):
            synchronize(device)
            self.seconds += time.perf_counter() - self.started

    timer = EpochTimer()

    class TimedTrainer(trainer.training._Trainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.add_callback(timer)

    options = {"batch_size": batch_size} if batch_size else {}
    # `train` takes no callbacks, so the timer rides on the Trainer class it builds (its own subclass of HF's).
    with mock.patch.object(trainer.training, "_Trainer", TimedTrainer):
        metrics = train(
            TrainConfig(
                output=output,
                base=str(model_dir),
                data=train_file,
                eval_data=eval_file,
                train_size=None,
                eval_size=None,
                min_chars=0,
                epochs=epochs,
                early_stopping_patience=0,
                seed=seed,
                **options,
            )
        )
    if (
        timer.seconds <= 0.0
    ):  # the timer never rode along: the trainer builds another class than the one patched
        raise RuntimeError("the epoch timer was not called; patch the Trainer class trainer.training builds")
    return metrics, timer.seconds


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=MODEL_CHOICES, default=list(MODEL_CHOICES))
    parser.add_argument(
        "--train-count", type=int, default=32, help="training reviews (one epoch on each side)"
    )
    parser.add_argument(
        "--eval-count", type=int, default=8, help="reviews our Trainer evaluates after the epoch"
    )
    parser.add_argument(
        "--batch-size", type=int, default=None, help="our batch size (default: the trainer's)"
    )
    parser.add_argument("--progress", action="store_true", help="show the tutorial's progress bar")
    args = parser.parse_args(argv)
    device = setup_torch(threads=args.threads, device=args.device, seed=args.seed)
    env = environment(device)

    train_reviews = sample_nsmc(
        shared_dir=args.shared_dir, split="train", count=args.train_count, seed=args.seed
    )
    eval_reviews = sample_nsmc(
        shared_dir=args.shared_dir, split="test", count=args.eval_count, seed=args.seed
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-training-") as workdir_name:
        workdir = Path(workdir_name)
        train_file = write_reviews_csv(train_reviews, workdir / "train.csv")
        eval_file = write_reviews_csv(eval_reviews, workdir / "eval.csv")
        for name in args.models:
            print(f"{name}:", flush=True)
            model_dir = prepare_model_dir(name, shared_dir=args.shared_dir, workdir=workdir, seed=args.seed)
            tutorial = tutorial_samples_per_second(
                model_dir, train_reviews, device=device, progress=args.progress
            )
            print(f"  tutorial: {tutorial:.2f} samples/s", flush=True)
            ours_metrics(
                model_dir,
                train_file,
                eval_file,
                workdir / f"{name}-warm-up",
                epochs=1,
                batch_size=args.batch_size,
                seed=args.seed,
                device=device,
            )
            metrics, seconds = ours_metrics(
                model_dir,
                train_file,
                eval_file,
                workdir / f"{name}-ours",
                epochs=1,
                batch_size=args.batch_size,
                seed=args.seed,
                device=device,
            )
            ours = len(train_reviews) / seconds
            print(
                f"  ours:     {ours:.2f} samples/s (batch {metrics['batch_size']}; Trainer's figure with "
                f"evaluation and save: {metrics['train_samples_per_second']:.2f})",
                flush=True,
            )
            rows.append(
                {
                    "model": name,
                    "samples": len(train_reviews),
                    "tutorial_samples_per_second": tutorial,
                    "ours_samples_per_second": ours,
                    "speedup": ratio(ours, tutorial),
                    "ours_trainer_reported_samples_per_second": metrics["train_samples_per_second"],
                    "tutorial_batch_size": 8,
                    "ours_batch_size": metrics["batch_size"],
                    "ours_max_length": metrics["max_length"],
                    "ours_wall_time_seconds": metrics["wall_time_seconds"],
                }
            )

    print()
    print(
        markdown_table(
            rows,
            [
                "model",
                "samples",
                "tutorial_samples_per_second",
                "ours_samples_per_second",
                "speedup",
                "ours_trainer_reported_samples_per_second",
            ],
        )
    )
    env["load_average_1m_end"] = environment(device)["load_average_1m"]
    path = write_result(
        "training",
        {
            "environment": env,
            "settings": {
                "train_count": args.train_count,
                "eval_count": args.eval_count,
                "seed": args.seed,
                "tutorial": "pad to 512, batch 8, Adam lr 1e-5, one epoch",
                "ours": "trainer.train defaults (dynamic padding, group by length, AdamW + warmup), one epoch",
            },
            "rows": rows,
        },
        args.output,
    )
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
