"""Exporting a run's training set: the deterministic hold-out, the corrections CSV, the trainer's flags."""

from __future__ import annotations

import csv

from retraining_helpers import add_corrections, make_settings

from bot.retraining.dataset import (
    base_train_config,
    is_held_out,
    split_corrections,
    write_corrections_csv,
)
from bot.storage import Correction, export_corrections
from trainer.cli import arguments_for


def test_hold_out_is_deterministic_by_verdict_id_and_close_to_the_fraction():
    ids = range(1, 4001)
    held = [verdict_id for verdict_id in ids if is_held_out(verdict_id, 0.2)]
    assert held == [verdict_id for verdict_id in ids if is_held_out(verdict_id, 0.2)]
    assert 0.17 < len(held) / 4000 < 0.23
    # A larger fraction only adds verdicts: one held out stays held out.
    assert set(held) <= {verdict_id for verdict_id in ids if is_held_out(verdict_id, 0.3)}
    assert not any(is_held_out(verdict_id, 0.0) for verdict_id in ids)


def test_split_skips_purged_texts_and_collects_feedback_ids():
    corrections = [
        Correction(verdict_id=i, text=f"리뷰 {i}", label=i % 2, feedback_ids=[10 * i, 10 * i + 1])
        for i in range(1, 41)
    ]
    corrections.append(
        Correction(verdict_id=99, text=None, label=1, feedback_ids=[990])
    )  # purged by retention
    split = split_corrections(corrections, holdout_fraction=0.25)
    assert len(split.train) + len(split.holdout) == 40
    assert split.holdout and split.train
    assert {c.verdict_id for c in split.holdout} == {i for i in range(1, 41) if is_held_out(i, 0.25)}
    assert 990 not in split.feedback_ids and len(split.feedback_ids) == 80


def test_corrections_csv_uses_label_names_and_survives_commas_and_newlines(tmp_path):
    split = split_corrections(
        [Correction(verdict_id=1, text='재밌다, "진짜"\n두 줄', label=1, feedback_ids=[1])],
        holdout_fraction=0.0,
    )
    path = write_corrections_csv(tmp_path / "c.csv", split.train, {0: "부정", 1: "긍정"})
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows == [{"text": '재밌다, "진짜"\n두 줄', "label": "긍정"}]


async def test_exported_corrections_respect_the_agreement_rule(tmp_path, session_factory):
    await add_corrections(session_factory, [("두 사람이 고친 리뷰", 1)])
    await add_corrections(session_factory, [("한 사람만 고친 리뷰", 0)], users=(1003,), first_message_id=50)
    async with session_factory() as session:
        agreed = await export_corrections(session, require_agreement=True)
        everything = await export_corrections(session, require_agreement=False)
    assert [c.text for c in agreed] == ["두 사람이 고친 리뷰"]
    assert len(everything) == 2


def test_trainer_flags_reproduce_the_config(tmp_path):
    import argparse

    from trainer.cli import add_train_arguments, config_from_args  # the trainer's own parser

    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    settings = make_settings(tmp_path, korpora_root=tmp_path / "korpora")
    config = base_train_config(
        settings, output=tmp_path / "out", base="scratch", extra=tmp_path / "extra.csv"
    )
    assert config_from_args(parser.parse_args(arguments_for(config))) == config
    assert (
        config.extra_weight == settings.correction_weight and config.max_length == settings.retrain_max_length
    )

    everything = base_train_config(
        make_settings(
            tmp_path, base_data=tmp_path / "reviews.csv", retrain_learning_rate=None, retrain_max_length=None
        ),
        output=tmp_path / "out",
        base="/models/active",
        extra=None,
    )
    assert config_from_args(parser.parse_args(arguments_for(everything))) == everything
    assert everything.korpora_root is None and everything.data == tmp_path / "reviews.csv"
