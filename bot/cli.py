"""`moderator`: the one command-line entry point.

Each package registers its own subcommands; heavy imports (torch, telegram) happen
inside the command handlers so that `moderator --help` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import os
import sys
import traceback

# module path -> it exposes `register(subparsers)`; each subcommand sets `func(args) -> int`.
COMMAND_MODULES = (
    "trainer.cli",  # train
    "classifier.cli",  # predict
    "bot.storage.cli",  # db upgrade, db purge
    "bot.telegram.cli",  # run, chat, model
    "bot.retraining.cli",  # retrain
    "bot.jobs.worker_cli",  # worker
    "bot.web.cli",  # web
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="moderator", description="Korean review moderator (BERT + Telegram)."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    from bot.telegram.redaction import (
        install_redacting_excepthooks,
        install_token_redaction,
        redact,
        register_secret,
    )

    # Before anything can fail or log: no traceback, log line or error message may show the bot token.
    install_redacting_excepthooks()
    token = os.environ.get("TELEGRAM_BOT_TOKEN", "").strip()
    if token:
        register_secret(token)  # `moderator run` also registers a token read from .env, before it connects
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # httpx logs every request URL at INFO, and the Bot API URL contains the token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if not args.verbose:
        logging.getLogger("alembic").setLevel(logging.WARNING)  # a dozen INFO lines per migration check
    if token:
        install_token_redaction(token)
    if getattr(args, "needs_torch", False) and importlib.util.find_spec("torch") is None:
        print(
            f"error: `moderator {args.command}` trains models, and torch is not installed here. Install the train "
            "extra (pip install 'review-moderator[train]'; `make` does), or run it on the host that has it.",
            file=sys.stderr,
        )
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # noqa: BLE001 - one line, never the token; the traceback with -v
        print(f"error: {_one_line(error, verbose=args.verbose)}", file=sys.stderr)
        if args.verbose:
            traceback_text = "".join(traceback.format_exception(error))
            print(redact(traceback_text), file=sys.stderr, end="")
        return 1


def _one_line(error: BaseException, *, verbose: bool) -> str:
    from bot.telegram.redaction import redact

    text = " ".join(str(error).split())
    if type(error).__name__ != "FatalError":  # a FatalError's message is written for the operator already
        text = f"{type(error).__name__}: {text}" if text else type(error).__name__
        text += "" if verbose else " (run with -v for the traceback)"
    return redact(text)


if __name__ == "__main__":
    sys.exit(main())
