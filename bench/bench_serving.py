"""CPU serving paths compared on real fine-tuned models: accuracy, batch-dependence, speed, load cost.

For each model (the quick-start e5 and a fine-tuned scratch BERT) every variant is scored in one process on the
same NSMC test reviews (never trained on):
- accuracy and its cost against torch fp32, with the share of verdicts that agree with fp32;
- batch-dependence: the largest probability difference for a text predicted alone and in a batch of 64;
- single-message latency (batch 1) and batch throughput at the default CPU batch size (8), timed with the
  variants interleaved chunk by chunk so that other load on the machine hits them alike; ratios are against
  torch fp32 in the same run; with 2 threads and with 1;
- load time and resident memory, each in a fresh subprocess.

Variants: torch fp32 (the baseline), torch dynamic int8 (the old default), torch bf16, torch.compile (opt-in),
ONNX Runtime fp32 and static int8 (`classifier.fastpath`; the backends `quantize=True` can serve), and the other
ONNX Runtime int8 paths: dynamic, static on every weight MatMul (the product's static path keeps the FFN output
projections in fp32), and blockwise weight-only int8 (MatMulNBits). Static paths are calibrated on 256 NSMC
training reviews longer than 5 characters, drawn with seed 2024: the sample the bot calibrates on
(`bot.retraining.dataset.calibration_texts`).

    python -m bench.bench_serving                       # both models, 10,000 reviews, 2 and 1 threads (~35 min)
    python -m bench.bench_serving --timing-only         # only the speed part (reuses nothing: retrains if needed)
    python -m bench.bench_serving --accuracy-size 500 --speed-size 64 --single-count 8 --models scratch  # smoke
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import (
    REPO_ROOT,
    Reviews,
    base_parser,
    e5_dir,
    environment,
    markdown_table,
    sample_nsmc,
    setup_torch,
    write_result,
)
from bot.retraining.dataset import CALIBRATION_SEED
from classifier.fastpath import CALIBRATION_SIZE

NAME = "serving"
BASELINE = "torch-fp32"
VARIANTS = (
    "torch-fp32",
    "torch-int8-dynamic",
    "torch-bf16",
    "onnx-fp32",
    "onnx-int8-dynamic",
    "onnx-int8-static",
    "onnx-int8-static-all",
    "onnx-int8-blockwise",
)
OPT_IN_VARIANTS = ("torch-compile",)
QUICKSTART_E5 = REPO_ROOT / "models" / "quickstart-e5"
DETERMINISM_BATCH = 64
DETERMINISTIC_WITHIN = 1e-4
MAX_COST_POINTS = 0.3


# --- models -----------------------------------------------------------------------------------------
def quickstart_e5(shared_dir: Path, output: Path, seed: int) -> Path:
    """What `make run` trains: e5, 2,000 NSMC train reviews, 1 epoch, max length 128 (bot/quickstart.py)."""
    from bot.quickstart import FIRST_MODEL_RECIPE
    from trainer import TrainConfig, train

    train(
        TrainConfig(
            output=output,
            base=str(e5_dir(shared_dir)),
            korpora_root=shared_dir / "korpora",
            seed=seed,
            **FIRST_MODEL_RECIPE,
        )
    )
    return output


def scratch_model(shared_dir: Path, output: Path, seed: int) -> Path:
    """The suite's fine-tuned scratch BERT (tests/conftest.py::scratch_model_dir)."""
    from trainer import TrainConfig, train

    train(
        TrainConfig(
            output=output,
            korpora_root=shared_dir / "korpora",
            base="scratch",
            train_size=6000,
            eval_size=500,
            max_length=48,
            epochs=2,
            batch_size=32,
            learning_rate=2e-3,
            scratch_hidden=64,
            scratch_layers=2,
            scratch_heads=2,
            scratch_vocab_size=8000,
            seed=seed,
        )
    )
    return output


def model_dir_for(name: str, args, workdir: Path) -> tuple[Path, str]:
    """A private copy of the model version (artefacts are built into it), and where it came from."""
    given = args.e5_model if name == "e5" else args.scratch_model
    if given is None and name == "e5" and (QUICKSTART_E5 / "metrics.json").is_file():
        given = QUICKSTART_E5
    target = workdir / f"{name}-model"
    if given is not None:
        shutil.copytree(given, target, ignore=shutil.ignore_patterns("onnx"))
        return target, str(given)
    print(f"training the {name} model (no --{name}-model given)", file=sys.stderr, flush=True)
    trainer = quickstart_e5 if name == "e5" else scratch_model
    trainer(args.shared_dir, target, args.seed)
    return target, f"trained here ({trainer.__doc__.splitlines()[0]})"


# --- variants ---------------------------------------------------------------------------------------
def build_variant_files(model_dir: Path, variants: list[str], calibration: list[str]) -> dict[str, Any]:
    """Build what the ONNX variants need; returns {variant: file} and the seconds each build took.

    onnx-fp32 and onnx-int8-static are the product's artefacts (`classifier.fastpath.build_fast_path`); the
    others are built here from the same fp32 export.
    """
    from classifier import fastpath

    files: dict[str, Path] = {}
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    files["onnx-fp32"] = fastpath.build_fast_path(model_dir, fastpath.ONNX_FP32)
    seconds["onnx-fp32"] = time.perf_counter() - start
    if "onnx-int8-static" in variants:
        start = time.perf_counter()
        files["onnx-int8-static"] = fastpath.build_fast_path(
            model_dir, fastpath.ONNX_INT8, calibration_texts=calibration
        )
        seconds["onnx-int8-static"] = time.perf_counter() - start
    fp32 = files["onnx-fp32"]
    out = model_dir / "bench-variants"
    out.mkdir(exist_ok=True)

    def timed_build(name: str, build: Callable[[Path], Any]) -> None:
        if name not in variants:
            return
        began = time.perf_counter()
        build(out / f"{name}.onnx")
        seconds[name] = time.perf_counter() - began
        files[name] = out / f"{name}.onnx"

    def dynamic(path: Path) -> None:
        from onnxruntime.quantization import QuantType, quantize_dynamic
        from onnxruntime.quantization.preprocess import quant_pre_process

        prepared = out / "prepared.onnx"
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        quantize_dynamic(str(prepared), str(path), weight_type=QuantType.QInt8, per_channel=True)

    def blockwise(path: Path) -> None:
        import onnx
        from onnxruntime.quantization.matmul_nbits_quantizer import (
            DefaultWeightOnlyQuantConfig,
            MatMulNBitsQuantizer,
        )

        config = DefaultWeightOnlyQuantConfig(block_size=32, is_symmetric=True, accuracy_level=4, bits=8)
        quantizer = MatMulNBitsQuantizer(onnx.load(str(fp32)), algo_config=config)
        quantizer.process()
        quantizer.model.save_model_to_file(str(path), use_external_data_format=False)

    timed_build("onnx-int8-dynamic", dynamic)
    timed_build(
        "onnx-int8-static-all",
        lambda path: fastpath.quantize_int8_static(
            model_dir, fp32, path, texts=calibration, skip_ffn_output=False
        ),
    )
    timed_build("onnx-int8-blockwise", blockwise)
    return {"files": files, "build_seconds": seconds}


def load_variant(name: str, model_dir: Path, files: dict[str, str], threads: int):
    """A Classifier computing with variant `name` (torch threads are set by the caller)."""
    import torch

    from classifier import Classifier
    from classifier.model import TorchRunner

    if name == "torch-fp32":
        return Classifier.load(model_dir, device="cpu", backend="torch")
    if name == "torch-int8-dynamic":
        return Classifier.load(model_dir, device="cpu", backend="torch-int8")
    if name in ("onnx-fp32", "onnx-int8-static"):  # the product's backends, from the version's artefacts
        backend = "onnx" if name == "onnx-fp32" else "onnx-int8"
        classifier = Classifier.load(model_dir, device="cpu", backend=backend)
        if classifier.backend != backend:
            raise SystemExit(f"the {backend} artefact did not load for {model_dir}")
        return classifier
    if name.startswith("onnx-"):
        classifier = Classifier.load(model_dir, device="cpu", backend="onnx", onnx_file=Path(files[name]))
        classifier.backend = name
        return classifier
    base = Classifier.load(model_dir, device="cpu", backend="torch")
    if name == "torch-bf16":
        return base.with_runner(TorchRunner(base.model.to(torch.bfloat16), torch.device("cpu")), backend=name)
    if name == "torch-compile":
        compiled = torch.compile(base.model, dynamic=True)
        return base.with_runner(TorchRunner(compiled, torch.device("cpu")), backend=name)
    raise SystemExit(f"unknown variant {name!r}")


# --- measurements -----------------------------------------------------------------------------------
def accuracy_and_determinism(
    classifiers: dict[str, Any], reviews: Reviews, *, determinism_size: int, seed: int
) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    baseline_verdicts = None
    rng = random.Random(seed)
    probe = rng.sample(reviews.texts, determinism_size)
    for name, classifier in classifiers.items():
        began = time.perf_counter()
        verdicts = classifier.predict(reviews.texts)
        correct = sum(v.label == label for v, label in zip(verdicts, reviews.labels, strict=True))
        row: dict[str, Any] = {"accuracy": correct / len(reviews)}
        if baseline_verdicts is None:
            baseline_verdicts = verdicts
        row["agreement_with_fp32"] = sum(
            a.label == b.label for a, b in zip(verdicts, baseline_verdicts, strict=True)
        ) / len(reviews)
        row["max_prob_diff_vs_fp32"] = max(
            max(abs(a.probabilities[k] - b.probabilities[k]) for k in a.probabilities)
            for a, b in zip(verdicts, baseline_verdicts, strict=True)
        )
        in_batch = classifier.predict(probe, batch_size=DETERMINISM_BATCH)
        alone = [classifier.predict([text], batch_size=1)[0] for text in probe]
        row["batch_dependence"] = max(
            max(abs(a.probabilities[k] - b.probabilities[k]) for k in a.probabilities)
            for a, b in zip(alone, in_batch, strict=True)
        )
        row["scoring_seconds"] = round(time.perf_counter() - began, 1)
        rows[name] = row
        print(f"  {name}: {row}", file=sys.stderr, flush=True)
    fp32 = rows[BASELINE]["accuracy"]
    for row in rows.values():
        row["cost_points"] = round(100 * (fp32 - row["accuracy"]), 2)
    return rows


def speed(
    classifiers: dict[str, Any], texts: list[str], singles: list[str], *, chunk: int, seed: int
) -> dict[str, dict[str, Any]]:
    """Interleaved timing: each chunk of texts (and each single message) runs on every variant in turn."""
    names = list(classifiers)
    warm_up: dict[str, float] = {}
    for name, classifier in classifiers.items():  # warm-up: first calls allocate, pack weights, compile
        started = time.perf_counter()
        classifier.predict(texts[: 2 * chunk])
        classifier.predict(singles[:2], batch_size=1)
        warm_up[name] = time.perf_counter() - started
    rng = random.Random(seed)
    batch_seconds = dict.fromkeys(names, 0.0)
    load_before = os.getloadavg()
    for begin in range(0, len(texts), chunk):
        part = texts[begin : begin + chunk]
        rng.shuffle(names)
        for name in names:
            started = time.perf_counter()
            classifiers[name].predict(part)  # the default CPU batch size
            batch_seconds[name] += time.perf_counter() - started
    single_seconds: dict[str, list[float]] = {name: [] for name in names}
    for text in singles:
        rng.shuffle(names)
        for name in names:
            started = time.perf_counter()
            classifiers[name].predict([text], batch_size=1)
            single_seconds[name].append(time.perf_counter() - started)
    load_after = os.getloadavg()
    base_batch = batch_seconds[BASELINE]
    base_single = statistics.median(single_seconds[BASELINE])
    rows = {}
    for name in classifiers:
        single = statistics.median(single_seconds[name])
        rows[name] = {
            "messages_per_second": len(texts) / batch_seconds[name],
            "batch_ratio": base_batch / batch_seconds[name],
            "single_ms": 1000 * single,
            "single_ratio": base_single / single,
            "warm_up_seconds": warm_up[name],
        }
    rows["_load"] = {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in load_after]}
    return rows


def load_probe(name: str, model_dir: Path, files: dict[str, str], threads: int) -> dict[str, float]:
    """Run in a fresh process: seconds to load the variant and to answer its first message, and memory."""
    setup_torch(threads=threads, device="cpu", seed=0)
    import onnxruntime  # noqa: F401

    import classifier.model  # noqa: F401 - imports are not part of the load time

    rss_before = _rss_mb()
    started = time.perf_counter()
    loaded = load_variant(name, model_dir, files, threads)
    load_seconds = time.perf_counter() - started
    started = time.perf_counter()
    loaded.predict(["정말 재밌게 봤어요"])
    first_seconds = time.perf_counter() - started
    loaded.predict(["시간 낭비였다"] * 8)
    return {"load_s": load_seconds, "first_predict_s": first_seconds, "rss_mb": _rss_mb() - rss_before}


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def probe_in_subprocess(name: str, model_dir: Path, files: dict[str, str], threads: int) -> dict[str, float]:
    command = [
        sys.executable,
        "-m",
        "bench.bench_serving",
        "--probe",
        json.dumps({"name": name, "model_dir": str(model_dir), "files": files, "threads": threads}),
    ]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, timeout=900, check=False)
    if result.returncode != 0:
        return {"error": result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "failed"}
    return json.loads(result.stdout.strip().splitlines()[-1])


# --- the whole run ----------------------------------------------------------------------------------
def decide(models: dict[str, Any]) -> dict[str, Any]:
    """The issue's rule: the fastest path that is deterministic, costs <= 0.3 points and is faster than fp32."""
    verdicts = {}
    for variant in VARIANTS + OPT_IN_VARIANTS:
        if variant == BASELINE:
            continue
        reasons = []
        seen = False
        ratios = []
        for model_name, model in models.items():
            quality = model.get("quality", {}).get(variant)
            timing = model.get("speed", {}).get("2", {}).get(variant)
            if quality is None or timing is None:
                continue
            seen = True
            if quality["batch_dependence"] > DETERMINISTIC_WITHIN:
                reasons.append(f"{model_name}: batch-dependent ({quality['batch_dependence']:.1e})")
            if quality["cost_points"] > MAX_COST_POINTS:
                reasons.append(f"{model_name}: costs {quality['cost_points']:.2f} points")
            if timing["batch_ratio"] <= 1.05:
                reasons.append(f"{model_name}: not faster in batches ({timing['batch_ratio']:.2f}x)")
            ratios.append(timing["batch_ratio"])
        if seen:
            verdicts[variant] = {
                "qualifies": not reasons,
                "reasons": reasons,
                "batch_ratio_2_threads": ratios,
            }
    qualifying = [name for name, verdict in verdicts.items() if verdict["qualifies"]]
    chosen = max(qualifying, key=lambda name: min(verdicts[name]["batch_ratio_2_threads"]), default=BASELINE)
    return {"chosen": chosen, "variants": verdicts}


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=("e5", "scratch"), default=["e5", "scratch"])
    parser.add_argument(
        "--e5-model", type=Path, default=None, help=f"default {QUICKSTART_E5} if it exists, else trained"
    )
    parser.add_argument("--scratch-model", type=Path, default=None, help="default: trained here (~3 min)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS + OPT_IN_VARIANTS)
    parser.add_argument("--accuracy-size", type=int, default=10_000, help="NSMC test reviews scored")
    parser.add_argument(
        "--determinism-size", type=int, default=DETERMINISM_BATCH, help="texts alone vs in a batch"
    )
    parser.add_argument(
        "--speed-size", type=int, default=640, help="reviews timed in batches, per thread count"
    )
    parser.add_argument("--single-count", type=int, default=64, help="messages timed one at a time")
    parser.add_argument("--chunk", type=int, default=64, help="texts per interleaving step")
    parser.add_argument("--thread-counts", type=int, nargs="+", default=[2, 1])
    parser.add_argument(
        "--accuracy-threads",
        type=int,
        default=1,
        help="threads while scoring accuracy (results do not depend on it; 1 suffers least from other load)",
    )
    parser.add_argument("--timing-only", action="store_true", help="skip accuracy and determinism")
    parser.add_argument("--no-probes", action="store_true", help="skip the load-time and memory subprocesses")
    parser.add_argument("--probe", default=None, help=argparse_hidden())
    args = parser.parse_args(argv)
    if args.probe:
        spec = json.loads(args.probe)
        print(json.dumps(load_probe(spec["name"], Path(spec["model_dir"]), spec["files"], spec["threads"])))
        return 0
    if BASELINE not in args.variants:
        args.variants.insert(0, BASELINE)
    device = setup_torch(threads=max(args.thread_counts), device="cpu", seed=args.seed)
    import torch

    started = time.perf_counter()
    env = environment(device)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as workdir:
        for model_name in args.models:
            model_dir, source = model_dir_for(model_name, args, Path(workdir))
            calibration = sample_nsmc(
                shared_dir=args.shared_dir, split="train", count=CALIBRATION_SIZE, seed=CALIBRATION_SEED
            ).texts
            built = build_variant_files(model_dir, args.variants, calibration)
            files = {name: str(path) for name, path in built["files"].items()}
            model_result: dict[str, Any] = {
                "source": source,
                "build_seconds": built["build_seconds"],
                "metrics_accuracy": json.loads((model_dir / "metrics.json").read_text()).get("accuracy"),
            }
            if not args.timing_only:
                torch.set_num_threads(args.accuracy_threads)
                reviews = sample_nsmc(
                    shared_dir=args.shared_dir, split="test", count=args.accuracy_size, seed=args.seed
                )
                print(f"{model_name}: scoring {len(reviews)} reviews", file=sys.stderr, flush=True)
                classifiers = {
                    name: load_variant(name, model_dir, files, args.accuracy_threads)
                    for name in args.variants
                }
                model_result["quality"] = accuracy_and_determinism(
                    classifiers, reviews, determinism_size=args.determinism_size, seed=args.seed
                )
                del classifiers
            model_result["speed"] = {}
            timing_reviews = sample_nsmc(
                shared_dir=args.shared_dir,
                split="test",
                count=args.speed_size + args.single_count,
                seed=args.seed + 7,
            )
            for threads in args.thread_counts:
                torch.set_num_threads(threads)
                classifiers = {name: load_variant(name, model_dir, files, threads) for name in args.variants}
                print(f"{model_name}: timing with {threads} thread(s)", file=sys.stderr, flush=True)
                model_result["speed"][str(threads)] = speed(
                    classifiers,
                    timing_reviews.texts[: args.speed_size],
                    timing_reviews.texts[args.speed_size :],
                    chunk=args.chunk,
                    seed=args.seed,
                )
                del classifiers
            if not args.no_probes:
                model_result["load"] = {
                    str(threads): {
                        name: probe_in_subprocess(name, model_dir, files, threads) for name in args.variants
                    }
                    for threads in args.thread_counts[:1]
                }
            results[model_name] = model_result
            print_tables(model_name, model_result, args.variants)

    if args.timing_only:
        decision = {"chosen": None, "note": "timing only: the rule also needs accuracy and batch-dependence"}
    else:
        decision = decide(results)
    print(f"\nchosen by the rule: {decision['chosen']}")
    for name, verdict in decision.get("variants", {}).items():
        print(f"  {name}: {'qualifies' if verdict['qualifies'] else '; '.join(verdict['reasons'])}")
    path = write_result(
        NAME,
        {
            "environment": env,
            "settings": {
                key: (str(value) if isinstance(value, Path) else value)
                for key, value in vars(args).items()
                if key != "probe"
            },
            "wall_seconds": round(time.perf_counter() - started, 1),
            "models": results,
            "decision": decision,
        },
        args.output,
    )
    print(f"\nresult written to {path}")
    return 0


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


def print_tables(model_name: str, result: dict[str, Any], variants: list[str]) -> None:
    rows = []
    for name in variants:
        row: dict[str, Any] = {"variant": name}
        quality = result.get("quality", {}).get(name)
        if quality:
            row.update(
                {
                    "accuracy %": 100 * quality["accuracy"],
                    "cost (points)": quality["cost_points"],
                    "agree w/ fp32 %": 100 * quality["agreement_with_fp32"],
                    "batch-dep.": f"{quality['batch_dependence']:.1e}",
                }
            )
        for threads, timing in result.get("speed", {}).items():
            if name in timing:
                row[f"{threads}t msg/s"] = timing[name]["messages_per_second"]
                row[f"{threads}t batch ×"] = timing[name]["batch_ratio"]
                row[f"{threads}t single ms"] = timing[name]["single_ms"]
                row[f"{threads}t single ×"] = timing[name]["single_ratio"]
        for probes in result.get("load", {}).values():
            probe = probes.get(name, {})
            row["load s"] = probe.get("load_s")
            row["RSS MB"] = probe.get("rss_mb")
        rows.append(row)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    print(f"\n## {model_name} ({result['source']})\n")
    print(markdown_table(rows, columns))
    for threads, timing in result.get("speed", {}).items():
        print(f"load average during the {threads}-thread timing: {timing['_load']}")


if __name__ == "__main__":
    raise SystemExit(main())
