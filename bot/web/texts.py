"""The web app's own Korean strings (the use cases' replies come from `bot.moderation.texts`)."""

LOGIN_NEEDED = (
    "로그인이 필요해요. 텔레그램에서 저와의 개인 채팅에 /web 을 보내면 로그인 링크를 받을 수 있어요."
)
LOGIN_LINK_INVALID = (
    "이 로그인 링크는 쓸 수 없어요 (모르는 링크이거나, 이미 썼거나, 10분이 지났어요). "
    "텔레그램에서 /web 을 다시 보내 새 링크를 받아 주세요."
)
LOGIN_NOT_ALLOWED = "관리자, 검토자, 그리고 제가 지켜보는 그룹의 관리자만 관리 화면을 쓸 수 있어요."
LOGIN_THROTTLED = "로그인 실패가 너무 많아요. 1분 뒤에 다시 시도해 주세요."
ADMIN_ONLY = "관리자만 볼 수 있는 화면이에요."
NO_TELEGRAM_ID = "검토 대기열은 텔레그램 계정으로 로그인해야 쓸 수 있어요 (/web 링크)."
CSRF_FAILED = (
    "요청을 확인할 수 없어요 (보안 토큰이 없거나 맞지 않아요). 화면을 새로 고친 뒤 다시 시도해 주세요."
)
BAD_REQUEST = "요청이 올바르지 않아요."
NOT_FOUND = "찾는 화면이 없어요."
SERVER_ERROR = "죄송해요, 처리 중에 문제가 생겼어요. 잠시 후 다시 시도해 주세요."
LOGGED_OUT = "로그아웃했어요."
GROUP_ADMIN_ONLY_CHATS = "그룹 관리자는 자신이 관리하는 그룹의 화면만 볼 수 있어요."
NOT_YOUR_CHAT = "이 그룹의 관리자만 볼 수 있는 화면이에요."
