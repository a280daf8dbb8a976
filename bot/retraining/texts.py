"""Every user-facing (Korean) string of the retraining service: progress, results, rollback."""

from __future__ import annotations

from typing import Any

from bot.retraining.gate import ModelScores

RUN_STARTED = "재학습 #{run_id} 시작: 학습 데이터를 준비하고 있어요."
RUN_ALREADY_RUNNING = "재학습 #{run_id}이(가) 이미 진행 중이에요."
EXPORTING = "학습 데이터 준비 중 (보정 {corrections}건, 평가용 보류 {holdout}건)"
TRAINING_STARTED = "학습 시작 (기반 모델: {base})"
EVALUATING = "학습 완료, 기존 모델과 비교 평가 중"
INTERRUPTED = "interrupted by shutdown"

PROMOTED = "✅ 재학습 #{run_id} 완료: 새 모델 v{new_version}을(를) 적용했어요.\n{table}\n{reason}"
REJECTED = "⚠️ 재학습 #{run_id}: 새 모델 v{new_version}은(는) 기준을 통과하지 못해 기존 모델을 유지해요.\n{table}\n사유: {reason}"
FAILED = "❌ 재학습 #{run_id} 실패: 기존 모델을 계속 사용해요.\n{error}"
ROLLED_BACK = "모델을 v{version_id}(으)로 되돌렸어요."
NO_PREVIOUS_VERSION = "되돌릴 이전 모델이 없어요."


def progress_text(event: dict[str, Any]) -> str | None:
    """A one-line Korean description of a trainer `--progress-json` event (None for events not shown)."""
    kind = event.get("event")
    if kind == "progress":
        step, total = event.get("step"), event.get("total_steps")
        parts = []
        if isinstance(step, int) and isinstance(total, int) and total > 0:
            parts.append(f"학습 중 {step}/{total} 단계 ({step * 100 // total}%)")
        else:
            parts.append("학습 중")
        if isinstance(event.get("epoch"), (int, float)):
            parts.append(f"에폭 {event['epoch']:.2f}")
        if isinstance(event.get("loss"), (int, float)):
            parts.append(f"손실 {event['loss']:.4f}")
        return ", ".join(parts)
    if kind == "eval":
        accuracy = event.get("eval_accuracy")
        epoch = event.get("epoch")
        epoch_text = f"에폭 {epoch:.2f} " if isinstance(epoch, (int, float)) else ""
        if isinstance(accuracy, (int, float)):
            return f"{epoch_text}평가 정확도 {accuracy * 100:.1f}%"
        return f"{epoch_text}평가 완료"
    return None


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def scores_table(
    *, active: ModelScores | None, active_version: int | None, candidate: ModelScores, candidate_version: int
) -> str:
    """Old and new metrics side by side (monospace-friendly plain text)."""
    old_name = f"기존 v{active_version}" if active_version is not None else "기존 없음"
    rows = [
        ("", old_name, f"새 v{candidate_version}"),
        ("기본 평가 정확도", _pct(active.base_accuracy if active else None), _pct(candidate.base_accuracy)),
        ("기본 평가 macro-F1", _pct(active.base_macro_f1 if active else None), _pct(candidate.base_macro_f1)),
        (
            "보류한 보정 정확도",
            _pct(active.holdout_accuracy if active else None),
            _pct(candidate.holdout_accuracy),
        ),
    ]
    return "\n".join(f"{name}: {old} → {new}" if name else f"{old} → {new}" for name, old, new in rows)
