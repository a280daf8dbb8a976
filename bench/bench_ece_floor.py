"""The ECE a perfectly calibrated model shows on a sample of n examples: the floor below which a measured ECE says
nothing, because the sample's own noise puts it there.

A perfectly calibrated model is simulated: each example gets a confidence c and is right with probability c
exactly. Its expected calibration error (`classifier.calibration.expected_calibration_error`, 15 bins, as the docs
and the gate use) is then pure sampling noise. For each n (BEEP! dev's 471 comments, K-MHaS's held-out 4,402,
10,000 NSMC test reviews) and two confidence spreads (wide: uniform 0.40-0.97, the top-class confidences of a
three-class model; narrow: uniform 0.70-0.90, a bunched one), 2,000 samples give the mean and the 5th and 95th
percentiles. Takes seconds; writes bench/results/ece_floor.json, quoted by docs/benchmarks.md.

    .venv/bin/python -m bench.bench_ece_floor
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bench.common import environment, write_result
from classifier.calibration import expected_calibration_error

SIZES = {"BEEP! dev": 471, "K-MHaS held-out fifth": 4402, "NSMC test sample": 10_000}
SPREADS = {"wide (uniform 0.40-0.97)": (0.40, 0.97), "narrow (uniform 0.70-0.90)": (0.70, 0.90)}
SAMPLES = 2000
GOAL = 0.02  # the ECE goal


def floor(
    size: int, low: float, high: float, *, rng: np.random.Generator, samples: int = SAMPLES
) -> dict[str, float]:
    """Mean, 5th and 95th percentile of a perfectly calibrated model's ECE over `samples` samples of `size`."""
    values = []
    for _ in range(samples):
        confidence = rng.uniform(low, high, size)
        correct = rng.uniform(size=size) < confidence  # right exactly as often as it says
        values.append(expected_calibration_error(confidence, correct))
    array = np.asarray(values)
    return {
        "mean": round(float(array.mean()), 4),
        "p5": round(float(np.percentile(array, 5)), 4),
        "p95": round(float(np.percentile(array, 95)), 4),
        "share_at_or_under_goal": round(float(np.mean(array <= GOAL)), 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    result = {
        "what": "ECE (15 bins) of a simulated perfectly calibrated model: sampling noise alone",
        "samples": SAMPLES,
        "goal": GOAL,
        "floors": {
            spread: {f"{name} (n={size})": floor(size, low, high, rng=rng) for name, size in SIZES.items()}
            for spread, (low, high) in SPREADS.items()
        },
        "seed": args.seed,
        "environment": environment("cpu"),
    }
    path = write_result("ece_floor", result, args.output)
    for spread, rows in result["floors"].items():
        for name, row in rows.items():
            print(f"{spread:28} {name:32} mean {row['mean']:.4f}  5-95% {row['p5']:.4f}-{row['p95']:.4f}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
