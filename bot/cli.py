"""`moderator`: the one command-line entry point.

Each package registers its own subcommands; heavy imports (torch, telegram) happen
inside the command handlers so that `moderator --help` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# module path -> it exposes `register(subparsers)`; each subcommand sets `func(args) -> int`.
COMMAND_MODULES = (
    "trainer.cli",  # train
    "classifier.cli",  # predict
    "bot.storage.cli",  # db upgrade, db purge
    "bot.telegram.cli",  # run, chat, model
    "bot.retraining.cli",  # retrain
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
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # httpx logs every request URL at INFO, and the Bot API URL contains the token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
