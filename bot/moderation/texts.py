"""Every user-facing string of the bot's use cases (Korean), in one place."""

from __future__ import annotations

from classifier.tasks import TASK_TITLES, TOXICITY

BUTTON_RIGHT = "맞아요"
BUTTON_WRONG = "틀렸어요"
BUTTON_SKIP = "건너뛰기"
BUTTON_TOXIC_RIGHT = "⚠️ 맞아요"
BUTTON_TOXIC_WRONG = "⚠️ 아니에요"

HELP = (
    "안녕하세요! 한국어 리뷰를 보내 주시면 긍정/부정을 판정해 드려요.\n\n"
    "• 리뷰를 그냥 보내면 판정과 확률을 답장해요. 그룹에서는 저를 멘션하거나 제 메시지에 답장해 주세요. "
    "여섯 글자보다 짧은 글은 리뷰로 보지 않아요.\n"
    "• /predict 텍스트 — 모든 분류의 확률을 보여줘요 (메시지에 답장하며 /predict 해도 돼요).\n"
    "• 판정이 틀렸다면 '틀렸어요' 버튼을 누르거나 판정에 답장하며 /feedback wrong 을 보내 주세요. "
    "맞았다면 '맞아요' 버튼이나 /feedback right 로 알려 주세요. "
    "/feedback <분류 이름> 으로 정답을 직접 알려 줘도 돼요.\n"
    "• /stats — 통계, /model — 사용 중인 모델\n"
    "검토자: /review (저와의 개인 채팅에서) — 확인이 필요한 리뷰를 하나씩 보여 드려요. "
    "/web — 관리 화면 로그인 링크 (개인 채팅에서)\n"
    "관리자: /retrain, /runs, /rollback, /void 사용자ID\n\n"
    "알려 주신 정답(정정과 확인 모두)은 검토자가 일부를 확인해 믿을 수 있다고 확인되면 재학습에 쓰여요."
)

VERDICT = "{label} 리뷰 ({confidence:.1f}%)"
VERDICT_TRUNCATED_NOTE = "\n(긴 글이라 앞부분만 보고 판정했어요)"
PROBABILITIES_HEADER = "분류별 확률:"
PROBABILITY_LINE = "• {label}: {probability:.1f}%"
# Toxicity: a line under the sentiment verdict, only when the text is not 정상.
TOXICITY_LINE = "⚠️ {label} 표현 ({confidence:.1f}%)"
TOXICITY_PROBABILITIES_HEADER = "표현 분류별 확률:"

EMPTY_TEXT = "분류할 글자가 없어요. 리뷰 내용을 텍스트로 보내 주세요."
TEXT_TOO_LONG = "리뷰가 너무 길어요 ({length}자). {limit}자 이하로 보내 주세요."
NOT_A_REVIEW = "리뷰로 보기엔 너무 짧아요. 여섯 글자 이상의 리뷰를 보내 주시면 판정해 드릴게요."
NON_TEXT = "텍스트 리뷰만 판정할 수 있어요. 사진에는 설명(캡션)을 붙여 주세요."
PREDICT_USAGE = "사용법: /predict 리뷰 내용 — 또는 판정할 메시지에 답장하며 /predict 를 보내 주세요."
PREDICT_BOT_MESSAGE = "제가 보낸 메시지는 판정하지 않아요. 리뷰 원문에 답장하며 /predict 를 보내 주세요."
NO_MODEL = "아직 사용할 수 있는 모델이 없어요. 관리자가 모델을 준비하는 중이에요."
STORAGE_ERROR = "죄송해요, 기록을 저장하는 중에 문제가 생겼어요. 잠시 후 다시 시도해 주세요."
INVALID_DATA = "죄송해요, 이 메시지는 저장할 수 없어요: {detail}"
INTERNAL_ERROR = "죄송해요, 처리 중에 문제가 생겼어요. 잠시 후 다시 시도해 주세요."

FEEDBACK_NO_VERDICT = "정정할 판정을 찾지 못했어요. 제 판정 메시지에 답장하며 /feedback wrong 을 보내 주세요."
FEEDBACK_RECORDED = "고마워요! 이 리뷰를 '{label}'(으)로 기록했어요."
FEEDBACK_CONFIRMED = "고마워요! '{label}' 판정이 맞다고 기록했어요."
# What becomes of a label (one of these follows FEEDBACK_RECORDED or FEEDBACK_CONFIRMED).
LABEL_COUNTS = "다음 재학습에 반영돼요."
LABEL_WAITS_FOR_REVIEWER = "검토자가 확인하면 재학습에 반영돼요. 처음 몇 건은 검토자가 직접 확인해요."
LABEL_NOT_COUNTED_NO_REVIEWER = "다만 지금은 확인해 줄 검토자가 없어서 재학습에는 쓰이지 않아요."
LABEL_NOT_COUNTED_RECORD = "다만 최근 검토 결과와 자주 달라서 지금은 재학습에 쓰이지 않아요."
FEEDBACK_ALREADY = "이미 '{label}'(으)로 기록되어 있어요."
FEEDBACK_SAME_AS_VERDICT = "'{label}'은(는) 제 판정과 같아요. 정답이 다른 분류라면 그 이름을 알려 주세요."
FEEDBACK_CHOOSE = "어떤 분류가 맞나요?"
FEEDBACK_NO_TASK_VERDICT = "이 리뷰에는 '{label}'을(를) 판정한 기록이 없어요."
FEEDBACK_UNKNOWN_LABEL = "'{given}'은(는) 모르는 분류예요. 가능한 분류: {labels}"
FEEDBACK_USAGE = (
    "사용법: /feedback wrong (판정이 틀렸을 때), /feedback right (맞았을 때) 또는 /feedback <분류 이름>"
)
FEEDBACK_RATE_LIMITED = (
    "정정과 확인을 너무 많이 보내셨어요. 한 시간에 {limit}개까지 받을 수 있어요. 잠시 후 다시 시도해 주세요."
)
FEEDBACK_NOT_YOURS = "이 버튼은 이 채팅의 판정에만 쓸 수 있어요."

STATS = (
    "📊 통계\n"
    "• 판정: {verdicts}건\n"
    "• 정정: {corrections}건 (정정된 판정 {corrected_verdicts}건, {corrected_share:.1f}%)\n"
    "• 확인(맞아요): {confirmations}건\n"
    "• 검토 대기열 라벨: {review_labels}건\n"
    "• 검토자 확인을 기다리는 라벨: {waiting}건 (확인 결과가 나빠 쓰이지 않는 라벨 {not_counting}건)\n"
    "{by_label}"
    "• 모델: {model}"
)
STATS_BY_LABEL_LINE = "• {label}: {count}건\n"

MODEL_NONE = "활성 모델이 없어요."
MODEL_STATUS = {"candidate": "후보", "active": "사용 중", "rejected": "탈락", "retired": "은퇴"}
MODEL_INFO = "#{id} ({status}), 정확도 {accuracy}, macro-F1 {macro_f1}, 만든 때 {created}"
MODEL_INFO_HEADER = "사용 중인 모델: "
TOXICITY_MODEL_INFO_HEADER = TASK_TITLES[TOXICITY] + " 모델: "
TOXICITY_MODEL_NONE = "없어요 (표현은 판정하지 않아요)."
MODEL_SERVING_OTHER = (
    "⚠️ 지금 답하는 모델은 #{served}이고, 데이터베이스의 활성 모델은 #{active}이에요. 곧 맞춰져요."
)
METRIC_UNKNOWN = "알 수 없음"

ADMIN_ONLY = "관리자만 쓸 수 있는 명령이에요."

RETRAIN_QUEUED = (
    "{task} 모델 재학습 #{run_id}을(를) 대기열에 넣었어요. 진행 상황을 이 메시지로 알려 드릴게요."
)
RETRAIN_ALREADY = "이미 진행 중인 재학습 #{run_id}이(가) 있어요 (한 번에 하나씩 학습해요)."
RETRAIN_USAGE = "어느 모델을 재학습할까요? /retrain (감성, 기본) 또는 /retrain 표현"
RETRAIN_PROGRESS = "재학습 #{run_id}: {text}"

RUNS_NONE = "아직 재학습 기록이 없어요."
RUNS_HEADER = "최근 재학습:"
RUN_LINE = "#{id} {task} {status} ({trigger}) {created}{details}"
RUN_STATUS = {
    "queued": "대기",
    "running": "진행 중",
    "succeeded": "적용됨",
    "failed": "실패",
    "rejected": "기각됨",
}
RUN_TRIGGER = {"schedule": "예약", "admin": "관리자", "cli": "명령줄"}

ROLLBACK_NONE = "되돌릴 이전 모델이 없어요."
ROLLBACK_DONE = "{task} 모델을 #{old}에서 #{new}(으)로 되돌렸어요."
ROLLBACK_USAGE = "어느 모델을 되돌릴까요? /rollback (감성, 기본) 또는 /rollback 표현"
ROLLBACK_SKIPPED = "불러올 수 없어 건너뛴 버전: {skipped}"

REVIEW_ONLY = "검토자와 관리자만 쓸 수 있는 명령이에요."
REVIEW_PRIVATE_ONLY = "검토 대기열에는 다른 채팅의 글도 있어서 저와의 개인 채팅에서만 보여 드려요. 개인 채팅에서 /review 를 보내 주세요."
REVIEW_DISPUTED_NOTE = "사용자 라벨 확인 항목이에요.\n"
REVIEW_EMPTY = "검토할 리뷰가 더 없어요. 고마워요!"
REVIEW_SKIPPED = "건너뛰었어요."
REVIEW_UNDONE = "마지막 라벨을 취소했어요. 그 리뷰를 다시 보여 드릴게요."
REVIEW_NOTHING_TO_UNDO = "취소할 라벨이 없어요."
REVIEW_ITEM = (
    "🔎 검토 (남은 {remaining}건)\n\n{text}\n\n"
    "모델 판정: {verdict} ({probabilities})\n맞는 분류를 눌러 주세요."
)

# /web: a one-time link to the operator web app (bot/web)
WEB_LINK = (
    "관리 화면 로그인 링크예요 ({minutes}분 동안 한 번만 쓸 수 있어요. 다른 사람에게 보내지 마세요):\n{url}"
)
WEB_LINK_SENT = (
    "관리 화면 로그인 링크를 보냈어요 ({minutes}분 동안 한 번만 쓸 수 있어요; 링크는 보낸 뒤 지웠어요)."
)
WEB_PRIVATE_ONLY = "로그인 링크는 저와의 개인 채팅에서만 보내 드려요. 개인 채팅에서 /web 을 보내 주세요."
WEB_ONLY = "관리자, 검토자, 그리고 제가 지켜보는 그룹의 관리자만 관리 화면을 쓸 수 있어요."
WEB_OFF = "관리 화면이 꺼져 있어요 (WEB_PORT가 설정되지 않았어요)."
MODEL_ACTIVATED = "{task} 모델을 #{old}에서 #{new}(으)로 바꿨어요."
MODEL_ALREADY_ACTIVE = "#{id}은(는) 이미 사용 중인 모델이에요."
MODEL_CANNOT_ACTIVATE = "#{id} 모델을 쓸 수 없어요: {reason}"

VOID_USAGE = "사용법: /void 사용자ID"
VOID_DONE = "사용자 {user_id}의 라벨(정정과 확인) {count}건을 무효로 했어요."

CHAT_WELCOME = "터미널 모드예요. 리뷰를 입력하거나 /help 를 입력하세요. 끝내려면 Ctrl-D."
CHAT_BUTTONS_HINT = "(틀렸다면 /feedback wrong)"
CHAT_UNKNOWN_COMMAND = "모르는 명령이에요. /help 를 입력해 보세요."
