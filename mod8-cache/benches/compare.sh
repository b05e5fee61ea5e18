#!/usr/bin/env bash
# Measures this crate beside the Python stack it replaces, in one sitting: the Python peers'
# lru_cache hit and redis-py GET figures first, then this crate's bench, whose percentile tables
# print them beside its own (and beside moka, a plain fred client and redis-benchmark, which the
# bench runs itself). The load average is printed before each part: the figures are only worth
# comparing within one run on a quiet machine.
#
# Usage (from the repository root):
#   MOD8_PEERS_DIR=/path/to/peers/python mod8-cache/benches/compare.sh [criterion filter]
#
#   MOD8_PEERS_DIR     the Python peers' harness directory (bench_peers.py); required
#   MOD8_PEERS_PYTHON  the interpreter with its packages (default ~/.cache/peers-venv/bin/python)
#   MOD8_REDIS_URL     the Redis to measure against (default redis://127.0.0.1:6379/)
#
# Without a filter only the percentile tables run (the filter matches no criterion benchmark);
# pass e.g. `l1_hit` to run criterion's groups too.
set -euo pipefail

peers_dir=${MOD8_PEERS_DIR:?set MOD8_PEERS_DIR to the directory holding bench_peers.py}
python=${MOD8_PEERS_PYTHON:-$HOME/.cache/peers-venv/bin/python}
export MOD8_REDIS_URL=${MOD8_REDIS_URL:-redis://127.0.0.1:6379/}
filter=${1:-percentile-tables-only}
peers_json=$(mktemp -t mod8-peers-XXXXXX.json)
trap 'rm -f "$peers_json"' EXIT

load() { echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"; }

# Build first, so the compiler is not running while either side measures.
cargo bench -p mod8-cache --bench cache --no-run

load
echo "== Python peers: lru_hit, redis_get"
"$python" "$peers_dir/bench_peers.py" --only lru_hit redis_get --json "$peers_json"

load
echo "== mod8-cache"
MOD8_PEERS_JSON=$peers_json cargo bench -p mod8-cache --bench cache -- "$filter"
load
