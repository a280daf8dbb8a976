"""One promotion through the default serving path, end to end: FAST_INFERENCE at its default (static int8 in ONNX
Runtime), not the torch fp32 the other retraining tests force.

The scratch model is imported as the bot imports it (`bot.versions.register`: fast-path files built, calibrated
on NSMC training reviews), an admin's labels are stored, and one run trains, judges and promotes a candidate.
Checked: the promotion built the candidate's fast-path files; the gate scored the candidate with that backend
(its record's tag, and its stored answers are the ONNX model's); the bot's `ServingModel` now serves the ONNX
classifier of the new version.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
from retraining_helpers import RecordingReporter

from bot import versions
from bot.retraining.dataset import gate_eval_set
from bot.retraining.scoring import PREDICTIONS_DIR
from bot.retraining.service import RetrainingService
from bot.serving import ServingModel, load_serving_classifier, serving_tag
from bot.settings import Settings
from bot.storage import RunStatus, RunTrigger, add_verdict, get_active_model_version, record_feedback
from classifier import fastpath

ADMIN = 42
LABEL_NAMES = {0: "부정", 1: "긍정"}
# (text, label) given by the admin: trusted labels, so they count whatever rule decides on others' labels.
ADMIN_LABELS = [
    ("배우들 연기가 정말 좋았고 결말도 감동적이었다", 1),
    ("두 시간이 아깝다 다시는 안 본다", 0),
    ("음악이 좋아서 끝까지 재미있게 봤어요", 1),
    ("스토리가 엉성하고 지루해서 졸았다", 0),
    ("가족이랑 보기 좋은 따뜻한 영화", 1),
    ("돈 주고 보기 아까운 최악의 영화", 0),
    ("연출이 세련되고 긴장감이 넘친다", 1),
    ("대사가 유치하고 개연성이 없다", 0),
]


def default_serving_settings(tmp_path: Path, korpora_root: Path) -> Settings:
    """Small, fast retraining settings that leave FAST_INFERENCE at its default; nothing read from .env."""
    return Settings(
        _env_file=None,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'moderator.db'}",
        model_dir=tmp_path / "models",
        runs_dir=tmp_path / "runs",
        korpora_root=korpora_root,
        retrain_cron=None,
        retrain_interval_seconds=None,
        retrain_from="active",
        retrain_epochs=1.0,
        retrain_train_size=600,
        retrain_eval_size=200,
        retrain_batch_size=32,
        retrain_learning_rate=5e-4,
        retrain_seed=42,
        correction_holdout_fraction=0.0,  # all the admin's labels are trained on; the gate checks the base set
        promotion_tolerance=50.0,  # a tiny scratch model: this test is about the serving path, not the gate
        promotion_class_tolerance=100.0,  # a tiny model's classes trade places from run to run
        gate_eval_size=500,
    )


async def store_admin_labels(session_factory, version_id: int) -> None:
    """Each text as a verdict of the active version, wrong, corrected by the admin (is_admin=True)."""
    async with session_factory() as session, session.begin():
        for message_id, (text, label) in enumerate(ADMIN_LABELS, start=1):
            wrong = 1 - label
            verdict = await add_verdict(
                session,
                chat_id=1,
                message_id=message_id,
                user_id=1001,
                text=text,
                label=wrong,
                label_name=LABEL_NAMES[wrong],
                confidence=0.8,
                probabilities={LABEL_NAMES[wrong]: 0.8, LABEL_NAMES[label]: 0.2},
                model_version_id=version_id,
            )
            await record_feedback(
                session, verdict_id=verdict.id, user_id=ADMIN, label=label, num_labels=2, is_admin=True
            )


@pytest.mark.slow
async def test_a_promotion_on_the_default_fast_path_builds_judges_and_serves_onnx_int8(
    tmp_path, session_factory, scratch_model_dir, korpora_root
):
    settings = default_serving_settings(tmp_path, korpora_root)
    assert settings.fast_inference and fastpath.FAST_BACKEND == fastpath.ONNX_INT8  # the defaults under test
    tag = serving_tag(settings)
    assert tag == fastpath.FAST_BACKEND

    # The first version, imported as `moderator model import` does: its fast-path files are built once.
    first_dir = shutil.copytree(
        scratch_model_dir,
        tmp_path / "first",
        ignore=shutil.ignore_patterns(fastpath.ARTEFACT_DIR, PREDICTIONS_DIR),
    )
    first_id, activated = await versions.register(session_factory, settings, path=first_dir, activate_it=True)
    assert activated and fastpath.fast_path_status(first_dir, fastpath.FAST_BACKEND) == (True, "")
    first = await asyncio.to_thread(load_serving_classifier, first_dir, settings)
    assert first.backend == fastpath.FAST_BACKEND  # the bot serves it through ONNX Runtime
    serving = ServingModel(first, first_id)
    await store_admin_labels(session_factory, first_id)

    service = RetrainingService(settings=settings, session_factory=session_factory, serving=serving)
    reporter = RecordingReporter()
    run_id, created = await service.request_run(
        trigger=RunTrigger.ADMIN, requested_by=ADMIN, reporter=reporter
    )
    assert created
    try:
        outcome = await asyncio.wait_for(service.wait_for_run(run_id), 600)
    finally:
        await service.stop()
    assert outcome.status is RunStatus.SUCCEEDED, outcome.summary
    async with session_factory() as session:
        active = await get_active_model_version(session)
    assert active.id == outcome.model_version_id != first_id
    candidate_dir = Path(active.path)

    # 1. The promotion built the candidate's fast-path files, calibrated, from its own weights.
    assert fastpath.fast_path_status(candidate_dir, fastpath.FAST_BACKEND) == (True, "")
    manifest = json.loads((candidate_dir / fastpath.ARTEFACT_DIR / fastpath.MANIFEST_FILE).read_text())
    assert manifest["weights_sha256"] == fastpath.weights_fingerprint(candidate_dir)
    assert manifest["files"][fastpath.ONNX_INT8]["calibration_texts"] == fastpath.CALIBRATION_SIZE

    # 2. The gate scored the candidate (and the active model) with that backend.
    assert outcome.gate["serving"] == tag and active.metrics["gate"]["serving"] == tag
    eval_set = await asyncio.to_thread(gate_eval_set, settings)
    assert outcome.gate["eval_set"] == eval_set.identity
    stored = json.loads(
        (candidate_dir / PREDICTIONS_DIR / f"{eval_set.digest[:16]}-{tag}.json").read_text(encoding="utf-8")
    )
    assert stored["serving"] == tag and len(stored["predictions"]) == settings.gate_eval_size
    onnx_candidate = await asyncio.to_thread(load_serving_classifier, candidate_dir, settings)
    assert onnx_candidate.backend == fastpath.FAST_BACKEND
    answers = [verdict.label_name for verdict in onnx_candidate.predict(eval_set.texts)]
    assert stored["predictions"] == answers  # static int8 is deterministic: the gate's answers are ONNX's
    assert (first_dir / PREDICTIONS_DIR / f"{eval_set.digest[:16]}-{tag}.json").is_file()

    # 3. The bot's serving model swapped to the candidate, served by ONNX Runtime (no torch weights loaded).
    served = serving.active
    assert served.version_id == active.id
    assert served.classifier.path.resolve() == candidate_dir.resolve()
    assert served.classifier.backend == fastpath.FAST_BACKEND and served.classifier.model is None
    verdicts = served.classifier.predict([text for text, _ in ADMIN_LABELS])
    assert all(abs(sum(v.probabilities.values()) - 1.0) < 1e-4 for v in verdicts)
    assert (
        len(reporter.finished_texts) == 1
        and f"새 감성(긍정/부정) 모델 v{active.id}" in reporter.finished_texts[0]
    )
