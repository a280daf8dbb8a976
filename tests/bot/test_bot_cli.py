"""`moderator model import|list|activate`, `chat`, and `run`'s start-up checks, in-process."""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import pytest
from bot_identity import TOKEN

from bot.moderation import texts
from bot.settings import get_settings
from bot.telegram import cli


@pytest.fixture
def moderator(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Runs a `moderator` subcommand of bot.telegram.cli with settings from the environment."""
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'db' / 'moderator.db'}")
    monkeypatch.setenv("MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)  # no developer .env
    get_settings.cache_clear()
    parser = argparse.ArgumentParser(prog="moderator")
    cli.register(parser.add_subparsers(dest="command", required=True))

    def run(*argv: str) -> int:
        get_settings.cache_clear()
        args = parser.parse_args(argv)
        return args.func(args)

    yield run
    get_settings.cache_clear()


def test_run_without_token_or_model_explains_what_to_do(moderator, monkeypatch, capsys):
    assert moderator("run") == cli.EXIT_NOT_READY
    assert "TELEGRAM_BOT_TOKEN" in capsys.readouterr().err
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    assert moderator("run") == cli.EXIT_NOT_READY
    err = capsys.readouterr().err
    assert cli.FIRST_MODEL_HINT in err and TOKEN not in err
    assert moderator("chat") == cli.EXIT_NOT_READY


def test_model_import_list_activate_and_chat(moderator, bot_model_dir, tmp_path, monkeypatch, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    assert moderator("model", "import", str(broken)) == 1
    assert "Cannot import" in capsys.readouterr().err

    assert moderator("model", "import", str(bot_model_dir)) == 0
    out = capsys.readouterr().out
    assert "#1" in out and "active" in out
    copies = list((tmp_path / "models").iterdir())
    assert len(copies) == 1 and (copies[0] / "config.json").exists()
    assert moderator("model", "import", str(bot_model_dir)) == 0
    assert "moderator model activate 2" in capsys.readouterr().out

    assert moderator("model", "list") == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["id", "task", "status"]
    statuses = {line.split()[0]: line.split()[1:3] for line in table[1:]}
    assert statuses == {"1": ["sentiment", "active"], "2": ["sentiment", "candidate"]}
    assert moderator("model", "activate", "2") == 0
    assert moderator("model", "activate", "99") == 1
    moderator("model", "list")
    statuses = {line.split()[0]: line.split()[2] for line in capsys.readouterr().out.splitlines()[1:]}
    assert statuses["2"] == "active" and statuses["1"] != "active"

    lines = [
        "정말 감동적인 영화였어요\n",
        "/feedback wrong\n",
        "/feedback wrong\n",
        "/stats\n",
        "/model\n",
        "/retrain\n",
        "/nonsense\n",
        "",
    ]
    monkeypatch.setattr(sys, "stdin", io.StringIO("".join(lines)))
    assert moderator("chat") == 0
    out = capsys.readouterr().out
    assert texts.CHAT_WELCOME in out and ("긍정 리뷰 (" in out or "부정 리뷰 (" in out)
    assert "기록했어요" in out and "이미" in out and "판정: 1건" in out and "#2" in out
    assert "재학습 #1" in out and texts.CHAT_UNKNOWN_COMMAND in out

    # a second session continues the message ids: its first review is a new verdict, not the old one
    monkeypatch.setattr(sys, "stdin", io.StringIO("두 번째 세션의 리뷰\n/stats\n"))
    assert moderator("chat") == 0
    assert "판정: 2건" in capsys.readouterr().out
