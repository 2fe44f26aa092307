# Shared by scripts/test, scripts/demo and scripts/bench: set-up a fresh
# machine needs (Postgres up, localstripe in a venv), and clean-up of what
# was started. Sourced, not run.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${PAYSYNC_CACHE:-$HOME/.cache/paysync}"
LOCALSTRIPE_VERSION="1.15.10"
VENV="$CACHE/venv-localstripe-$LOCALSTRIPE_VERSION"
PG_ADMIN_URL="${PAYSYNC_TEST_PG:-postgres://postgres@127.0.0.1:5432/postgres}"

say() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; }
die() { say "FAILED: $*"; exit 1; }

PIDS=()
cleanup() {
    for pid in "${PIDS[@]:-}"; do
        [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]:-}"; do
        [ -n "$pid" ] && wait "$pid" 2>/dev/null || true
    done
}

need() { command -v "$1" >/dev/null 2>&1 || die "$1 is not installed ($2)"; }

# A TCP port nobody listens on.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Wait until a URL answers (any HTTP status), or fail after $2 seconds.
wait_http() {
    local url="$1" secs="${2:-30}" i=0
    until curl -s -o /dev/null --max-time 2 "$url"; do
        i=$((i + 1))
        [ "$i" -gt $((secs * 5)) ] && return 1
        sleep 0.2
    done
}

# Postgres on 127.0.0.1:5432: start the cluster if it is down; fail loudly if it cannot.
ensure_postgres() {
    need psql "Debian package postgresql-client"
    if psql "$PG_ADMIN_URL" -Atqc 'select 1' >/dev/null 2>&1; then return 0; fi
    say "Postgres is down; starting it"
    local ver
    ver="$(ls /etc/postgresql 2>/dev/null | head -1)"
    [ -n "$ver" ] || die "Postgres is not reachable at $PG_ADMIN_URL and no cluster is installed in /etc/postgresql"
    pg_ctlcluster --skip-systemctl-redirect "$ver" main start \
        || die "could not start Postgres ($ver main); tests need it at $PG_ADMIN_URL"
    for _ in $(seq 1 50); do
        psql "$PG_ADMIN_URL" -Atqc 'select 1' >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    die "Postgres started but does not answer at $PG_ADMIN_URL"
}

# Drop databases left by earlier test runs (tests name theirs
# paysync_t_<PAYSYNC_TEST_DB_TAG>*; a tag, lowercase letters, digits and `_`,
# keeps concurrent runs on one Postgres server from dropping each other's).
drop_test_databases() {
    local tag="${PAYSYNC_TEST_DB_TAG:-}"
    [[ "$tag" =~ ^[a-z0-9_]*$ ]] || die "PAYSYNC_TEST_DB_TAG may hold lowercase letters, digits and _ only"
    psql "$PG_ADMIN_URL" -Atqc "select datname from pg_database where datname like 'paysync\_t\_${tag//_/\\_}%'" 2>/dev/null |
        while read -r db; do
            [ -n "$db" ] && psql "$PG_ADMIN_URL" -qc "drop database if exists \"$db\" with (force)" >/dev/null 2>&1 || true
        done
}

# localstripe (PyPI) in a cached venv.
ensure_localstripe() {
    need python3 "CPython 3 with venv"
    if [ ! -x "$VENV/bin/localstripe" ]; then
        say "installing localstripe $LOCALSTRIPE_VERSION into $VENV"
        rm -rf "$VENV"
        python3 -m venv "$VENV" || die "python3 -m venv failed (Debian: apt install python3-venv)"
        "$VENV/bin/pip" install -q "localstripe==$LOCALSTRIPE_VERSION" || die "pip install localstripe failed"
    fi
}

# Start localstripe on port $1, log to $2; sets LOCALSTRIPE_URL.
start_localstripe() {
    local port="$1" log="$2"
    ensure_localstripe
    "$VENV/bin/localstripe" --port "$port" --from-scratch >"$log" 2>&1 &
    PIDS+=("$!")
    LOCALSTRIPE_URL="http://127.0.0.1:$port"
    wait_http "$LOCALSTRIPE_URL/v1/customers" 30 || { tail -20 "$log" >&2; die "localstripe did not start on port $port"; }
}
