"""End-to-end retraining runs with the real trainer child process, a real SQLite file and the scratch model.

Each run trains a tiny BERT on a few hundred NSMC reviews for a couple of epochs (well under a minute).
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
from pathlib import Path

import pytest
import torch
from retraining_helpers import (
    LABEL_NAMES,
    RecordingReporter,
    activate_version,
    add_corrections,
    make_settings,
    trainer_children,
    wait_for,
)
from sqlalchemy import select

from bot.retraining.service import RetrainingService
from bot.serving import MicroBatcher, ServingModel
from bot.settings import Settings
from bot.storage import (
    Feedback,
    ModelStatus,
    RunStatus,
    RunTrigger,
    create_engine,
    get_active_model_version,
    get_model_version,
    get_training_run,
    make_session_factory,
)

# Made-up slang: words absent from NSMC (the scratch tokenizer splits them into known syllables). In the tests they
# mean "great" and follow a complaint, so the active model, never having seen them, reads the complaint and answers
# negative: a systematic mistake that reviewers then correct.
SLANG_WORDS = ("쿵짝쿵짝", "뚝딱뚝딱", "뭉게뭉게", "꼬물꼬물", "보송보송")
CORRECTION_FILLERS = (
    "스토리는 엉성했지만",
    "연기는 어색했지만",
    "결말은 아쉬웠지만",
    "초반은 지루했지만",
    "평점은 낮았지만",
    "러닝타임은 길었지만",
    "cg는 조잡했지만",
    "개연성은 부족했지만",
    "대사는 유치했지만",
    "음향은 별로였지만",
    "전개는 느렸지만",
    "주연은 발연기였지만",
)
TEST_FILLERS = (
    "편집은 엉망이었지만",
    "중반은 늘어졌지만",
    "자막은 별로였지만",
    "제목은 촌스러웠지만",
    "예산은 적어보였지만",
    "분량은 짧았지만",
)
TEMPLATES = (
    "{filler} {word}",
    "{filler} 결국 {word}",
    "{filler} 한마디로 {word}",
    "{filler}, 결론은 {word}",
    "{filler} 그래도 {word}",
    "{filler} 진짜 {word}",
    "{filler}... {word}",
    "{filler} 그냥 {word}",
)
# NSMC's own words for the other class, in the same texts: they must stay negative (no "a complaint, but anything"
# shortcut to positive).
NEGATIVE_WORDS = ("최악", "노잼", "별로", "실망")
POSITIVE, NEGATIVE = 1, 0


def pattern_texts(word: str, fillers) -> list[str]:
    return [template.format(filler=filler, word=word) for filler in fillers for template in TEMPLATES]


def predictions(classifier, texts) -> list[int]:
    return [verdict.label for verdict in classifier.predict(texts)]


def accuracy(classifier, texts, label: int) -> float:
    return sum(predicted == label for predicted in predictions(classifier, texts)) / len(texts)


def nsmc_reviews(korpora_root: Path, split: str) -> dict[int, list[str]]:
    """NSMC reviews of 6+ characters by label, in file order."""
    lines = (korpora_root / "nsmc" / f"ratings_{split}.txt").read_text(encoding="utf-8").splitlines()[1:]
    reviews: dict[int, list[str]] = {NEGATIVE: [], POSITIVE: []}
    for line in lines:
        _, text, label = line.split("\t")
        if len(text.strip()) >= 6:
            reviews[int(label)].append(text)
    return reviews


@pytest.fixture
def scratch_classifier(scratch_model_dir):
    from classifier import Classifier

    return Classifier.load(scratch_model_dir)


@pytest.mark.slow
async def test_retraining_learns_a_corrected_mistake_and_hot_swaps(
    tmp_path, session_factory, scratch_model_dir, scratch_classifier, korpora_root
):
    # A systematic mistake of the active model: texts with a made-up word meaning "great", read as negative.
    def mistake_rate(word: str) -> float:
        return 1 - accuracy(scratch_classifier, pattern_texts(word, CORRECTION_FILLERS), POSITIVE)

    word = max(SLANG_WORDS, key=mistake_rate)
    assert mistake_rate(word) >= 0.7, f"no systematic mistake found (best {word}: {mistake_rate(word):.2f})"
    slang_corrections = pattern_texts(word, CORRECTION_FILLERS)
    # The other class: as many ordinary negative reviews that the active model gets wrong (NSMC train; the gate's
    # evaluation set is NSMC test), corrected too. Confirmations of answers it already gets right would teach it
    # little, and the corrections alone would pull it towards positive everywhere.
    negatives = random.Random(7).sample(nsmc_reviews(korpora_root, "train")[NEGATIVE][-10000:], 1000)
    ordinary_corrections = [
        text
        for text, label in zip(negatives, predictions(scratch_classifier, negatives))
        if label != NEGATIVE
    ][: len(slang_corrections)]
    assert len(ordinary_corrections) == len(slang_corrections)
    corrections = [(text, POSITIVE) for text in slang_corrections] + [
        (text, NEGATIVE) for text in ordinary_corrections
    ]
    # Never stored, never trained on: the slang in new texts, the other class in the same new texts, and NSMC test
    # reviews of each class.
    fresh = pattern_texts(word, TEST_FILLERS)
    other_class = [text for negative in NEGATIVE_WORDS for text in pattern_texts(negative, TEST_FILLERS)]
    reviews = {label: texts[:500] for label, texts in nsmc_reviews(korpora_root, "test").items()}

    def scores(classifier) -> dict[str, float]:
        return {
            "slang error": 1 - accuracy(classifier, fresh, POSITIVE),
            "other class": accuracy(classifier, other_class, NEGATIVE),
            **{f"nsmc {label}": accuracy(classifier, texts, label) for label, texts in reviews.items()},
        }

    before = scores(scratch_classifier)
    assert before["other class"] >= 0.9, before

    old_version = await activate_version(session_factory, scratch_model_dir)
    # Trusted labels (a reviewer's): they count whatever rule decides whose untrusted labels do.
    await add_corrections(session_factory, corrections, model_version_id=old_version, trusted=True)
    serving = ServingModel(scratch_classifier, old_version)
    notices: list[str] = []

    async def notify_admins(text: str, requested_by: int | None) -> None:
        assert requested_by == 42
        notices.append(text)

    # A tiny scratch model's base accuracy moves with any fine-tuning (-0.4 to -2.1 points over five run seeds), so
    # this test allows 3 points; the default for real models is 0.5. CORRECTION_WEIGHT is the default. Neighbours
    # are off: they lean towards the active model's mistakes, and a 77% toy model's mistakes on NSMC are largely
    # noise (with the default 10 a correction, this run lost 5.8 points and the gate rejected it); the e5 bench
    # (bench/bench_learning_loop.py) measures them on a real model.
    settings = make_settings(
        tmp_path,
        korpora_root=korpora_root,
        promotion_tolerance=3.0,
        retrain_eval_size=400,
        correction_neighbours=0,
        correction_weight=Settings.model_fields["correction_weight"].default,
        # At the default weight (2) the toy model needs a little larger steps than the other tests' 5e-4 (there
        # the slang error fell to 52 %); at 7e-4 it learned the slang but lost 17 points of the other class.
        retrain_learning_rate=6e-4,
    )
    service = RetrainingService(
        settings=settings,
        session_factory=session_factory,
        serving=serving,
        notify_admins=notify_admins,
        progress_interval_seconds=0.5,
    )
    reporter = RecordingReporter()
    run_id, created = await service.request_run(trigger=RunTrigger.ADMIN, requested_by=42, reporter=reporter)
    assert created
    outcome = await asyncio.wait_for(service.wait_for_run(run_id), 300)

    assert outcome.status is RunStatus.SUCCEEDED, outcome.summary
    # What half the corrections share is the slang word: the gate looked for it in the fixed set.
    terms = outcome.gate["pattern"]["terms"]
    assert terms and all(term.strip() in word for term in terms), (word, terms)
    checks = {check["name"]: check for check in outcome.gate["checks"]}
    assert checks["base_vs_active"]["passed"] and checks["base_vs_active"]["n"] == settings.gate_eval_size
    human = {name: check for name, check in checks.items() if name.startswith("human_")}
    assert set(human) == {f"human_{name}" for name in LABEL_NAMES.values()} and all(
        check["passed"] for check in human.values()
    )
    # The held-out slang corrections (a quarter of 96): better beyond noise; the fresh texts below measure the gain.
    assert human[f"human_{LABEL_NAMES[POSITIVE]}"]["low"] > 0, human
    assert all(check["low"] <= check["difference"] <= check["high"] for check in checks.values())
    new_version = outcome.model_version_id
    assert serving.active.version_id == new_version != old_version  # hot-swapped, no restart
    # The mistake is (mostly) gone in new texts, and the other class did not pay for it.
    # The goal for the loop: the corrected pattern's error at least halves, and the other class's error
    # on the same kind of text rises by at most 10 points. Base accuracy is the gate's job (checked above).
    after = scores(serving.active.classifier)
    assert after["slang error"] <= 0.5 * before["slang error"], (before, after)
    assert after["other class"] >= before["other class"] - 0.10, (before, after)

    async with session_factory() as session:
        run = await get_training_run(session, run_id=run_id)
        active = await get_active_model_version(session)
        old = await get_model_version(session, version_id=old_version)
        feedback = (await session.scalars(select(Feedback))).all()
    assert run.status is RunStatus.SUCCEEDED and run.model_version_id == new_version and run.error is None
    assert run.correction_count == len(corrections) and run.example_count > settings.retrain_train_size
    assert active.id == new_version and old.status is ModelStatus.RETIRED
    assert active.metrics["gate"]["promote"] is True and active.metrics["accuracy"] > 0.6
    # The run's record: its seed, the evaluation set's identity, the human labels' class mix, every gate number.
    on_disk = json.loads((Path(active.path) / "metrics.json").read_text(encoding="utf-8"))
    assert on_disk["gate"] == outcome.gate == run.gate
    assert on_disk["gate"]["seed"] == run.seed == on_disk["seed"]
    assert (
        on_disk["gate"]["eval_set"]["size"] == settings.gate_eval_size
        and len(on_disk["gate"]["eval_set"]["hash"]) == 16
    )
    # Both classes were trained on, every label CORRECTION_WEIGHT rows (CORRECTION_BALANCE=prior)...
    mix = on_disk["gate"]["human_labels"]["train"]
    assert set(mix) == set(LABEL_NAMES.values()) and all(entry["examples"] > 0 for entry in mix.values())
    assert all(entry["rows"] == settings.correction_weight * entry["examples"] for entry in mix.values()), mix
    assert {row.used_by_run_id for row in feedback} == {run_id}
    run_dir = settings.runs_dir / f"run-{run_id}"
    train_log = (run_dir / "train.log").read_text(encoding="utf-8")
    assert '"event": "progress"' in train_log
    # ... and the base rows were drawn so the whole set keeps the base data's class mix.
    assert "--keep-class-prior" in train_log and "keeping the class mix with the" in train_log
    # The trainer child runs on the test process's (pinned) threads.
    assert f"OMP_NUM_THREADS={torch.get_num_threads()} " in train_log
    assert (run_dir / "human_labels_train.csv").exists() and (run_dir / "human_labels_holdout.csv").exists()
    assert not (run_dir / "checkpoints").exists()  # the trainer's checkpoints are gone with the run
    assert any(text.startswith("학습 중") for text in reporter.progress_texts)
    assert (
        len(reporter.finished_texts) == 1
        and f"새 감성(긍정/부정) 모델 v{new_version}" in reporter.finished_texts[0]
    )
    assert notices == reporter.finished_texts  # admins see every check with its interval, in Korean
    assert f"현재 모델 v{old_version} 대비" in notices[0] and "95% 구간" in notices[0]


@pytest.mark.slow
async def test_gate_rejects_a_candidate_trained_on_shuffled_labels(
    tmp_path, session_factory, scratch_model_dir, scratch_classifier, korpora_root
):
    # A flood of "trusted" corrections whose labels are shuffled: the candidate learns noise.
    lines = (korpora_root / "nsmc" / "ratings_train.txt").read_text(encoding="utf-8").splitlines()[1:]
    rng = random.Random(7)
    reviews = [
        line.split("\t")[1] for line in rng.sample(lines[-20000:], 400) if len(line.split("\t")[1]) > 10
    ][:160]
    shuffled = [(text, rng.randint(0, 1)) for text in reviews]
    old_version = await activate_version(session_factory, scratch_model_dir)
    await add_corrections(session_factory, shuffled, users=(2001,))
    serving = ServingModel(scratch_classifier, old_version)
    settings = make_settings(
        tmp_path,
        korpora_root=korpora_root,
        trust_feedback=True,
        retrain_from="base",
        base_model="scratch",
        retrain_train_size=200,
        correction_weight=6,
        retrain_learning_rate=None,
        retrain_eval_size=400,
        retrain_epochs=1,
    )
    service = RetrainingService(settings=settings, session_factory=session_factory, serving=serving)
    run_id, _ = await service.request_run(trigger=RunTrigger.CLI, requested_by=None)
    outcome = await asyncio.wait_for(service.wait_for_run(run_id), 300)

    assert outcome.status is RunStatus.REJECTED, outcome.summary
    assert "base_vs_active" in outcome.decision.reason
    (base,) = [check for check in outcome.gate["checks"] if check["name"] == "base_vs_active"]
    assert base["difference"] < -0.05 and base["high"] < 0
    assert serving.active.classifier is scratch_classifier and serving.active.version_id == old_version
    async with session_factory() as session:
        active = await get_active_model_version(session)
        candidate = await get_model_version(session, version_id=outcome.model_version_id)
        run = await get_training_run(session, run_id=run_id)
    assert active.id == old_version
    assert candidate.status is ModelStatus.REJECTED and "base_vs_active" in candidate.status_reason
    assert run.status is RunStatus.REJECTED and run.model_version_id == candidate.id


async def classify_continuously(batcher: MicroBatcher, answers: list, stop: asyncio.Event) -> None:
    """The bot's side during a run: messages keep arriving and must keep being answered."""
    index = 0
    while not stop.is_set():
        answers.append(await batcher.classify(f"재미있는 영화였어요 {index}"))
        index += 1
        await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_a_killed_trainer_fails_the_run_while_the_old_model_keeps_serving(
    tmp_path, session_factory, scratch_model_dir, scratch_classifier, korpora_root
):
    old_version = await activate_version(session_factory, scratch_model_dir)
    serving = ServingModel(scratch_classifier, old_version)
    batcher = MicroBatcher(serving, window_ms=5, max_batch=16)
    settings = make_settings(tmp_path, korpora_root=korpora_root, retrain_train_size=4000, retrain_epochs=5)
    service = RetrainingService(
        settings=settings, session_factory=session_factory, serving=serving, progress_interval_seconds=0.2
    )
    reporter = RecordingReporter()
    answers: list = []
    stop = asyncio.Event()
    traffic = asyncio.create_task(classify_continuously(batcher, answers, stop))
    try:
        run_id, _ = await service.request_run(trigger=RunTrigger.ADMIN, requested_by=42, reporter=reporter)
        await asyncio.wait_for(reporter.training_started.wait(), 180)
        answered_before_kill = len(answers)
        (child,) = trainer_children()
        child.send_signal(signal.SIGKILL)  # what the kernel's OOM killer does
        outcome = await asyncio.wait_for(service.wait_for_run(run_id), 60)

        async def answered_after_kill() -> bool:
            return len(answers) > answered_before_kill + 5

        await wait_for(answered_after_kill)
    finally:
        stop.set()
        await traffic
        await batcher.aclose()

    assert outcome.status is RunStatus.FAILED and "SIGKILL" in outcome.error
    assert answered_before_kill > 0 and {version for _, version in answers} == {old_version}
    assert serving.active.classifier is scratch_classifier
    async with session_factory() as session:
        run = await get_training_run(session, run_id=run_id)
        active = await get_active_model_version(session)
    assert run.status is RunStatus.FAILED and "SIGKILL" in run.error and run.finished_at is not None
    assert active.id == old_version
    assert "실패" in reporter.finished_texts[0]
    assert trainer_children() == []


async def test_concurrent_requests_start_one_run_and_shutdown_interrupts_it(
    tmp_path, session_factory, scratch_model_dir, korpora_root
):
    """Two bot processes (two engines on one database) asked to retrain at once: one run starts."""
    await activate_version(session_factory, scratch_model_dir)
    settings = make_settings(tmp_path, korpora_root=korpora_root, retrain_train_size=4000, retrain_epochs=5)
    other_engine = create_engine(settings.database_url)
    reporter = RecordingReporter()
    services = [
        RetrainingService(settings=settings, session_factory=factory, progress_interval_seconds=0.2)
        for factory in (session_factory, make_session_factory(other_engine))
    ]
    try:
        results = await asyncio.gather(
            *(
                service.request_run(trigger=RunTrigger.ADMIN, requested_by=user, reporter=reporter)
                for service, user in zip(services, (1, 2))
            )
        )
        assert sorted(created for _, created in results) == [False, True]
        assert results[0][0] == results[1][0]
        run_id = results[0][0]
        again, created = await services[1].request_run(
            trigger=RunTrigger.CLI, requested_by=None, reporter=None
        )
        assert (again, created) == (run_id, False)

        await asyncio.wait_for(reporter.training_started.wait(), 180)
        assert len(trainer_children()) == 1
        for service in services:  # the bot shutting down
            await service.stop()
    finally:
        await other_engine.dispose()
    assert trainer_children() == []
    async with session_factory() as session:
        run = await get_training_run(session, run_id=run_id)
    assert run.status is RunStatus.FAILED and run.error == "interrupted by shutdown"
    # The slot is free again: a new request starts a new run.
    new_run, created = await services[0].request_run(trigger=RunTrigger.CLI, requested_by=None)
    assert created and new_run != run_id
    await services[0].stop()
