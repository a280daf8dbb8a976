# A throwaway PostgreSQL server for the storage tests. Source this file, then:
#
#     source .ci/postgres.sh
#     pg_start            # installs PostgreSQL from Debian packages if needed, starts it, exports TEST_POSTGRES_URL
#     trap pg_stop EXIT   # stops the server and deletes its data directory
#     bash .ci/postgres.sh restart "$PG_CI_DIR" 3   # down for 3 s, then up on the same port (recovery tests)
#
# The work runs in a child `bash -euo pipefail` (this same file, executed), so every step fails loudly
# whatever the caller's shell options are; pg_start returns non-zero with a clear message on any failure.
# The server listens on 127.0.0.1 only, on a free port, with trust authentication and fsync off:
# it is for tests, never for data anyone wants to keep.

_PG_CI_SCRIPT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"

pg_start() {
    local state_file
    state_file="$(mktemp)"
    if ! bash "$_PG_CI_SCRIPT" start "$state_file"; then
        rm -f "$state_file"
        echo "pg_start: FAILED to start a PostgreSQL server for the tests (see the messages above)" >&2
        return 1
    fi
    # shellcheck disable=SC1090
    source "$state_file"
    rm -f "$state_file"
    export PG_CI_DIR PG_CI_PORT TEST_POSTGRES_URL
    echo "pg_start: PostgreSQL on 127.0.0.1:$PG_CI_PORT, TEST_POSTGRES_URL=$TEST_POSTGRES_URL"
}

pg_stop() {
    if [[ -z "${PG_CI_DIR:-}" ]]; then
        return 0
    fi
    if ! bash "$_PG_CI_SCRIPT" stop "$PG_CI_DIR"; then
        echo "pg_stop: FAILED to stop PostgreSQL cleanly; data directory was $PG_CI_DIR" >&2
        return 1
    fi
    unset PG_CI_DIR PG_CI_PORT TEST_POSTGRES_URL
}

# ---- the implementation, run as `bash postgres.sh start STATE_FILE | stop DIR` ----

_pg_die() {
    echo "postgres.sh: $*" >&2
    exit 1
}

_pg_bin_dir() {
    local candidate
    for candidate in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [[ -x "$candidate/initdb" && -x "$candidate/pg_ctl" ]]; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

_pg_install() {
    echo "postgres.sh: initdb/pg_ctl not found; installing PostgreSQL from Debian packages" >&2
    local sudo=""
    if [[ "$(id -u)" != 0 ]]; then
        command -v sudo >/dev/null || _pg_die "PostgreSQL is not installed and this user is not root (no sudo either): install the 'postgresql' package"
        sudo="sudo"
    fi
    command -v apt-get >/dev/null || _pg_die "PostgreSQL is not installed and apt-get is missing: install PostgreSQL (initdb, pg_ctl) by hand"
    $sudo apt-get update -qq || _pg_die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends postgresql \
        || _pg_die "apt-get install postgresql failed"
}

_pg_free_port() {
    local python
    python="$(command -v python3 || command -v python)" || _pg_die "python3 is needed to pick a free port"
    "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

_pg_start_impl() {
    local state_file="$1" bin_dir run_as=() ci_dir port database="moderator_test"
    [[ -n "$state_file" ]] || _pg_die "usage: postgres.sh start STATE_FILE"
    bin_dir="$(_pg_bin_dir)" || { _pg_install; bin_dir="$(_pg_bin_dir)" || _pg_die "PostgreSQL installed, but no initdb/pg_ctl under /usr/lib/postgresql/*/bin"; }

    ci_dir="$(mktemp -d /tmp/pg-ci.XXXXXX)"
    chmod 755 "$ci_dir"
    if [[ "$(id -u)" == 0 ]]; then
        # initdb refuses to run as root: the server runs as the 'postgres' system user.
        id postgres >/dev/null 2>&1 || useradd --system --home-dir "$ci_dir" --shell /usr/sbin/nologin postgres \
            || _pg_die "could not create the 'postgres' user"
        chown postgres: "$ci_dir"
        run_as=(runuser -u postgres --)
    fi
    port="$(_pg_free_port)"

    "${run_as[@]}" "$bin_dir/initdb" --pgdata="$ci_dir/data" --username=postgres --auth=trust \
        --encoding=UTF8 --no-locale >"$ci_dir/initdb.log" 2>&1 \
        || { cat "$ci_dir/initdb.log" >&2; _pg_die "initdb failed in $ci_dir/data"; }

    echo "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$ci_dir -c max_connections=200 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        >"$ci_dir/server.options"
    if ! "${run_as[@]}" "$bin_dir/pg_ctl" --pgdata="$ci_dir/data" --log="$ci_dir/server.log" --wait --timeout=60 \
        -o "$(cat "$ci_dir/server.options")" start >/dev/null; then
        cat "$ci_dir/server.log" >&2 || true
        _pg_die "the server did not start on 127.0.0.1:$port (log above; data in $ci_dir)"
    fi
    "$bin_dir/createdb" --host=127.0.0.1 --port="$port" --username=postgres "$database" \
        || _pg_die "createdb $database failed on 127.0.0.1:$port"

    cat >"$state_file" <<STATE
PG_CI_DIR='$ci_dir'
PG_CI_PORT='$port'
TEST_POSTGRES_URL='postgresql+asyncpg://postgres@127.0.0.1:$port/$database'
STATE
}

_pg_stop_impl() {
    local ci_dir="$1" bin_dir run_as=()
    [[ -n "$ci_dir" && "$ci_dir" == /tmp/pg-ci.* ]] || _pg_die "refusing to stop/delete '$ci_dir': not a pg_start directory"
    bin_dir="$(_pg_bin_dir)" || _pg_die "pg_ctl not found under /usr/lib/postgresql/*/bin"
    [[ "$(id -u)" == 0 ]] && run_as=(runuser -u postgres --)
    if [[ -d "$ci_dir/data" ]]; then
        "${run_as[@]}" "$bin_dir/pg_ctl" --pgdata="$ci_dir/data" --mode=fast --wait stop >/dev/null \
            || _pg_die "pg_ctl stop failed for $ci_dir/data"
    fi
    rm -rf "$ci_dir"
}

# Stop the running server (fast: sessions are cut), stay down DOWN_SECONDS, start it again on the same port (the
# training-worker tests restart it mid-run).
_pg_restart_impl() {
    local ci_dir="$1" down_seconds="${2:-0}" bin_dir run_as=()
    [[ -n "$ci_dir" && "$ci_dir" == /tmp/pg-ci.* && -f "$ci_dir/server.options" ]] || _pg_die "no pg_start server in '$ci_dir'"
    bin_dir="$(_pg_bin_dir)" || _pg_die "pg_ctl not found under /usr/lib/postgresql/*/bin"
    [[ "$(id -u)" == 0 ]] && run_as=(runuser -u postgres --)
    "${run_as[@]}" "$bin_dir/pg_ctl" --pgdata="$ci_dir/data" --mode=fast --wait stop >/dev/null \
        || _pg_die "pg_ctl stop failed for $ci_dir/data"
    sleep "$down_seconds"
    "${run_as[@]}" "$bin_dir/pg_ctl" --pgdata="$ci_dir/data" --log="$ci_dir/server.log" --wait --timeout=60 \
        -o "$(cat "$ci_dir/server.options")" start >/dev/null || _pg_die "pg_ctl start failed for $ci_dir/data"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -euo pipefail
    case "${1:-}" in
        start) _pg_start_impl "${2:-}" ;;
        stop) _pg_stop_impl "${2:-}" ;;
        restart) _pg_restart_impl "${2:-}" "${3:-0}" ;;
        *) _pg_die "source this file and call pg_start / pg_stop (or run: postgres.sh start STATE_FILE | stop DIR)" ;;
    esac
fi
