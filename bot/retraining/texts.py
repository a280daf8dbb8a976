"""Every user-facing (Korean) string of the retraining service: progress, results, rollback."""

from __future__ import annotations

from typing import Any

RUN_STARTED = "재학습 #{run_id} 시작: 학습 데이터를 준비하고 있어요."
RUN_ALREADY_RUNNING = "재학습 #{run_id}이(가) 이미 진행 중이에요."
EXPORTING = "학습 데이터 준비 중: 사람 라벨 학습용 {train}건, 평가용 보류 {holdout}건; 클래스 구성 {mix}"
TRAINING_STARTED = "학습 시작 (기반 모델: {base})"
EVALUATING = "학습 완료, 기존 모델과 비교 평가 중"
INTERRUPTED = "interrupted by shutdown"
FAILED_NOT_RECORDED = "(데이터베이스에 실패를 기록하지 못했어요. 실행 기록은 잠시 뒤 자동으로 정리돼요.)"

PROMOTED = "✅ 재학습 #{run_id} 완료: 새 {task} 모델 v{new_version}을(를) 적용했어요.\n{checks}"
REJECTED = (
    "⚠️ 재학습 #{run_id}: 새 {task} 모델 v{new_version}은(는) 기준을 통과하지 못해 기존 모델을 유지해요.\n"
    "{checks}"
)
LOST_OWNERSHIP = (
    "the run was declared abandoned by another process (its heartbeat stopped); it did not promote"
)
FAILED = "❌ 재학습 #{run_id} 실패: 기존 모델을 계속 사용해요.\n{error}"
# TRAINING_EXECUTOR=worker: the bot hands the run to a training worker and follows it in the database.
QUEUED_FOR_WORKER = "재학습 #{run_id}을(를) 학습 워커에 맡겼어요. 워커가 시작하면 진행 상황을 알려 드려요."
NOT_QUEUED = "could not hand the run to a training worker ({error})"


def decided_summary(
    *, run_id: int, task_title: str, promoted: bool, version_id: int | None, gate: Any
) -> str:
    """What admins hear when the gate decided a run's candidate: promoted or rejected, with every check."""
    template = PROMOTED if promoted else REJECTED
    return template.format(
        run_id=run_id, task=task_title, new_version=version_id, checks=gate_summary(gate or {})
    )


def failed_summary(*, run_id: int, error: str | None) -> str:
    """What admins hear when a run failed: the old model stays, and why (the end of the error)."""
    return FAILED.format(run_id=run_id, error=(error or "")[-1500:])


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


CHECK_NAMES = {
    "base_vs_active": "기본 평가, 현재 모델 v{other} 대비",
    "base_vs_reference": "기본 평가, 최고 기록 모델 v{other} 대비 (누적 하락 방지)",
    "base_above_chance": "기본 평가 (현재 모델 없음)",
}
HUMAN_CHECK = "사람 라벨 보류분 '{label}', 현재 모델 v{other} 대비"
CLASS_CHECK = "기본 평가 중 '{label}', 현재 모델 v{other} 대비"
PATTERN_CHECK = "정정된 패턴({terms}) 중 '{label}', 현재 모델 v{other} 대비"
CALIBRATION_CHECK = "확률 보정(ECE, 낮을수록 좋음), 현재 모델 v{other} 대비"
RULES = {
    "within the tolerance": "허용 범위 안",
    "the loss exceeds the tolerance, but is not significant (noise)": "허용치보다 떨어졌지만 유의하지 않음 (잡음)",
    "not significantly worse on this class": "유의하게 나빠지지 않음",
    "significantly worse on this class": "유의하게 나빠짐",
    "calibration not significantly worse": "유의하게 나빠지지 않음",
}


def _rule_text(rule: str) -> str:
    if rule in RULES:
        return RULES[rule]
    if rule.startswith("significantly worse and the loss exceeds"):
        return "유의하게 나빠졌고 하락 폭이 허용치를 넘음"
    if rule.startswith("significantly worse, but within"):
        return "유의하게 나빠졌지만 허용 범위 안"
    if rule.startswith("significantly worse calibrated and beyond"):
        return "확률이 유의하게 덜 믿을 만해졌고 허용치를 넘음"
    if rule.startswith("significantly worse calibrated, but within"):
        return "확률이 유의하게 덜 믿을 만해졌지만 허용 범위 안"
    return rule


def pattern_terms_text(terms: list[str]) -> str:
    """The pattern's n-grams as people read them: spaces at word edges dropped, each once, in order."""
    shown = list(dict.fromkeys(term.strip() for term in terms if term.strip()))
    return ", ".join(f"'{term}'" for term in shown)


def gate_summary(gate: dict[str, Any]) -> str:
    """The gate's checks in plain Korean, one line each, with the accuracy change and its interval.

    e.g. `✔ 기본 평가, 현재 모델 v3 대비: 78.1% → 78.4% (+0.3%p, 95% 구간 -0.2~+0.8%p, n=5000) 허용 범위 안`
    """
    lines = []
    eval_set = gate.get("eval_set") or {}
    if eval_set:
        lines.append(
            f"평가 세트 {eval_set.get('hash', '?')} ({eval_set.get('size', '?')}건, {eval_set.get('source', '?')}, "
            "학습에 쓰지 않은 고정 세트)"
        )
    confidence = gate.get("confidence")
    level = f"{confidence * 100:g}%" if isinstance(confidence, (int, float)) else "95%"
    for check in gate.get("checks", []):
        name = check.get("name", "")
        if name.startswith("human_"):
            title = HUMAN_CHECK.format(label=name.removeprefix("human_"), other=check.get("other_version"))
        elif name.startswith("base_class_"):  # a binary label accepts several answers: "공격적|혐오"
            label = name.removeprefix("base_class_").replace("|", " 또는 ")
            title = CLASS_CHECK.format(label=label, other=check.get("other_version"))
        elif name.startswith("pattern_class_"):
            label = name.removeprefix("pattern_class_").replace("|", " 또는 ")
            terms = (gate.get("pattern") or {}).get("terms") or []
            title = PATTERN_CHECK.format(
                terms=pattern_terms_text(terms), label=label, other=check.get("other_version")
            )
        else:
            title = CHECK_NAMES.get(name, name).format(other=check.get("other_version"))
        mark = "✔" if check.get("passed") else "✘"
        if name == "calibration_vs_active" and check.get("candidate_ece") is not None:
            lines.append(
                f"{mark} {CALIBRATION_CHECK.format(other=check.get('other_version'))}: "
                f"{_pct(check.get('other_ece'))} → {_pct(check.get('candidate_ece'))} "
                f"({_points(check.get('difference'))}, {level} 구간 {_points(check.get('low'))}"
                f"~{_points(check.get('high'))}, n={check.get('n')}) {_rule_text(check.get('rule', ''))}"
            )
            continue
        if check.get("n") is None:
            lines.append(f"{mark} {title}: {_rule_text(check.get('rule', ''))}")
            continue
        lines.append(
            f"{mark} {title}: {_pct(check.get('other_accuracy'))} → {_pct(check.get('candidate_accuracy'))} "
            f"({_points(check.get('difference'))}, {level} 구간 {_points(check.get('low'), sign=True)}"
            f"~{_points(check.get('high'), sign=True)}, n={check.get('n')}) {_rule_text(check.get('rule', ''))}"
        )
    return "\n".join(lines)


def _points(value: float | None, *, sign: bool = True) -> str:
    if value is None:
        return "-"
    text = f"{value * 100:+.1f}" if sign else f"{value * 100:.1f}"
    return text + "%p"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def label_mix_text(mix: dict[str, dict[str, Any]]) -> str:
    """The class mix of the human labels a run trains on: examples (confirmations) and weighted rows."""
    if not mix:
        return "사람 라벨 없음"
    return ", ".join(
        f"{name} {entry['examples']}건(확인 {entry['confirmations']}) → {entry['rows']}행 {entry['share'] * 100:.0f}%"
        for name, entry in mix.items()
    )
