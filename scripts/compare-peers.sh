#!/usr/bin/env bash
# Runs the Python peer harness and mod8's benches in one sitting and prints one table of ratios
# (mod8 ÷ peer, mod8 ÷ server tool) — the comparison users ask for. Only figures from one
# sitting compare: the load average is printed before each part, and the run is worth keeping
# only on an otherwise quiet machine.
#
# Usage (from anywhere in the repository, services exported as for the tests):
#   MOD8_PEERS_DIR=/path/to/peers/python scripts/compare-peers.sh [--quick] [--json OUT]
#
#   MOD8_PEERS_DIR     directory holding the peers' bench_peers.py (required)
#   MOD8_PEERS_PYTHON  its interpreter (default ~/.cache/peers-venv/bin/python)
#   --quick            shorter criterion runs (1 s warm-up, 3 s measurement)
#   --json OUT         also write the ratio table as JSON
#
# Server-backed rows need MOD8_POSTGRES_URL, MOD8_REDIS_URL and MOD8_AMQP_URL (the bench
# skips a group whose variable is unset, and its row is left out of the table).
set -euo pipefail
cd "$(dirname "$0")/.."

peers_dir=${MOD8_PEERS_DIR:?set MOD8_PEERS_DIR to the directory holding bench_peers.py}
python=${MOD8_PEERS_PYTHON:-$HOME/.cache/peers-venv/bin/python}
quick=()
json_out=()
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=(--warm-up-time 1 --measurement-time 3) ;;
        --json) json_out=(--json "$2"); shift ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done

work=$(mktemp -d -t mod8-compare-XXXXXX)
trap 'rm -rf "$work"' EXIT
export MOD8_BENCH_FIGURES=$work/figures.jsonl
export MOD8_PEERS_JSON=$work/peers.json
# criterion's results of this sitting only, not those of earlier runs.
export CRITERION_HOME=$work/criterion

load() { echo "== load average: $(cut -d' ' -f1-3 /proc/loadavg)"; }

# Build everything first, so the compiler is not running while either side measures.
for crate in mod8-cache mod8-orm mod8-mq; do
    cargo bench -p "$crate" --no-run
done
cargo bench -p mod8-datasci --features testing --no-run

load
echo "== Python peers (bench_peers.py)"
"$python" "$peers_dir/bench_peers.py" --json "$MOD8_PEERS_JSON" || echo "(some peer benchmarks failed or were skipped; see above)"

load
echo "== mod8-cache: L1 and Redis percentile tables"
cargo bench -p mod8-cache --bench cache -- percentile-tables-only
load
echo "== mod8-orm: point lookups and chains"
cargo bench -p mod8-orm --bench orm -- 'lookup|chain' "${quick[@]}"
load
echo "== mod8-mq: confirmed publish, consume + ack"
cargo bench -p mod8-mq --bench mq -- 'confirmed_publish|consume_and_ack' "${quick[@]}"
load
echo "== mod8-datasci: fits"
cargo bench -p mod8-datasci --features testing --bench datasci -- '(wall|cpu)/fit/(BG/NBD \+ Gamma-Gamma, full|Pareto)' "${quick[@]}"
load

echo
python3 scripts/compare_peers.py --figures "$MOD8_BENCH_FIGURES" --criterion "$CRITERION_HOME" \
    --peers "$MOD8_PEERS_JSON" "${json_out[@]}"
