#!/usr/bin/env python3
"""Prints mod8's benchmark figures beside the Python peers' and the server tools', as ratios.

Reads three things measured in one sitting (scripts/compare-peers.sh produces them):

  --figures FILE    JSON lines appended by mod8-cache's and mod8-orm's benches when
                    MOD8_BENCH_FIGURES is set: {"bench", "figure", "value", "unit"}
  --criterion DIR   criterion's output directory (<target dir>/criterion), for the figures of
                    the mq and datasci benches (median time per iteration and throughput)
  --peers FILE      the Python peers' JSON (bench_peers.py --json FILE)

Every ratio is a ratio of times (throughputs are turned into time per operation first), so a
ratio below 1 always means mod8 is faster. Standard library only.
"""

import argparse
import json
import os
import sys

# What each row compares: (label, unit shown, mod8 source, peer source, server-tool source,
# target text). A source is ("fig", bench, figure) for a bench's figure line,
# ("crit", group, function) for a criterion benchmark, or ("peer", bench, figure).
ROWS = [
    ("in-process cache hit, 1 thread, one key (the peer's f(1)), p50", "ns",
     ("fig", "mod8-cache", "l1 1t mod8_cache Cache::get::<u64> (stats on), .await, 1 key: batch p50"),
     ("peer", "lru_hit", "lru_hit_maxsize128"), None, "≤ 0.5× peer"),
    ("in-process cache hit, 1 thread, 1,000 keys in turn, p50", "ns",
     ("fig", "mod8-cache", "l1 1t mod8_cache Cache::get::<u64> (stats on), .await: batch p50"),
     ("peer", "lru_hit", "lru_hit_maxsize128"), None, "(beside: a harder shape than the peer's)"),
    ("in-process cache hit, 2 threads, p99", "ns",
     ("fig", "mod8-cache", "l1 2t mod8_cache Cache::get::<u64> (stats on), .await: single p99"),
     None, None, "< 1,000 ns"),
    ("SQLite point lookup (in memory), p50", "µs",
     ("fig", "mod8-orm", "lookup sqlite-memory: p50"),
     None, ("fig", "mod8-orm", "lookup postgres: p50"), "≤ 0.333× PostgreSQL lookup"),
    ("SQLite point lookup (WAL file), p50", "µs",
     ("fig", "mod8-orm", "lookup sqlite-file: p50"),
     None, ("fig", "mod8-orm", "lookup postgres: p50"), "≤ 0.333× PostgreSQL lookup"),
    ("SQLite point lookup vs rusqlite floor, p50", "µs",
     ("fig", "mod8-orm", "lookup sqlite-memory: p50"),
     None, ("fig", "mod8-orm", "lookup rusqlite-memory: p50"), "(floor)"),
    ("users + Address → City → Country, 1,000, SQLite", "µs",
     ("fig", "mod8-orm", "chain sqlite-memory eager 1000: p50"),
     ("peer", "sql_orm", "list1000_joinedload"),
     ("fig", "mod8-orm", "chain postgres eager 1000: p50"), "< 1× PostgreSQL"),
    ("users + Address → City → Country, 1,000, PostgreSQL", "µs",
     ("fig", "mod8-orm", "chain postgres eager 1000: p50"),
     ("peer", "sql_orm", "list1000_joinedload"), None, "≤ 5 ms"),
    ("users + Address → City → Country, 50, PostgreSQL", "µs",
     ("fig", "mod8-orm", "chain postgres eager 50: p50"),
     ("peer", "sql_orm", "list50_joinedload"), None, "≤ 0.5 ms"),
    ("PostgreSQL point lookup, p50", "µs",
     ("fig", "mod8-orm", "lookup postgres: p50"),
     ("peer", "sql_orm", "session_get_p50"),
     ("fig", "mod8-orm", "lookup pgbench -S -M prepared: p50"), "≤ 1.3× pgbench"),
    ("Redis GET, one connection, p50 (current-thread runtime)", "µs",
     ("fig", "mod8-cache", "redis get mod8 Cache::get, current-thread runtime: p50"),
     ("peer", "redis_get", "get_p50"),
     ("fig", "mod8-cache", "redis get redis-benchmark: p50"), "≤ 1.3× redis-benchmark, ≤ 1× peer"),
    ("Redis GET, one connection, p50 (multi-thread runtime, task)", "µs",
     ("fig", "mod8-cache", "redis get mod8 Cache::get, multi-thread runtime, from a task: p50"),
     ("peer", "redis_get", "get_p50"),
     ("fig", "mod8-cache", "redis get redis-benchmark: p50"), "≤ 1.3× redis-benchmark, ≤ 1× peer"),
    ("Redis GET, one connection, p99 (current-thread runtime)", "µs",
     ("fig", "mod8-cache", "redis get mod8 Cache::get, current-thread runtime: p99"),
     ("peer", "redis_get", "get_p99"),
     ("fig", "mod8-cache", "redis get redis-benchmark: p99"), "-"),
    ("confirmed publish, sequential (per message)", "µs",
     ("crit", "confirmed_publish_sequential", "mod8_rabbitmq"),
     ("peer", "amqp_publish", "publish_confirmed_msgs"),
     ("crit", "confirmed_publish_sequential", "lapin_rabbitmq_reference"), "≤ 1/3× peer"),
    ("confirmed publish, pipelined 1,000 (per message)", "µs",
     ("crit", "confirmed_publish_pipelined", "mod8_rabbitmq_batch_1000"),
     ("peer", "amqp_publish", "publish_confirmed_msgs"),
     ("crit", "confirmed_publish_pipelined", "lapin_rabbitmq_reference_batch_1000"),
     "≥ 20k msg/s"),
    ("consume + ack (per message)", "µs",
     ("crit", "consume_and_ack", "mod8_rabbitmq"),
     ("peer", "amqp_publish", "consume_ack_msgs"),
     ("crit", "consume_and_ack", "lapin_rabbitmq_reference"), "≥ 30k msg/s"),
    ("BG/NBD + Gamma-Gamma fit, full CDNOW (23,570)", "ms",
     ("crit", "wall/fit", "BG/NBD + Gamma-Gamma, full CDNOW (23,570)"),
     ("peer", "clv_fit", "full23570_both_fit"), None, "≤ 40 ms"),
    ("BG/NBD + Gamma-Gamma fit, full CDNOW, CPU time", "ms",
     ("crit", "cpu/fit", "BG/NBD + Gamma-Gamma, full CDNOW (23,570)"),
     ("peer", "clv_fit", "full23570_both_fit"), None, "≤ 40 ms"),
    ("Pareto/NBD fit, full CDNOW (23,570)", "ms",
     ("crit", "wall/fit", "Pareto/NBD, full CDNOW (23,570)"), None, None, "≤ 100 ms"),
    ("Pareto/NBD fit, full CDNOW, CPU time", "ms",
     ("crit", "cpu/fit", "Pareto/NBD, full CDNOW (23,570)"), None, None, "≤ 100 ms"),
]

# Seconds per unit, for time units; throughput units are inverted.
TIME = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0}
RATE = {"msg/s", "ops/s", "rows/s", "keys/s", "tx/s"}


def seconds(value, unit):
    """A figure as seconds per operation, or None when its unit is neither time nor rate."""
    if unit in TIME:
        return value * TIME[unit]
    if unit in RATE and value > 0:
        return 1.0 / value
    return None


def load_figures(path):
    figs = {}
    if path and os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    d = json.loads(line)
                    # The last run of a figure wins (a bench may be re-run).
                    figs[(d["bench"], d["figure"])] = seconds(d["value"], d["unit"])
    return figs


def load_criterion(root):
    crit = {}
    if not root or not os.path.isdir(root):
        return crit
    for dirpath, _dirs, files in os.walk(root):
        if os.path.basename(dirpath) != "new" or "benchmark.json" not in files:
            continue
        try:
            with open(os.path.join(dirpath, "benchmark.json")) as f:
                bench = json.load(f)
            with open(os.path.join(dirpath, "estimates.json")) as f:
                est = json.load(f)
        except (OSError, ValueError):
            continue
        ns = est["median"]["point_estimate"]
        per = 1
        tp = bench.get("throughput") or {}
        for kind in ("Elements", "Bytes"):
            if kind in tp:
                per = tp[kind] or 1
        function = bench.get("function_id") or ""
        if bench.get("value_str"):
            function = f"{function}/{bench['value_str']}"
        crit[(bench["group_id"], function)] = ns * 1e-9 / per
    return crit


def load_peers(path):
    peers = {}
    if path and os.path.exists(path):
        with open(path) as f:
            data = json.load(f)
        for bench, figures in data.items():
            if bench.startswith("_") or not isinstance(figures, dict):
                continue
            for name, fig in figures.items():
                if isinstance(fig, dict) and "value" in fig:
                    peers[(bench, name)] = seconds(fig["value"], fig.get("unit", ""))
    return peers


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--figures")
    ap.add_argument("--criterion")
    ap.add_argument("--peers")
    ap.add_argument("--json", help="also write the table as JSON to this file")
    args = ap.parse_args()

    sources = {"fig": load_figures(args.figures), "crit": load_criterion(args.criterion),
               "peer": load_peers(args.peers)}

    def get(src):
        if src is None:
            return None
        kind, a, b = src
        return sources[kind].get((a, b))

    header = ("figure", "unit", "mod8", "peer", "mod8÷peer", "server tool", "mod8÷tool", "target")
    rows, out = [], []
    for label, unit, m, p, t, target in ROWS:
        mv, pv, tv = get(m), get(p), get(t)
        if mv is None:
            continue
        scale = TIME[unit]
        show = lambda v: "-" if v is None else f"{v / scale:,.1f}"
        ratio = lambda a, b: "-" if a is None or b is None or b == 0 else f"{a / b:.2f}"
        rows.append((label, unit, show(mv), show(pv), ratio(mv, pv), show(tv), ratio(mv, tv), target))
        out.append({"figure": label, "unit": unit,
                    "mod8": None if mv is None else mv / scale,
                    "peer": None if pv is None else pv / scale,
                    "server_tool": None if tv is None else tv / scale,
                    "mod8_over_peer": None if mv is None or pv is None else mv / pv,
                    "mod8_over_tool": None if mv is None or tv is None else mv / tv,
                    "target": target})
    if not rows:
        print("no mod8 figures found: run the benches with MOD8_BENCH_FIGURES set "
              "(scripts/compare-peers.sh does)", file=sys.stderr)
        return 1
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) if i in (0, 1, 7) else str(c).rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths)))
    print(line(header))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print(line(r))
    print("\nratios are of times per operation (throughputs inverted): below 1, mod8 is faster; "
          "peer = the Python stack (bench_peers.py), tool = redis-benchmark / pgbench / raw lapin / "
          "the PostgreSQL figure the SQLite target is stated against")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
