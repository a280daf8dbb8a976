"""Accuracy in the tutorial's setting: its recipe vs `trainer.train`, both fine-tuning multilingual-e5-small-ko.

The same sampled NSMC reviews for both (1,000 train / 500 test, documents longer than 5 characters). Like the
tutorial, each side picks its best checkpoint by loss on the 500 test reviews and reports accuracy on them.
The tutorial side runs its own loop (Adam 1e-5, batch 8, dropout-0.5 head, best val loss) with dynamic padding
(`--tutorial-pad-512` for its exact padding: same outputs, ~10x the compute). Ours runs trainer defaults.

CPU defaults finish in roughly 10-15 minutes a side on 2 cores; on a GPU run the tutorial's full 10 epochs:
    python -m bench.bench_accuracy --device cuda --tutorial-epochs 10
Smoke test:
    python -m bench.bench_accuracy --train-size 64 --test-size 64 --tutorial-epochs 1 --ours-epochs 1
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

from bench.common import (
    base_parser,
    e5_dir,
    environment,
    markdown_table,
    sample_nsmc,
    setup_torch,
    write_result,
    write_reviews_csv,
)


def standard_error_points(accuracy: float, count: int) -> float:
    """Binomial standard error of an accuracy on `count` reviews, in percentage points."""
    return 100 * math.sqrt(accuracy * (1 - accuracy) / count)


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--train-size", type=int, default=1000)
    parser.add_argument("--test-size", type=int, default=500)
    parser.add_argument("--tutorial-epochs", type=int, default=6, help="the tutorial ran 10")
    parser.add_argument(
        "--tutorial-pad-512", action="store_true", help="pad every sentence to 512 as the tutorial"
    )
    parser.add_argument("--ours-epochs", type=float, default=None, help="default: the trainer's")
    parser.add_argument("--ours-batch-size", type=int, default=None, help="default: the trainer's")
    parser.add_argument("--ours-learning-rate", type=float, default=None, help="default: the trainer's")
    parser.add_argument("--skip-tutorial", action="store_true", help="only ours (e.g. to tune its recipe)")
    args = parser.parse_args(argv)
    device = setup_torch(threads=args.threads, device=args.device, seed=args.seed)
    env = environment(device)

    import torch
    from transformers import set_seed

    from bench.tutorial_baseline import TutorialConfig, run_tutorial
    from classifier import Classifier, evaluate
    from trainer import TrainConfig, train

    checkpoint = e5_dir(args.shared_dir)
    train_reviews = sample_nsmc(
        shared_dir=args.shared_dir, split="train", count=args.train_size, seed=args.seed
    )
    test_reviews = sample_nsmc(shared_dir=args.shared_dir, split="test", count=args.test_size, seed=args.seed)
    rows = []

    if not args.skip_tutorial:
        print(f"tutorial recipe, {args.tutorial_epochs} epoch(s):", flush=True)
        set_seed(args.seed)
        tutorial = run_tutorial(
            TutorialConfig(
                checkpoint=checkpoint,
                train_texts=train_reviews.texts,
                train_labels=train_reviews.labels,
                test_texts=test_reviews.texts,
                test_labels=test_reviews.labels,
                device=str(device),
                epochs=args.tutorial_epochs,
                pad_to_max_length=args.tutorial_pad_512,
                progress=False,
            )
        )
        rows.append(
            {
                "recipe": "tutorial",
                "accuracy": tutorial.accuracy,
                "best_epoch": tutorial.best_epoch,
                "epochs": args.tutorial_epochs,
                "batch_size": 8,
                "learning_rate": 1e-5,
                "padding": "512" if args.tutorial_pad_512 else "dynamic",
                "train_samples_per_second": tutorial.train_samples_per_second,
                "wall_time_seconds": tutorial.wall_time_seconds,
                "history": tutorial.history,
            }
        )
        del tutorial
        if device.type == "cuda":
            torch.cuda.empty_cache()

    print("ours (trainer.train):", flush=True)
    options = {
        name: value
        for name, value in (
            ("epochs", args.ours_epochs),
            ("batch_size", args.ours_batch_size),
            ("learning_rate", args.ours_learning_rate),
        )
        if value is not None
    }
    with tempfile.TemporaryDirectory(prefix="bench-accuracy-") as workdir_name:
        workdir = Path(workdir_name)
        metrics = train(
            TrainConfig(
                output=workdir / "ours",
                base=str(checkpoint),
                data=write_reviews_csv(train_reviews, workdir / "train.csv"),
                eval_data=write_reviews_csv(test_reviews, workdir / "test.csv"),
                train_size=None,
                eval_size=None,
                min_chars=0,
                seed=args.seed,
                **options,
            )
        )
        # Score the saved model version the way the bot will load it, not only the Trainer's in-memory one.
        reloaded = evaluate(
            Classifier.load(workdir / "ours", device=str(device)), test_reviews.texts, test_reviews.labels
        )
    rows.append(
        {
            "recipe": "ours",
            "accuracy": reloaded["accuracy"],
            "trainer_reported_accuracy": metrics["accuracy"],
            "macro_f1": reloaded["macro_f1"],
            "best_epoch": metrics["best_epoch"],
            "epochs": metrics["epochs_trained"],
            "batch_size": metrics["batch_size"],
            "learning_rate": metrics["learning_rate"],
            "padding": "dynamic",
            "train_samples_per_second": metrics["train_samples_per_second"],
            "wall_time_seconds": metrics["wall_time_seconds"],
            "history": metrics["history"],
        }
    )
    for row in rows:
        row["standard_error_points"] = standard_error_points(row["accuracy"], len(test_reviews))

    print()
    print(
        markdown_table(
            rows,
            [
                "recipe",
                "accuracy",
                "standard_error_points",
                "best_epoch",
                "epochs",
                "batch_size",
                "learning_rate",
                "padding",
                "train_samples_per_second",
                "wall_time_seconds",
            ],
        )
    )
    by_recipe = {row["recipe"]: row for row in rows}
    summary = {}
    if "tutorial" in by_recipe:
        difference = by_recipe["ours"]["accuracy"] - by_recipe["tutorial"]["accuracy"]
        summary = {"accuracy_difference_points": 100 * difference, "ours_not_worse": difference >= 0}
        print(
            f"\nours - tutorial: {100 * difference:+.1f} accuracy points "
            f"({'not worse' if difference >= 0 else 'WORSE'})"
        )
    env["load_average_1m_end"] = environment(device)["load_average_1m"]
    path = write_result(
        "accuracy",
        {
            "environment": env,
            "settings": {
                "model": "multilingual-e5-small-ko",
                "train_size": args.train_size,
                "test_size": args.test_size,
                "seed": args.seed,
                "selection": "best checkpoint by loss on the test reviews (the tutorial's protocol)",
            },
            "rows": rows,
            "summary": summary,
        },
        args.output,
    )
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
