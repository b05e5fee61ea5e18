#!/usr/bin/env bash
# The API contract check: `mod8 serve` on the embedded defaults (in-memory SQLite, document
# store, cache and broker) on a free loopback port, then Schemathesis against its own
# `GET /openapi.json`: generated requests for every operation, each response checked for
# - no 5xx (not_a_server_error),
# - a documented status (status_code_conformance),
# - a documented content type (content_type_conformance),
# - a body matching the documented schema (response_schema_conformance).
# Then the server must still be up. Exits non-zero on any failure.
#
# `GET /api/live` is left out: it is an endless event stream (no request of it ever completes),
# tested by mod8-app/tests/live_http.rs and, for its documented statuses, tests/openapi.rs.
#
# Environment:
#   MOD8_API_TOKEN        sent as `Authorization: Bearer $MOD8_API_TOKEN` on every request
#                         (otherwise the token `mod8 serve` prints, see the hook below).
#   MOD8_CONTRACT_EXAMPLES  test cases per operation and phase (default 50).
#   CARGO_TARGET_DIR      where `mod8` is built (default: $HOME/.cache/mod8-target/ci).
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
EXAMPLES="${MOD8_CONTRACT_EXAMPLES:-50}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mod8-target/ci}"
VENV="$HOME/.cache/mod8-schemathesis/venv-$SCHEMATHESIS_VERSION"
WORK=$(mktemp -d)
SERVER_PID=

cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# Schemathesis, pinned, in a venv cached between runs.
if [ ! -x "$VENV/bin/schemathesis" ] || ! "$VENV/bin/schemathesis" --version | grep -q "$SCHEMATHESIS_VERSION"; then
    echo "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

cargo build --quiet -p mod8-app --bin mod8
MOD8="$CARGO_TARGET_DIR/debug/mod8"

# A free loopback port (the kernel picks it; a race with another process is unlikely and
# shows as a failed start below).
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"

# Embedded defaults: none of the service URLs CI exports. Rate limits far above what the run
# sends: it checks the contract, not the limiters (they have their own tests); with the
# defaults most generated registrations would meet a 429.
env -u MOD8_POSTGRES_URL -u MOD8_MONGODB_URL -u MOD8_REDIS_URL -u MOD8_AMQP_URL \
    -u MOD8_REDIS_CLUSTER_URL -u MOD8_POSTGRES_READ_URL -u MOD8_AMQP_CLUSTER_URLS RUST_LOG="${RUST_LOG:-warn}" \
    MOD8_RATE_LIMIT_PER_SEC=10000 MOD8_RATE_LIMIT_BURST=10000 \
    MOD8_REGISTRATIONS_PER_MIN=600000 MOD8_REGISTRATION_BURST=10000 \
    "$MOD8" serve --addr "127.0.0.1:$PORT" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!

up() { curl -fsS -o /dev/null "$BASE/healthz" 2>/dev/null; }
for _ in $(seq 1 300); do
    up && break
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "mod8 serve exited before answering /healthz:" >&2
        cat "$WORK/server.log" >&2
        exit 1
    fi
    sleep 0.1
done
up || { echo "mod8 serve did not answer /healthz in 30 s" >&2; cat "$WORK/server.log" >&2; exit 1; }
echo "mod8 serve is up on $BASE"

# `mod8 serve` without MOD8_AUTH_KEYS signs with a random development key and prints one admin
# token on stdout as `TOKEN=<jwt>`; the operations that need a token are exercised with it.
if [ -z "${MOD8_API_TOKEN:-}" ]; then
    MOD8_API_TOKEN=$(sed -n 's/^TOKEN=//p' "$WORK/server.log" | head -n 1)
    [ -n "$MOD8_API_TOKEN" ] || { echo "mod8 serve printed no TOKEN= line" >&2; cat "$WORK/server.log" >&2; exit 1; }
fi
AUTH=()
if [ -n "${MOD8_API_TOKEN:-}" ]; then
    AUTH=(-H "Authorization: Bearer $MOD8_API_TOKEN")
fi

status=0
# From the scratch directory: Schemathesis keeps state (`.schemathesis/`) in its working
# directory, which is not to land in the clone.
(cd "$WORK" && "$VENV/bin/schemathesis" run "$BASE/openapi.json" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --max-examples "$EXAMPLES" \
    --seed "${MOD8_CONTRACT_SEED:-20260101}" \
    --generation-database none \
    --request-timeout 15 \
    --exclude-path /api/live \
    --no-color \
    "${AUTH[@]}") || status=$?

if ! up; then
    echo "mod8 serve is no longer answering /healthz after the run" >&2
    cat "$WORK/server.log" >&2
    exit 1
fi
if [ "$status" -ne 0 ]; then
    echo "schemathesis found contract violations (exit $status); server log:" >&2
    tail -n 50 "$WORK/server.log" >&2
    exit "$status"
fi
echo "API contract: every check passed; the server is still up"
