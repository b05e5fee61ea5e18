#!/usr/bin/env bash
# promtool checks of mod8's operations files and live metrics (CI runs this after the tests):
#   1. `promtool check rules` on deploy/prometheus/alerts.yml,
#   2. `promtool test rules` on deploy/prometheus/alerts.test.yml (a firing and a quiet case
#      per alert),
#   3. `promtool check metrics` on the /metrics of a live `mod8 serve` (classic text format,
#      `Accept: text/plain`), on the embedded defaults and, when the MOD8_*_URL variables are
#      set, on the real services; the render time of each scrape is printed.
# promtool comes from Debian's `prometheus` package (`scripts/services.sh up` installs it).
# Exits non-zero on any failure.
#
# Environment: CARGO_TARGET_DIR, where `mod8` is built (default: $HOME/.cache/mod8-target/ci).
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mod8-target/ci}"
command -v promtool >/dev/null || { echo "promtool not found: run scripts/services.sh up" >&2; exit 1; }
WORK=$(mktemp -d)
SERVER_PID=

stop_server() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=
}
cleanup() {
    stop_server
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "== promtool check rules"
promtool check rules deploy/prometheus/alerts.yml
echo "== promtool test rules"
promtool test rules deploy/prometheus/alerts.test.yml

cargo build --quiet -p mod8-app --bin mod8
MOD8="$CARGO_TARGET_DIR/debug/mod8"

# `mod8 serve` with the given environment on a free port; scrapes /metrics once the first
# background collection is in, and runs promtool check metrics on it.
check_live() {
    local what=$1
    shift
    local port base token text
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    base="http://127.0.0.1:$port"
    env "$@" RUST_LOG="${RUST_LOG:-warn}" MOD8_METRICS_INTERVAL_SECS=1 \
        "$MOD8" serve --addr "127.0.0.1:$port" >"$WORK/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 120); do
        curl -fsS "$base/healthz" >/dev/null 2>&1 && break
        kill -0 "$SERVER_PID" 2>/dev/null || { echo "mod8 serve ($what) exited:" >&2; cat "$WORK/server.log" >&2; exit 1; }
        sleep 0.5
    done
    token=$(sed -n 's/^TOKEN=//p' "$WORK/server.log" | head -n 1)
    [ -n "$token" ] || { echo "mod8 serve ($what) printed no TOKEN= line" >&2; cat "$WORK/server.log" >&2; exit 1; }
    # Until the first collection is in (mod8_dependency_up has samples).
    for _ in $(seq 1 60); do
        text=$(curl -fsS --max-time 2 -H "Authorization: Bearer $token" -H 'Accept: text/plain' "$base/metrics")
        grep -q '^mod8_dependency_up{' <<<"$text" && break
        sleep 0.5
    done
    echo "== promtool check metrics ($what)"
    grep '^mod8_dependency_up{' <<<"$text"
    curl -fsS --max-time 2 -o /dev/null -w "/metrics rendered in %{time_total} s\n" \
        -H "Authorization: Bearer $token" -H 'Accept: text/plain' "$base/metrics"
    promtool check metrics <<<"$text"
    echo "promtool check metrics: passed ($(wc -l <<<"$text") lines)"
    stop_server
}

check_live "embedded defaults" -u MOD8_POSTGRES_URL -u MOD8_MONGODB_URL -u MOD8_REDIS_URL \
    -u MOD8_AMQP_URL -u MOD8_REDIS_CLUSTER_URL -u MOD8_POSTGRES_READ_URL -u MOD8_AMQP_CLUSTER_URLS \
    -u MOD8_QUEUE_PREFIX
if [ -n "${MOD8_POSTGRES_URL:-}" ] && [ -n "${MOD8_MONGODB_URL:-}" ] \
    && [ -n "${MOD8_REDIS_URL:-}" ] && [ -n "${MOD8_AMQP_URL:-}" ]; then
    # Queues of their own (the same on every run, so nothing piles up); the shared database.
    check_live "real services" -u MOD8_AMQP_CLUSTER_URLS MOD8_QUEUE_PREFIX=mod8_promtool
else
    echo "the MOD8_*_URL variables are not all set: skipping promtool check metrics on the real services"
fi
