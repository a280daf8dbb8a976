"""The bot's use cases, free of Telegram (see `bot.moderation.service.Moderation`):

- `classification`: a review in, a stored verdict and its reply out (`bot.reviews` decides what is a review);
- `labelling`: 맞아요 / 틀렸어요 and `/feedback`, answered with what becomes of the label;
- `reviewing`: the `/review` queue, private chats only;
- `administration`: `/stats`, `/model` and the admins' commands;
- `group_watching`, `group_policy`, `group_reports`, `group_admin`: groups watched by their own policy (judge every message,
  decide about toxic or reported ones, act once), `/report`, `/settings` and the log chat's buttons (`group_texts` says it).

`texts` holds every Korean string the bot says; `replies` the data the use cases take and give.
"""

from bot.moderation.context import Retrainer
from bot.moderation.group_admin import BotRights
from bot.moderation.group_reports import Report
from bot.moderation.group_watching import ChatAdmins, GroupMessage, GroupOutcome
from bot.moderation.labelling import RIGHT_WORDS, WRONG_WORDS
from bot.moderation.replies import Actor, Button, IncomingText, Reply, echo, parse_id, parse_label
from bot.moderation.reviewing import REVIEW_SKIP
from bot.moderation.service import Moderation

__all__ = [
    "REVIEW_SKIP",
    "RIGHT_WORDS",
    "WRONG_WORDS",
    "Actor",
    "BotRights",
    "Button",
    "ChatAdmins",
    "GroupMessage",
    "GroupOutcome",
    "IncomingText",
    "Moderation",
    "Reply",
    "Report",
    "Retrainer",
    "echo",
    "parse_id",
    "parse_label",
]
