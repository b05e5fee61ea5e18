#!/usr/bin/env bash
# The PostgreSQL point-lookup reference for benches/orm.rs: `pgbench -S -M prepared -c 1`
# (one client, prepared primary-key SELECTs) for SECONDS (default 10) against a scale-1 pgbench
# database that this script creates, initialises and drops again. The server and role come
# from MOD8_POSTGRES_URL (the role needs CREATEDB).
#
# Prints one transaction latency per line (microseconds, from pgbench's per-transaction log)
# on stdout; pgbench's own summary goes to stderr.
set -euo pipefail

secs=${1:-10}
url=${MOD8_POSTGRES_URL:?MOD8_POSTGRES_URL names the PostgreSQL server}
url=${url%%\?*}
base=${url%/*}
db="mod8_pgbench_$$"
work=$(mktemp -d)

cleanup() {
    psql -q "$url" -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

psql -q "$url" -c "CREATE DATABASE $db" >/dev/null
pgbench -q -i -s 1 "$base/$db" >&2
cd "$work"
pgbench -n -S -M prepared -c 1 -T "$secs" -l --log-prefix=tx "$base/$db" >&2
# Log lines: client_id transaction_no latency_us script_no epoch_s epoch_us.
cat tx.* | awk '{ print $3 }'
