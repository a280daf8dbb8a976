"""A toxicity run end to end, with the real trainer child process: the schedule picks the task whose labels
arrived, the run trains the toxicity model on BEEP! train plus those labels, the gate judges it on the toxicity
gate set (BEEP! dev and K-MHaS's held-out fifth, never trained on), and only the toxicity model can change."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from retraining_helpers import activate_version, add_corrections, make_settings
from sqlalchemy import select

from bot.retraining.dataset import accepted_labels, gate_eval_set
from bot.retraining.service import RetrainingService
from bot.serving import ServingModel
from bot.storage import (
    Feedback,
    RunStatus,
    Task,
    get_active_model_version,
    get_model_version,
    get_training_run,
)
from classifier.tasks import TASK_ID2LABEL, TASK_TITLES

CLEAN, OFFENSIVE, HATE = 0, 1, 2
# Harsh but fair reviews (정상) and insults (공격적, 혐오): what moderators correct in the toxicity model.
HARSH_BUT_CLEAN = [
    f"{subject} {complaint}"
    for subject in ("이 영화", "이번 회차", "2편")
    for complaint in (
        "돈이 아깝다 두 시간 내내 지루했음",
        "각본이 너무 허술해서 실망했어요",
        "연출이 엉망이라 보다가 잠들었다",
    )
]
INSULTS = [
    ("감독 이 새끼 머리가 빈 거 아니냐", OFFENSIVE),
    ("이딴 걸 영화라고 찍은 놈들 다 꺼져라", OFFENSIVE),
    ("배우 얼굴 보기 싫다 병신 같은 연기", OFFENSIVE),
    ("주연 걔는 그냥 쓰레기 인간이지", OFFENSIVE),
    ("여자들이 만들어서 이 모양이지", HATE),
    ("조선족들이나 좋아할 영화", HATE),
]


@pytest.mark.slow
async def test_the_schedule_retrains_the_toxicity_model_from_its_own_labels(
    tmp_path, session_factory, scratch_model_dir, toxicity_model_dir, korpora_root
):
    from classifier import Classifier

    sentiment_version = await activate_version(session_factory, scratch_model_dir)
    toxicity_version = await activate_version(session_factory, toxicity_model_dir, task=Task.TOXICITY)
    examples = [(text, CLEAN) for text in HARSH_BUT_CLEAN] + INSULTS * 2
    await add_corrections(
        session_factory, examples, trusted=True, task=Task.TOXICITY, model_version_id=toxicity_version
    )
    sentiment = ServingModel(Classifier.load(scratch_model_dir), sentiment_version)
    toxicity = ServingModel(Classifier.load(toxicity_model_dir), toxicity_version)
    settings = make_settings(
        tmp_path,
        korpora_root=korpora_root,
        retrain_min_new_feedback=len(examples),  # toxicity has them all; sentiment none
        retrain_train_size=600,
        retrain_eval_size=150,
        retrain_epochs=1.0,
    )
    service = RetrainingService(
        settings=settings,
        session_factory=session_factory,
        serving=sentiment,
        toxicity_serving=toxicity,
        progress_interval_seconds=0.5,
    )
    run_id = await service.run_if_enough_feedback()
    assert run_id is not None
    outcome = await asyncio.wait_for(service.wait_for_run(run_id), 300)
    assert outcome.status in (RunStatus.SUCCEEDED, RunStatus.REJECTED), outcome.summary

    # Judged on the toxicity gate set: every example for accuracy (a toxic K-MHaS comment is answered right by
    # 공격적 or 혐오), BEEP!'s three-class examples alone for calibration.
    eval_set = gate_eval_set(settings, Task.TOXICITY)
    assert outcome.gate["eval_set"] == eval_set.identity and outcome.gate["task"] == "toxicity"
    assert eval_set.size > 4500 and "K-MHaS" in eval_set.source
    checks = {check["name"]: check for check in outcome.gate["checks"]}
    assert checks["base_vs_active"]["n"] == eval_set.size
    three_class = eval_set.size - sum(eval_set.binary)
    assert 400 < three_class < 471 + 1 and checks["calibration_vs_active"]["n"] == three_class
    assert all(
        len(accepted_labels(label)) == 1
        for label, binary in zip(eval_set.labels, eval_set.binary)
        if not binary
    )
    names = set(TASK_ID2LABEL[Task.TOXICITY].values())
    assert {name.removeprefix("human_") for name in checks if name.startswith("human_")} <= names
    promoted = outcome.status is RunStatus.SUCCEEDED
    assert promoted == outcome.decision.promote == all(check["passed"] for check in checks.values())
    assert f"새 {TASK_TITLES[Task.TOXICITY]} 모델 v{outcome.model_version_id}" in outcome.summary

    async with session_factory() as session:
        run = await get_training_run(session, run_id=run_id)
        candidate = await get_model_version(session, version_id=outcome.model_version_id)
        active_sentiment = await get_active_model_version(session)
        active_toxicity = await get_active_model_version(session, task=Task.TOXICITY)
        feedback = (await session.scalars(select(Feedback))).all()
    assert run.task is Task.TOXICITY and run.correction_count == len(examples)
    assert candidate.task is Task.TOXICITY
    assert active_toxicity.id == (candidate.id if promoted else toxicity_version)
    # Only the toxicity model can change: in the database and in what each task serves.
    assert active_sentiment.id == sentiment_version and sentiment.active.version_id == sentiment_version
    assert toxicity.active.version_id == active_toxicity.id
    assert {row.used_by_run_id for row in feedback} == {run_id}

    # The candidate is a toxicity model trained on BEEP! train and the labels, written as label names.
    metrics = json.loads((Path(candidate.path) / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["data"]["task"] == "toxicity"
    assert Classifier.load(Path(candidate.path)).id2label == TASK_ID2LABEL[Task.TOXICITY]
    mix = metrics["gate"]["human_labels"]
    assert set(mix["train"]) | set(mix["holdout"]) <= names
    trained = sum(entry["examples"] for entry in mix["train"].values())
    assert trained + sum(mix["holdout"].values()) == len(examples)
    assert trained > 0 and metrics["data"]["extra_size"] == trained and metrics["data"]["source"] == "beep"

    # Its labels are used: the schedule has nothing left to start.
    assert await service.run_if_enough_feedback() is None
    await service.stop()
