"""`moderator train` / `python -m trainer`: the same options, one parser definition."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import sys
from pathlib import Path
from typing import get_args

from trainer.config import DEFAULT_BASES, BestMetric, TrainConfig, TrainingError

logger = logging.getLogger(__name__)

HELP = "fine-tune a Hugging Face encoder (or a scratch BERT) into a model version directory"


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = TrainConfig(output=Path("unused"))
    parser.add_argument(
        "--output", type=Path, required=True, help="model version directory to create (must not exist)"
    )
    parser.add_argument(
        "--base",
        default="",
        help="hub name, local checkpoint folder, or 'scratch' (default per task: "
        + ", ".join(f"{task} {base}" for task, base in DEFAULT_BASES.items())
        + "; offline use a local folder such as ../shared/models/multilingual-e5-small-ko)",
    )
    data = parser.add_argument_group("data")
    data.add_argument(
        "--task",
        choices=tuple(DEFAULT_BASES),
        default=defaults.task,
        help="what the model judges, and its built-in data without --data: NSMC for sentiment, BEEP! train "
        "for toxicity (its dev split is never used, so it stays a fair test) (default %(default)s)",
    )
    data.add_argument(
        "--korpora-root",
        type=Path,
        default=os.environ.get("KORPORA_ROOT") or None,
        help="Korpora root_dir holding nsmc/ (default: $KORPORA_ROOT, else Korpora's ~/Korpora)",
    )
    data.add_argument("--data", type=Path, help="CSV/TSV with text and label columns instead of NSMC")
    data.add_argument(
        "--text-col", default=defaults.text_col, help="text column of --data (default %(default)s)"
    )
    data.add_argument(
        "--label-col", default=defaults.label_col, help="label column of --data (default %(default)s)"
    )
    data.add_argument(
        "--eval-data", type=Path, help="evaluation CSV/TSV (same columns); default: hold out from --data"
    )
    data.add_argument(
        "--train-size",
        type=_size,
        default=defaults.train_size,
        help="training rows to sample; 'all' for every row (default %(default)s)",
    )
    data.add_argument(
        "--eval-size",
        type=_size,
        default=defaults.eval_size,
        help="evaluation rows to sample; 'all' for every row (default %(default)s)",
    )
    data.add_argument(
        "--min-chars",
        type=int,
        default=defaults.min_chars,
        help="drop shorter documents (default %(default)s)",
    )
    data.add_argument(
        "--extra",
        type=Path,
        help="extra labelled examples, CSV/TSV with text,label and an optional integer weight column "
        "(label = id or name; each row repeats weight x --extra-weight times)",
    )
    data.add_argument(
        "--exclude",
        type=Path,
        help="CSV/TSV with a text column: those texts are dropped from the training and validation data "
        "(e.g. a fixed test set that must stay unseen)",
    )
    data.add_argument(
        "--extra-weight",
        type=int,
        default=defaults.extra_weight,
        help="oversampling factor for --extra (default %(default)s)",
    )
    data.add_argument(
        "--extra-neighbours",
        type=int,
        default=defaults.extra_neighbours,
        help="also train on this many of the base data's most similar labelled rows to each --extra example "
        "(character n-gram TF-IDF), taken out of --train-size, half of it at most (default %(default)s)",
    )
    data.add_argument(
        "--keep-class-prior",
        action="store_true",
        help="draw the random base rows class by class so that the training set, --extra rows included, keeps "
        "the base data's class mix",
    )
    data.add_argument(
        "--kmhas-rows",
        type=int,
        default=defaults.kmhas_rows,
        help="toxicity: also train on this many K-MHaS comments (its training part, never the held-out fifth "
        "scores use; clean and toxic in its own mix), read as BEEP!'s classes: aimed at origin, age, gender, race "
        "or religion is 혐오, any other hate category 공격적, none 정상 (default %(default)s)",
    )
    recipe = parser.add_argument_group("recipe")
    recipe.add_argument("--epochs", type=float, default=defaults.epochs, help="default %(default)s")
    recipe.add_argument("--batch-size", type=int, default=defaults.batch_size, help="default %(default)s")
    recipe.add_argument(
        "--learning-rate", type=float, default=None, help="default 5e-5, or 1e-3 with --base scratch"
    )
    recipe.add_argument(
        "--head-learning-rate",
        type=float,
        default=None,
        help="learning rate of the layers the base checkpoint lacks (the new head; e5's pooler), which start "
        "from random weights (default: --learning-rate)",
    )
    recipe.add_argument(
        "--balanced-class-weights",
        action="store_true",
        help="weight each class's loss by rows / (classes x its rows), so each class counts alike, as in a macro-F1",
    )
    recipe.add_argument(
        "--weight-decay", type=float, default=defaults.weight_decay, help="default %(default)s"
    )
    recipe.add_argument(
        "--warmup-ratio", type=float, default=defaults.warmup_ratio, help="default %(default)s"
    )
    recipe.add_argument(
        "--max-length",
        type=int,
        default=None,
        help="truncate at this many tokens (default: the model's maximum)",
    )
    recipe.add_argument(
        "--early-stopping-patience",
        type=int,
        default=defaults.early_stopping_patience,
        help="evaluations without improvement before stopping; 0 disables (default %(default)s)",
    )
    recipe.add_argument(
        "--best-metric",
        choices=get_args(BestMetric),
        default=defaults.best_metric,
        help="keep the checkpoint with the best validation loss or accuracy (default %(default)s)",
    )
    recipe.add_argument(
        "--fine-tuned-share",
        type=float,
        default=defaults.fine_tuned_share,
        help="save this share of the fine-tuned weights and the rest of the base's, when the base is a classifier"
        " over the same labels (WiSE-FT; default %(default)s: the fine-tuned weights)",
    )
    recipe.add_argument("--seed", type=int, default=defaults.seed, help="default %(default)s")
    scratch = parser.add_argument_group("scratch model (--base scratch)")
    scratch.add_argument(
        "--scratch-hidden", type=int, default=defaults.scratch_hidden, help="default %(default)s"
    )
    scratch.add_argument(
        "--scratch-layers", type=int, default=defaults.scratch_layers, help="default %(default)s"
    )
    scratch.add_argument(
        "--scratch-heads", type=int, default=defaults.scratch_heads, help="default %(default)s"
    )
    scratch.add_argument(
        "--scratch-vocab-size", type=int, default=defaults.scratch_vocab_size, help="default %(default)s"
    )
    parser.add_argument(
        "--checkpoint-dir",
        type=Path,
        help="folder for epoch checkpoints, deleted when training ends (default: a temporary folder)",
    )
    parser.add_argument(
        "--progress-json",
        action="store_true",
        help="print one JSON line per progress/eval/done event on stdout",
    )


def _size(value: str) -> int | None:
    if value.lower() == "all":
        return None
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of rows or 'all', got {value!r}") from None


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        output=args.output,
        base=args.base,
        task=args.task,
        korpora_root=args.korpora_root,
        data=args.data,
        text_col=args.text_col,
        label_col=args.label_col,
        eval_data=args.eval_data,
        train_size=args.train_size,
        eval_size=args.eval_size,
        min_chars=args.min_chars,
        extra=args.extra,
        extra_weight=args.extra_weight,
        extra_neighbours=args.extra_neighbours,
        keep_class_prior=args.keep_class_prior,
        exclude=args.exclude,
        kmhas_rows=args.kmhas_rows,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        head_learning_rate=args.head_learning_rate,
        weight_decay=args.weight_decay,
        balanced_class_weights=args.balanced_class_weights,
        warmup_ratio=args.warmup_ratio,
        max_length=args.max_length,
        early_stopping_patience=args.early_stopping_patience,
        best_metric=args.best_metric,
        fine_tuned_share=args.fine_tuned_share,
        seed=args.seed,
        progress_json=args.progress_json,
        checkpoint_dir=args.checkpoint_dir,
        scratch_hidden=args.scratch_hidden,
        scratch_layers=args.scratch_layers,
        scratch_heads=args.scratch_heads,
        scratch_vocab_size=args.scratch_vocab_size,
    )


def arguments_for(config: TrainConfig) -> list[str]:
    """`moderator train` / `python -m trainer` flags that reproduce `config`: the inverse of `config_from_args`.

    Every field has the flag of its name, so a new field needs no change here.
    """
    flags: list[str] = []
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        flag = "--" + field.name.replace("_", "-")
        if field.name in ("train_size", "eval_size"):
            flags += [flag, "all" if value is None else str(value)]
        elif isinstance(value, bool):
            flags += [flag] if value else []
        elif value is not None:
            flags += [flag, str(value)]
    return flags


def run_train(args: argparse.Namespace) -> int:
    from trainer.training import train

    _pin_torch_threads()
    # A terminated trainer (the bot stopping a run) unwinds like Ctrl-C, so its temporary files are removed.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        metrics = train(config_from_args(args))
    except TrainingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    logger.info("accuracy %.4f, macro F1 %.4f -> %s", metrics["accuracy"], metrics["macro_f1"], args.output)
    return 0


def _pin_torch_threads() -> None:
    """torch on OMP_NUM_THREADS threads when it is set, explicitly: the bot sets it for its trainer child
    (bot.retraining.process), so a run trains the same model on a machine with more cores."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    if value.isdigit() and int(value) > 0:
        import torch

        torch.set_num_threads(int(value))


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def register(subparsers) -> None:
    parser = subparsers.add_parser("train", help=HELP, description=HELP)
    add_train_arguments(parser)
    parser.set_defaults(func=run_train, needs_torch=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer", description=HELP)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    add_train_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return run_train(args)
