"""`make run`'s choice of base checkpoint: where the model hub does not answer, the quick start asks only the local
cache instead of waiting out huggingface_hub's retries, then falls back to the shared encoder."""

from __future__ import annotations

import socket

import pytest
import transformers
from huggingface_hub import constants

from bot import quickstart


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def offline_hub(monkeypatch, tmp_path):
    """The hub's endpoint is a 127.0.0.1 port nobody listens on; the cache is empty (huggingface_hub reads both
    from its constants, set at import)."""
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-home" / "hub"))


def test_a_closed_hub_port_is_told_apart_from_a_listening_one(offline_hub, monkeypatch):
    assert quickstart.hub_answers(timeout_seconds=1.0) is False
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{listener.getsockname()[1]}")
        assert quickstart.hub_answers(timeout_seconds=1.0) is True


def test_offline_the_configured_hub_name_is_looked_up_in_the_cache_only_then_the_shared_encoder_is_used(
    offline_hub, monkeypatch, capsys
):
    calls = []
    original = transformers.AutoConfig.from_pretrained

    def spy(name, **kwargs):
        calls.append((name, kwargs))
        return original(name, **kwargs)

    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", spy)
    chosen = quickstart.choose_base("kykim/bert-kor-base")
    assert calls == [("kykim/bert-kor-base", {"local_files_only": True})]
    expected = str(quickstart.SHARED_ENCODER) if quickstart.SHARED_ENCODER.exists() else "scratch"
    assert chosen == expected
    assert "kykim/bert-kor-base is not reachable" in capsys.readouterr().out


def test_a_local_checkpoint_directory_is_used_as_it_is(tmp_path):
    assert quickstart.choose_base(str(tmp_path)) == str(tmp_path)
