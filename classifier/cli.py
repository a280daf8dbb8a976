"""`moderator predict`: classify texts given as arguments, or stream them from stdin line by line."""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from classifier.errors import ModelDirError
from classifier.tasks import TOXICITY, task_of_label

if TYPE_CHECKING:
    from classifier.model import Classifier, Verdict

EXIT_BAD_MODEL = 2
EXIT_SOME_INPUT_REJECTED = 1
STREAM_CHUNK_LINES = 256  # stdin lines read, classified and written per step: bounded memory, steady output


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="classify reviews with a model version directory",
        description=(
            "Classify each TEXT argument, or each line of stdin when no TEXT is given "
            "(streamed in batches, so files of any length work)."
        ),
    )
    parser.add_argument("--model", required=True, type=Path, metavar="DIR", help="model version directory")
    parser.add_argument("texts", nargs="*", metavar="TEXT", help="texts to classify (default: stdin lines)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per input")
    parser.add_argument(
        "--quantize",
        "--fast",
        dest="quantize",
        action="store_true",
        help=(
            "the CPU fast path, as the bot serves with FAST_INFERENCE=true: static int8 in ONNX Runtime, "
            "from the files built when the version was imported (without them: torch fp32, with a warning)"
        ),
    )
    parser.add_argument(
        "--batch-size",
        type=_positive_int,
        default=None,
        metavar="N",
        help="texts per model batch (default: 8 on a CPU, 64 on a GPU)",
    )
    parser.add_argument(
        "--device", default=None, help="torch device, e.g. cpu or cuda (default: cuda if available)"
    )
    parser.set_defaults(func=run_predict)


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def format_verdict(verdict: Verdict) -> str:
    """The tutorial's answer: `[긍정 리뷰 입니다.] 확률은: 99.676% 입니다.` (`[혐오 표현 입니다.] ...` for toxicity)."""
    # The toxicity task's labels judge an expression, not the review's sentiment.
    noun = "표현" if task_of_label(verdict.label_name) == TOXICITY else "리뷰"
    return f"[{verdict.label_name} {noun} 입니다.] 확률은: {verdict.confidence * 100:.3f}% 입니다."


def run_predict(args: argparse.Namespace) -> int:
    from transformers.utils import logging as transformers_logging

    from classifier.model import Classifier

    transformers_logging.disable_progress_bar()  # keep stderr for our own per-line messages
    try:
        classifier = Classifier.load(args.model, device=args.device, quantize=args.quantize)
    except ModelDirError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_MODEL

    if args.texts:
        lines: Iterable[str] = args.texts
    else:
        # Undecodable bytes become U+FFFD instead of ending the stream.
        sys.stdin.reconfigure(encoding="utf-8", errors="replace")
        lines = (line.rstrip("\r\n") for line in sys.stdin)
    sys.stdout.reconfigure(encoding="utf-8")
    rejected = stream_predictions(
        classifier, lines, batch_size=args.batch_size, as_json=args.json, out=sys.stdout, err=sys.stderr
    )
    return EXIT_SOME_INPUT_REJECTED if rejected else 0


def stream_predictions(
    classifier: Classifier,
    lines: Iterable[str],
    *,
    batch_size: int | None,
    as_json: bool,
    out: TextIO,
    err: TextIO,
    chunk_lines: int = STREAM_CHUNK_LINES,
) -> int:
    """Classify `lines` batch by batch in input order; return how many lines were rejected (blank)."""
    from classifier.text import has_visible_text

    rejected = 0
    for batch_start, batch in _numbered_batches(lines, chunk_lines):
        texts = [text for text in batch if has_visible_text(text)]
        verdicts = iter(classifier.predict(texts, batch_size=batch_size)) if texts else iter(())
        for line_number, text in enumerate(batch, start=batch_start):
            if not has_visible_text(text):
                rejected += 1
                message = f"input {line_number}: empty or whitespace-only text; there is nothing to classify"
                if as_json:
                    out.write(json.dumps({"text": text, "error": message}, ensure_ascii=False) + "\n")
                else:
                    err.write(f"error: {message}\n")
                continue
            verdict = next(verdicts)
            if as_json:
                out.write(json.dumps(verdict.to_json_dict(text), ensure_ascii=False) + "\n")
            else:
                out.write(format_verdict(verdict) + "\n")
        out.flush()
        err.flush()
    return rejected


def _numbered_batches(lines: Iterable[str], batch_size: int) -> Iterator[tuple[int, list[str]]]:
    """Chunks of at most batch_size lines with the 1-based number of each chunk's first line."""
    iterator = iter(lines)
    line_number = 1
    while batch := list(itertools.islice(iterator, batch_size)):
        yield line_number, batch
        line_number += len(batch)
