"""What the bot says about group moderation (Korean): the log chat, warnings, /settings."""

from __future__ import annotations

from bot.storage import ActionKind, ChatMode, ToxicAction

# -- the rule that fired (log chat) -----------------------------------------------------------------------------
RULE_TOXIC = "공격·혐오 확률 ≥ {threshold:.0f}%"
RULE_REPORTS = "신고 {reporters}명 (기준 {limit}명)"
RULE_STRIKE = ", 경고 {strikes}회째 ({hours}시간 안)"
RULE_MUTE = ", 경고 {strikes}회째 ({limit}회부터 제한) → {minutes}분 채팅 제한"
RULE_BAN = ", 경고 {strikes}회째 ({limit}회부터 추방) → 추방"

ACTION_NAMES = {
    ActionKind.DELETE: "메시지 삭제",
    ActionKind.MUTE: "채팅 제한",
    ActionKind.BAN: "추방",
    ActionKind.UNMUTE: "채팅 제한 해제",
    ActionKind.UNBAN: "추방 해제",
}

# -- the log chat ------------------------------------------------------------------------------------------
LOG_ACTED = "🛡️ 조치했어요: {actions}"
LOG_WATCHED = "👀 지켜보기 모드라 아무것도 하지 않았어요. 조치 모드였다면: {actions}"
LOG_BODY = (
    "{header}\n"
    "그룹: {chat_id}\n"
    "작성자: {user_id}\n"
    "메시지: {text}\n"
    "표현: {toxicity}\n"
    "감성: {sentiment}\n"
    "규칙: {rule}"
)
LOG_ACTION_FAILED = "⚠️ 그룹 {chat_id}: {action}을(를) 하지 못했어요 ({reason}). 판정 #{decision_id}"
LOG_MISSING_RIGHT = (
    "⚠️ 그룹 {chat_id}: 봇에게 '{right}' 권한이 없어 {action} 대신 기록만 했어요. 봇을 관리자로 지정하고 그 권한을 "
    "주세요."
)
RIGHT_NAMES = {"can_delete_messages": "메시지 삭제", "can_restrict_members": "사용자 차단"}
REASON_TOO_OLD = "48시간이 지난 메시지는 지울 수 없어요"
REASON_GONE = "메시지가 이미 없어요"

BUTTON_UNDO = "잘못 판정 / 되돌리기"
BUTTON_CONFIRM = "맞아요"
BUTTON_BAN = "추방"

LOG_NOT_ADMIN = "이 그룹의 관리자만 누를 수 있어요."
LOG_UNKNOWN = "이 판정을 찾지 못했어요."
LOG_UNDONE = "되돌렸어요: 경고를 지우고 '정상'으로 기록했어요 (재학습에 쓰여요)."
LOG_CONFIRMED = "맞다고 기록했어요 (재학습에 쓰여요)."
LOG_BANNED = "추방했어요."
LOG_ALREADY = "이미 처리된 판정이에요: {answer}."
ADMIN_ANSWERS = {"wrong": "잘못 판정", "right": "맞아요", "banned": "추방"}

# -- the group ---------------------------------------------------------------------------------------------
WARNING = "⚠️ 사용자 {user_id}님의 메시지를 지웠어요. 공격적이거나 혐오하는 표현이에요 (경고 {strikes}회)."

# -- /report ---------------------------------------------------------------------------------------------
REPORT_USAGE = "신고할 메시지에 답장하며 /report 를 보내 주세요."
REPORT_OWN = "자기 메시지는 신고할 수 없어요."
REPORT_ADMIN = "관리자와 봇의 메시지는 신고로 조치하지 않아요."
REPORT_RECORDED = "신고를 받았어요 ({reporters}/{limit}명). 관리자에게 전달돼요."
REPORT_RECORDED_PAST_LIMIT = "신고를 받았어요. 이미 {limit}명 이상이 신고해 관리 규칙대로 처리했어요."
REPORT_RECORDED_NO_LIMIT = "신고를 받았어요. 관리자에게 전달돼요."
REPORT_AGAIN = "이미 신고한 메시지예요 ({reporters}/{limit}명)."
REPORT_RATE_LIMITED = "신고는 한 시간에 {limit}번까지 할 수 있어요. 잠시 후 다시 해 주세요."
REPORT_OFF = "이 그룹은 관리 기능이 꺼져 있어요."

# -- joining a group -------------------------------------------------------------------------------------
JOINED = (
    "안녕하세요! 이 그룹의 메시지를 살펴보는 관리 봇이에요. 처음에는 지켜보기 모드라 아무것도 지우지 않아요. "
    "관리자는 /settings 로 규칙을 보고 바꿀 수 있어요 (예: /settings log 채팅ID, /settings mode act)."
)

# -- /settings ---------------------------------------------------------------------------------------------
MODE_NAMES = {ChatMode.OFF: "끔", ChatMode.WATCH: "지켜보기 (기록만)", ChatMode.ACT: "조치"}
MODE_WORDS = {
    "off": ChatMode.OFF,
    "끔": ChatMode.OFF,
    "watch": ChatMode.WATCH,
    "지켜보기": ChatMode.WATCH,
    "act": ChatMode.ACT,
    "조치": ChatMode.ACT,
}
ACTION_WORDS = {
    "delete": ToxicAction.DELETE,
    "삭제": ToxicAction.DELETE,
    "warn": ToxicAction.WARN,
    "경고": ToxicAction.WARN,
}
TOXIC_ACTION_NAMES = {ToxicAction.DELETE: "삭제", ToxicAction.WARN: "삭제하고 그룹에 경고"}
ON_WORDS = {"on": True, "켜기": True, "off": False, "끄기": False}

SETTINGS_VIEW = (
    "⚙️ 이 그룹의 관리 규칙\n"
    "• 모드: {mode}\n"
    "• 기준: 공격·혐오 확률 {threshold:.0f}% 이상\n"
    "• 조치: {action}\n"
    "• 채팅 제한: {mute}\n"
    "• 추방: {ban}\n"
    "• 경고를 세는 기간: {window}시간\n"
    "• 리뷰 판정을 그룹에 올리기: {sentiment}\n"
    "• 신고: {reports}\n"
    "• 기록 채팅: {log}\n"
    "{rights}\n\n"
    "바꾸기: /settings mode act|watch|off, /settings threshold 90, /settings action delete|warn, "
    "/settings mute 3 60 (경고 3회면 60분, 0이면 안 함), /settings ban 5 (0이면 안 함), /settings window 24, "
    "/settings sentiment on|off, /settings reports 3 (신고 3명이면 조치, 0이면 안 함), "
    "/settings log 채팅ID|here|off"
)
MUTE_RULE = "경고 {strikes}회면 {minutes}분"
BAN_RULE = "경고 {strikes}회면 추방"
REPORTS_RULE = "{reporters}명이 신고하면 조치"
NEVER = "안 함"
YES = "예"
NO = "아니요"
NO_LOG_CHAT = "없음 (판정은 저장만 해요)"
RIGHTS_VIEW = "봇의 권한: 메시지 삭제 {delete}, 사용자 차단 {restrict}, 모든 메시지 보기 {reads}"
RIGHTS_MISSING = "\n⚠️ 권한이 없는 조치는 하지 않고 기록만 해요. 봇을 관리자로 지정하고 필요한 권한을 주세요."
READS_ONLY_MENTIONS = (
    "\n⚠️ 지금은 저를 부르는 메시지만 보여요. 모든 메시지를 보려면 봇을 관리자로 지정하거나, BotFather에서 "
    "/setprivacy → Disable 로 바꾼 뒤 봇을 그룹에서 뺐다가 다시 초대해 주세요."
)
SETTINGS_GROUP_ONLY = "/settings 는 관리할 그룹에서 보내 주세요. 그 그룹의 관리 규칙을 보여 주고 바꿔요."
SETTINGS_NOT_ADMIN = "이 그룹의 관리자만 관리 규칙을 바꿀 수 있어요."
SETTINGS_CHANGED = "✅ 바꿨어요.\n\n{view}"
SETTINGS_BAD = "알 수 없는 설정이에요: {argument}\n예: /settings mode act, /settings threshold 90"
SETTINGS_BAD_VALUE = "값이 올바르지 않아요: {detail}"
SETTINGS_LOG_NOT_ADMIN = "기록 채팅 {chat_id}의 관리자여야 그 채팅을 기록 채팅으로 정할 수 있어요."
