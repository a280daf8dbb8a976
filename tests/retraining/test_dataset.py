"""A run's data: the held-out slice of human labels, class-balanced weights, the fixed evaluation set (never
trained on), fresh base rows per run, and the trainer flags."""

from __future__ import annotations

import csv
from collections import Counter

import pytest
from retraining_helpers import add_corrections, make_settings

from bot.retraining.dataset import (
    MAX_CLASS_BOOST,
    HumanExample,
    base_train_config,
    class_balanced_weights,
    class_mix,
    gate_eval_set,
    human_label_rule,
    human_label_weights,
    is_held_out,
    split_human_labels,
    write_human_labels_csv,
)
from bot.storage import HumanLabel, export_human_labels
from trainer.cli import arguments_for

NAMES = {0: "부정", 1: "긍정"}


def test_hold_out_is_deterministic_by_verdict_id_and_close_to_the_fraction():
    ids = range(1, 4001)
    held = [verdict_id for verdict_id in ids if is_held_out(verdict_id, 0.2)]
    assert held == [verdict_id for verdict_id in ids if is_held_out(verdict_id, 0.2)]
    assert 0.17 < len(held) / 4000 < 0.23
    # A larger fraction only adds verdicts: one held out stays held out.
    assert set(held) <= {verdict_id for verdict_id in ids if is_held_out(verdict_id, 0.3)}
    assert not any(is_held_out(verdict_id, 0.0) for verdict_id in ids)


def test_the_held_out_slice_keeps_each_class_share():
    labels = [
        HumanLabel(verdict_id=i, text=f"리뷰 {i}", label=int(i % 5 == 0), feedback_ids=[i])
        for i in range(1, 2001)
    ]
    split = split_human_labels(labels, holdout_fraction=0.2)
    for label in (0, 1):
        total = sum(1 for example in labels if example.label == label)
        held = sum(1 for example in split.holdout if example.label == label)
        assert 0.15 < held / total < 0.25, (label, held, total)
    assert not {e.verdict_id for e in split.holdout} & {e.verdict_id for e in split.train}


def test_split_skips_purged_texts_and_keeps_what_the_gate_needs():
    labels = [
        HumanLabel(
            verdict_id=i,
            text=f"리뷰 {i}",
            label=i % 2,
            predicted=1,
            trusted=i == 3,
            feedback_ids=[10 * i, 10 * i + 1],
        )
        for i in range(1, 41)
    ]
    labels.append(HumanLabel(verdict_id=99, text=None, label=1, feedback_ids=[990]))  # purged by retention
    split = split_human_labels(labels, holdout_fraction=0.25)
    assert len(split.train) + len(split.holdout) == 40
    assert {c.verdict_id for c in split.holdout} == {i for i in range(1, 41) if is_held_out(i, 0.25)}
    assert 990 not in split.feedback_ids and len(split.feedback_ids) == 80
    examples = {e.verdict_id: e for e in (*split.train, *split.holdout)}
    assert examples[3].trusted and examples[1].predicted == 1


@pytest.mark.parametrize(
    ("counts", "average"),
    [
        ({1: 70, 0: 7}, 4),
        ({1: 40, 0: 40}, 4),
        ({1: 30, 0: 10}, 4),
        ({0: 12}, 4),
        ({1: 50, 0: 20}, 8),
        ({1: 9, 0: 2}, 4),
    ],
)
def test_class_balanced_weights_give_every_class_the_same_rows(counts, average):
    labels = [label for label, count in counts.items() for _ in range(count)]
    weights = class_balanced_weights(labels, average_weight=average)
    rows = Counter()
    for label, weight in zip(labels, weights, strict=True):
        rows[label] += weight
    assert max(rows.values()) - min(rows.values()) <= 1  # balanced as designed
    nominal = average * len(labels) / len(counts)
    if all(nominal <= average * MAX_CLASS_BOOST * count for count in counts.values()):
        assert abs(sum(rows.values()) - average * len(labels)) <= len(counts)  # the nominal total
    else:  # a rare class hit the cap: the others came down to its level
        assert min(rows.values()) == average * MAX_CLASS_BOOST * min(counts.values())
    for label in counts:  # within a class, examples differ by at most one repeat
        own = [weight for weight, of in zip(weights, labels, strict=True) if of == label]
        assert max(own) - min(own) <= 1 and min(own) >= 1


def test_a_class_with_very_few_labels_is_boosted_at_most_to_the_cap():
    labels = [1] * 300 + [0] * 3
    weights = class_balanced_weights(labels, average_weight=4)
    assert set(weights[300:]) == {4 * MAX_CLASS_BOOST}  # 48 rows: the cap
    assert set(weights[:300]) == {1}  # the majority comes down as far as it can (each example once)


def test_correction_balance_none_and_prior_keep_the_labels_class_mix():
    labels = [1] * 30 + [0] * 10
    assert human_label_weights(labels, average_weight=4, balance="none") == [4] * 40
    assert human_label_weights(labels, average_weight=4, balance="prior") == [4] * 40
    balanced = human_label_weights(labels, average_weight=4, balance="classes")
    assert balanced == class_balanced_weights(labels, average_weight=4)
    assert sum(balanced[:30]) == sum(balanced[30:]) == 80  # 160 rows, half each
    with pytest.raises(ValueError, match="prior, classes or none"):
        human_label_weights(labels, average_weight=4, balance="even")


@pytest.mark.parametrize(("balance", "keeps_prior"), [("prior", True), ("classes", False), ("none", False)])
def test_only_the_prior_balance_asks_the_trainer_to_keep_the_class_mix(tmp_path, balance, keeps_prior):
    config = base_train_config(
        make_settings(tmp_path, correction_balance=balance),
        output=tmp_path / "out",
        base="scratch",
        extra=tmp_path / "extra.csv",
        seed=1,
        exclude=None,
        checkpoint_dir=None,
    )
    assert config.keep_class_prior is keeps_prior


def test_human_labels_csv_carries_names_and_weights_and_the_trainer_balances_them(tmp_path, korpora_root):
    """The exported class mix is balanced as designed, as the trainer actually reads it."""
    from trainer import TrainConfig
    from trainer.data import load_training_data

    examples = [
        HumanExample(verdict_id=i, text=f"문구 {i} 좋았지만 별로", label=1, predicted=0) for i in range(30)
    ]
    examples += [
        HumanExample(verdict_id=100 + i, text=f"문구 {i} 별로였다", label=0, predicted=0) for i in range(10)
    ]
    examples.append(HumanExample(verdict_id=999, text='재밌다, "진짜"\n두 줄', label=1, predicted=1))
    weights = class_balanced_weights([e.label for e in examples], average_weight=4)
    path = write_human_labels_csv(tmp_path / "human.csv", examples, NAMES, weights)
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[-1] == {"text": '재밌다, "진짜"\n두 줄', "label": "긍정", "weight": str(weights[-1])}

    mix = class_mix(examples, weights, NAMES)
    assert mix["부정"]["examples"] == 10 and mix["부정"]["confirmations"] == 10
    assert mix["긍정"]["confirmations"] == 1
    assert abs(mix["부정"]["share"] - 0.5) < 0.05

    data = load_training_data(
        TrainConfig(
            output=tmp_path / "out", korpora_root=korpora_root, train_size=200, eval_size=50, extra=path
        )
    )
    trained = data.extra_class_mix
    assert trained == {"긍정": {"examples": 31, "rows": 82}, "부정": {"examples": 10, "rows": 82}}
    assert Counter(data.train.texts)["문구 0 별로였다"] == weights[30] == 9


async def test_exported_labels_respect_the_label_rule(tmp_path, session_factory):
    await add_corrections(session_factory, [("검토자가 확인한 리뷰", 1)], users=(2001,), trusted=True)
    await add_corrections(
        session_factory, [("확인 전인 사용자의 리뷰", 0)], users=(2003,), first_message_id=50
    )
    settings = make_settings(tmp_path)
    async with session_factory() as session:
        counted = await export_human_labels(session, **human_label_rule(settings))
        everything = await export_human_labels(
            session, **human_label_rule(make_settings(tmp_path, trust_feedback=True))
        )
    assert [c.text for c in counted] == ["검토자가 확인한 리뷰"]
    assert len(everything) == 2


def test_the_gate_evaluation_set_is_fixed_and_never_trained_on(tmp_path, korpora_root):
    from trainer.data import load_training_data, normalized_text

    settings = make_settings(tmp_path, korpora_root=korpora_root, gate_eval_size=3000, retrain_eval_size=2000)
    first, again = gate_eval_set(settings), gate_eval_set(settings)
    assert first.size == 3000 and first.digest == again.digest and first.texts == again.texts
    assert first.path.is_file() and first.identity["source"] == "NSMC test"
    assert 0.4 < first.labels.count("긍정") / first.size < 0.6

    # Two runs with their own seeds: fresh base rows each time, and never a text of the evaluation set, neither
    # in training nor in the trainer's own validation split.
    held = {normalized_text(text) for text in first.texts}
    samples = []
    for seed in (1, 2):
        config = base_train_config(
            settings,
            output=tmp_path / f"out{seed}",
            base="scratch",
            extra=None,
            seed=seed,
            exclude=first.path,
            checkpoint_dir=None,
        )
        data = load_training_data(config)
        assert not held & {normalized_text(text) for text in data.train.texts + data.eval.texts}
        assert data.excluded > 0  # NSMC test texts the trainer's validation draw had to skip
        samples.append(set(data.train.texts))
    overlap = len(samples[0] & samples[1]) / len(samples[0])
    assert overlap < 0.2, overlap  # 600 of 150,000 rows each time: a new sample, not a replay


def test_the_evaluation_set_of_base_data_is_a_stable_part_of_it(tmp_path):
    rows = [(f"리뷰 번호 {i} 입니다 {'좋다' if i % 2 else '싫다'}", i % 2) for i in range(1000)]
    data_file = tmp_path / "reviews.csv"
    with open(data_file, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(reversed(rows))
    settings = make_settings(tmp_path, base_data=data_file, gate_eval_size=5000)
    eval_set = gate_eval_set(settings)
    assert 150 < eval_set.size < 250  # about a fifth, chosen by the text's hash
    shuffled = tmp_path / "shuffled.csv"
    with open(shuffled, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows[::2] + rows[1::2])
    assert (
        gate_eval_set(make_settings(tmp_path, base_data=shuffled, gate_eval_size=5000)).digest
        == eval_set.digest
    )


def test_trainer_flags_reproduce_the_config(tmp_path):
    import argparse

    from trainer.cli import add_train_arguments, config_from_args  # the trainer's own parser

    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    settings = make_settings(tmp_path, korpora_root=tmp_path / "korpora")
    config = base_train_config(
        settings,
        output=tmp_path / "out",
        base="scratch",
        extra=tmp_path / "extra.csv",
        seed=1234,
        exclude=tmp_path / "eval.csv",
        checkpoint_dir=tmp_path / "checkpoints",
    )
    assert config_from_args(parser.parse_args(arguments_for(config))) == config
    assert (
        config.extra_weight == 1 and config.seed == 1234 and config.max_length == settings.retrain_max_length
    )
    assert config.extra_neighbours == settings.correction_neighbours == 20
    assert config.best_metric == settings.retrain_best_metric == "loss"
    assert config.fine_tuned_share == settings.retrain_fine_tuned_share

    everything = base_train_config(
        make_settings(
            tmp_path,
            base_data=tmp_path / "reviews.csv",
            retrain_learning_rate=None,
            retrain_max_length=None,
            retrain_fine_tuned_share=0.7,
        ),
        output=tmp_path / "out",
        base="/models/active",
        extra=None,
        seed=7,
        exclude=None,
        checkpoint_dir=None,
    )
    assert config_from_args(parser.parse_args(arguments_for(everything))) == everything
    assert everything.fine_tuned_share == 0.7  # the share reaches the trainer's flags
    assert everything.korpora_root is None and everything.data == tmp_path / "reviews.csv"


def test_the_toxicity_gate_set_is_beep_dev_and_kmhas_held_out_and_never_trained_on(tmp_path, korpora_root):
    from trainer.data import load_training_data, normalized_text
    from trainer.toxicity import load_beep, load_kmhas

    _require_toxicity_data(korpora_root)
    settings = make_settings(tmp_path, korpora_root=korpora_root)
    first, again = gate_eval_set(settings, "toxicity"), gate_eval_set(settings, "toxicity")
    assert first.digest == again.digest and first.texts == again.texts and first.binary == again.binary
    assert first.digest != gate_eval_set(settings).digest  # each task its own set
    dev = set(load_beep(korpora_root, "dev").texts)
    kmhas_train, kmhas_held_out = load_kmhas(korpora_root)
    three_class = {text for text, binary in zip(first.texts, first.binary, strict=True) if not binary}
    binary = {text for text, is_binary in zip(first.texts, first.binary, strict=True) if is_binary}
    assert three_class <= dev and binary <= set(kmhas_held_out.texts) and not binary & set(kmhas_train.texts)
    labels = dict(zip(first.texts, first.labels, strict=True))
    assert {labels[text] for text in binary} == {"정상", "공격적|혐오"}
    assert {labels[text] for text in three_class} == {"정상", "공격적", "혐오"}
    assert first.size > 4500  # every comment of both, less duplicates and texts under 6 characters

    config = base_train_config(
        settings,
        output=tmp_path / "out",
        base="scratch",
        extra=None,
        seed=1,
        exclude=first.path,
        checkpoint_dir=None,
        task="toxicity",
    )
    data = load_training_data(config)
    assert data.id2label == {0: "정상", 1: "공격적", 2: "혐오"}
    held = {normalized_text(text) for text in first.texts}
    assert not held & {normalized_text(text) for text in data.train.texts + data.eval.texts}


def _require_toxicity_data(korpora_root):
    if not (korpora_root / "kmhas" / "kmhas_test.txt").is_file():
        pytest.skip("K-MHaS is not under the korpora root")
