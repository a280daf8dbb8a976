"""Inference speed: the tutorial's way (pad to 512; one at a time, or batches of 8) vs `classifier.Classifier`.

Same model directory, same NSMC test reviews, one process. Ratios are ours / tutorial (higher is better).
The issue's goal: >= 10x the tutorial's single-message speed and >= 30x its batch throughput.

    python -m bench.bench_inference [--models e5-small bert-base-random] [--device cuda]
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench.common import (
    MODEL_CHOICES,
    base_parser,
    environment,
    markdown_table,
    prepare_model_dir,
    ratio,
    sample_nsmc,
    setup_torch,
    timed,
    write_result,
)

SINGLE_GOAL = 10.0
BATCH_GOAL = 30.0


def measure(function, *, count: int, repeats: int, device) -> dict[str, Any]:
    """Median over `repeats` timed runs of `function`, which handles `count` messages."""
    seconds = [timed(function, device=device)[0] for _ in range(repeats)]
    median = statistics.median(seconds)
    return {
        "messages": count,
        "repeats": repeats,
        "seconds": median,
        "ms_per_message": 1000 * median / count,
        "messages_per_second": count / median,
    }


def bench_model(name: str, model_dir: Path, *, single_texts: list[str], batch_texts: list[str], args, device):
    """Every configuration on one model; returns the table rows."""
    import torch
    from transformers import AutoTokenizer

    from bench.tutorial_baseline import (
        PREDICTOR_LABELS,
        CustomBertModel,
        CustomPredictor,
        TokenDataset,
        make_loader,
        model_evaluate,
        reviews_frame,
    )
    from classifier import Classifier

    rows = []

    def add(way: str, mode: str, batch: int | str, padding: str, precision: str, stats: dict) -> None:
        rows.append(
            {
                "model": name,
                "way": way,
                "mode": mode,
                "batch": batch,
                "padding": padding,
                "precision": precision,
                **stats,
            }
        )
        print(
            f"  {way:8} {mode:6} batch={batch!s:3} {padding:7} {precision}: "
            f"{stats['ms_per_message']:.1f} ms/msg, {stats['messages_per_second']:.2f} msg/s",
            flush=True,
        )

    # The tutorial's model is left in eval mode by its last evaluation; its predictor runs without no_grad.
    tutorial_model = CustomBertModel(model_dir).to(device).eval()
    predictor = CustomPredictor(
        tutorial_model, AutoTokenizer.from_pretrained(model_dir), PREDICTOR_LABELS, device
    )
    for text in single_texts[:2]:  # warm-up
        predictor.predict(text)
    add(
        "tutorial",
        "single",
        1,
        "512",
        "fp32",
        measure(
            lambda: [predictor.predict(text) for text in single_texts],
            count=len(single_texts),
            repeats=args.tutorial_repeats,
            device=device,
        ),
    )

    # Its only batched path: a DataLoader over TokenDataset (batch 8, padded to 512) and model_evaluate.
    loss_fn = torch.nn.CrossEntropyLoss()
    dataset = TokenDataset(reviews_frame(batch_texts, [0] * len(batch_texts)), model_dir)
    warm_loader = make_loader(TokenDataset(reviews_frame(batch_texts[:8], [0] * 8), model_dir), shuffle=False)
    model_evaluate(tutorial_model, warm_loader, loss_fn, device)  # warm-up
    loader = make_loader(dataset, batch_size=8, shuffle=False)
    add(
        "tutorial",
        "batch",
        8,
        "512",
        "fp32",
        measure(
            lambda: model_evaluate(tutorial_model, loader, loss_fn, device),
            count=len(batch_texts),
            repeats=args.tutorial_repeats,
            device=device,
        ),
    )

    def bench_ours(classifier, precision: str) -> list[int]:
        classifier.predict(single_texts[:2], batch_size=1)  # warm-up
        classifier.predict(batch_texts[: args.batch_size], batch_size=args.batch_size)
        add(
            "ours",
            "single",
            1,
            "dynamic",
            precision,
            measure(
                lambda: [classifier.predict([text], batch_size=1) for text in single_texts],
                count=len(single_texts),
                repeats=args.ours_repeats,
                device=device,
            ),
        )
        add(
            "ours",
            "batch",
            args.batch_size,
            "dynamic",
            precision,
            measure(
                lambda: classifier.predict(batch_texts, batch_size=args.batch_size),
                count=len(batch_texts),
                repeats=args.ours_repeats,
                device=device,
            ),
        )
        return [verdict.label for verdict in classifier.predict(batch_texts)]

    precisions = ["fp32", "int8"] if device.type == "cpu" else ["fp32"]  # dynamic int8 is CPU-only
    labels_by_precision = {
        precision: bench_ours(
            Classifier.load(
                model_dir, device=str(device), backend="torch-int8" if precision == "int8" else "torch"
            ),
            precision,
        )
        for precision in precisions
    }

    agreement = None
    if "int8" in labels_by_precision:
        same = sum(a == b for a, b in zip(labels_by_precision["fp32"], labels_by_precision["int8"]))
        agreement = same / len(batch_texts)
    return rows, agreement


def summarise(name: str, rows: list[dict], agreement: float | None) -> dict[str, Any]:
    def find(way: str, mode: str, precision: str = "fp32") -> dict | None:
        return next(
            (
                row
                for row in rows
                if row["model"] == name
                and row["way"] == way
                and row["mode"] == mode
                and row["precision"] == precision
            ),
            None,
        )

    tutorial_single, tutorial_batch = find("tutorial", "single"), find("tutorial", "batch")
    summary: dict[str, Any] = {"model": name, "int8_fp32_label_agreement": agreement}
    for precision in ("fp32", "int8"):
        ours_single, ours_batch = find("ours", "single", precision), find("ours", "batch", precision)
        if ours_single is None:
            continue
        summary[f"single_speedup_{precision}"] = ratio(
            tutorial_single["ms_per_message"], ours_single["ms_per_message"]
        )
        summary[f"batch_throughput_ratio_{precision}"] = ratio(
            ours_batch["messages_per_second"], tutorial_batch["messages_per_second"]
        )
    best_single = max(v for k, v in summary.items() if k.startswith("single_speedup_"))
    best_batch = max(v for k, v in summary.items() if k.startswith("batch_throughput_ratio_"))
    summary.update(
        best_single_speedup=best_single,
        best_batch_throughput_ratio=best_batch,
        single_goal_met=best_single >= SINGLE_GOAL,
        batch_goal_met=best_batch >= BATCH_GOAL,
    )
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=MODEL_CHOICES, default=list(MODEL_CHOICES))
    parser.add_argument("--single-count", type=int, default=24, help="messages sent one at a time")
    parser.add_argument("--batch-count", type=int, default=64, help="messages classified in batches")
    parser.add_argument("--batch-size", type=int, default=32, help="our batch size")
    parser.add_argument("--tutorial-repeats", type=int, default=1, help="timed runs of each tutorial setting")
    parser.add_argument("--ours-repeats", type=int, default=3, help="timed runs of each of ours (median)")
    args = parser.parse_args(argv)
    device = setup_torch(threads=args.threads, device=args.device, seed=args.seed)
    env = environment(device)

    reviews = sample_nsmc(
        shared_dir=args.shared_dir,
        split="test",
        count=max(args.single_count, args.batch_count),
        seed=args.seed,
        min_length=0,
    )
    single_texts, batch_texts = reviews.texts[: args.single_count], reviews.texts[: args.batch_count]

    rows, summaries = [], []
    with tempfile.TemporaryDirectory(prefix="bench-inference-") as workdir:
        for name in args.models:
            print(f"{name}:", flush=True)
            model_dir = prepare_model_dir(
                name, shared_dir=args.shared_dir, workdir=Path(workdir), seed=args.seed
            )
            model_rows, agreement = bench_model(
                name, model_dir, single_texts=single_texts, batch_texts=batch_texts, args=args, device=device
            )
            rows += model_rows
            summaries.append(summarise(name, model_rows, agreement))

    print()
    print(
        markdown_table(
            rows,
            [
                "model",
                "way",
                "mode",
                "batch",
                "padding",
                "precision",
                "ms_per_message",
                "messages_per_second",
            ],
        )
    )
    print()
    print(
        markdown_table(
            summaries,
            [
                "model",
                "single_speedup_fp32",
                "single_speedup_int8",
                "batch_throughput_ratio_fp32",
                "batch_throughput_ratio_int8",
                "single_goal_met",
                "batch_goal_met",
                "int8_fp32_label_agreement",
            ],
        )
    )
    env["load_average_1m_end"] = environment(device)["load_average_1m"]
    path = write_result(
        "inference",
        {
            "environment": env,
            "settings": {
                "single_count": args.single_count,
                "batch_count": args.batch_count,
                "batch_size": args.batch_size,
                "tutorial_repeats": args.tutorial_repeats,
                "ours_repeats": args.ours_repeats,
                "seed": args.seed,
                "goals": {"single_speedup": SINGLE_GOAL, "batch_throughput_ratio": BATCH_GOAL},
            },
            "rows": rows,
            "summary": summaries,
        },
        args.output,
    )
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
