"""Who the bot tests talk as: the bot's token (which must never reach a log) and the admin's user id."""

TOKEN = "123456789:AAH-test-token-do-not-log-0123456789ab"
ADMIN_ID = 4242
