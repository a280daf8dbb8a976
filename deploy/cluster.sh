#!/usr/bin/env bash
# `make cluster`: the whole set on one machine, for trying it (docs/cluster.md): a PostgreSQL server (Debian's
# packages, as CI starts it), the first models imported into it, then deploy/Procfile under honcho: two bot
# processes sharing the webhook, one training worker and the web app. Ctrl-C stops everything, PostgreSQL last.
#
# The database is a throwaway (.ci/postgres.sh: fsync off, its directory deleted at the end): this is for trying
# the set, not for data anyone wants to keep. Production runs each process under its own supervisor.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"

# Telegram delivers to several processes only through a webhook: a token and a public HTTPS address are needed.
if ! python -c 'import sys; from bot.settings import get_settings as g; s = g(); sys.exit(0 if s.telegram_bot_token and s.telegram_bot_token.get_secret_value().strip() and s.webhook_url else 1)'; then
    echo "make cluster needs TELEGRAM_BOT_TOKEN and WEBHOOK_URL (environment or .env): Telegram delivers to" >&2
    echo "several bot processes only through a webhook (an HTTPS address that reaches port \${BOT1_PORT:-8443})." >&2
    exit 2
fi

source .ci/postgres.sh
pg_start
trap pg_stop EXIT
export DATABASE_URL="$TEST_POSTGRES_URL" TRAINING_EXECUTOR=worker
if [[ -z "${KORPORA_ROOT:-}" && -d ../shared/korpora ]]; then
    export KORPORA_ROOT="$PWD/../shared/korpora"   # the worker trains on it
fi
# The web app runs in its own process (deploy/Procfile's `web`); the bots hand out links to it.
export WEBHOOK_REUSE_PORT="${WEBHOOK_REUSE_PORT:-true}" WEB_BASE_URL="${WEB_BASE_URL:-http://127.0.0.1:${WEB_APP_PORT:-8080}}"
unset WEB_PORT
python -m bot.quickstart --models-only   # trains the first models when missing, imports them into PostgreSQL
honcho --procfile deploy/Procfile --app-root . start
