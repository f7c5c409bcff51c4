#!/usr/bin/env bash
# The PostgreSQL rounds of docs/benchmarks.md in one command (`make
# bench-postgres`): PostgreSQL's own commit rate (pgbench, when installed),
# then single jobs and batches over HTTP, the run with its idle latency,
# SQLite's single jobs, and with BACKLOG=N a run of 100,000 jobs on an empty
# store, then behind N future jobs and 100,000 done ones.
# Every wasmq run has a fresh scratch schema of PG_DSN's database
# (`wasmq bench --schema`), dropped afterwards. ROUNDS=N repeats the whole
# round: compare binaries round by round, in the same minutes.
set -euo pipefail
BIN=${BIN:-bin/wasmq}
DSN=${PG_DSN:-postgres://postgres@127.0.0.1:5432/test}
ROUNDS=${ROUNDS:-1}
BACKLOG=${BACKLOG:-0}
# pgbench's tables live in a schema of their own, which this script drops
# only when it made it (the same mark rule as `wasmq bench --schema`).
PGB_SCHEMA=wasmq_pgbench
PGB_MARK='made by make bench-postgres for pgbench'

run() { echo "+ $*"; "$@"; }

pgbench_round() {
  if ! command -v pgbench >/dev/null 2>&1 || ! command -v psql >/dev/null 2>&1; then
    echo "(pgbench or psql not installed: no PostgreSQL baseline this round)"
    return
  fi
  PGOPTIONS="-c client_min_messages=warning" psql "$DSN" -qX -v ON_ERROR_STOP=1 >/dev/null <<SQL
DO \$\$BEGIN
  IF EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = '$PGB_SCHEMA'
             AND obj_description(oid, 'pg_namespace') IS DISTINCT FROM '$PGB_MARK') THEN
    RAISE EXCEPTION 'schema $PGB_SCHEMA exists and this script did not make it: drop or rename it';
  END IF;
END\$\$;
DROP SCHEMA IF EXISTS $PGB_SCHEMA CASCADE;
CREATE SCHEMA $PGB_SCHEMA;
COMMENT ON SCHEMA $PGB_SCHEMA IS '$PGB_MARK';
SQL
  local out
  if ! out=$(PGOPTIONS="-c search_path=$PGB_SCHEMA" pgbench -qi "$DSN" 2>&1); then
    echo "$out" >&2
    return 1
  fi
  echo "+ pgbench -c 8 -T 8 -N (simple-update, PostgreSQL alone)"
  if ! out=$(PGOPTIONS="-c search_path=$PGB_SCHEMA" pgbench -c 8 -T 8 -N "$DSN" 2>&1); then
    echo "$out" >&2
    return 1
  fi
  grep -E '^tps' <<<"$out"
  TPS=$(awk '/^tps/ {print $3; exit}' <<<"$out")
  PGOPTIONS="-c client_min_messages=warning" psql "$DSN" -qX -c "DROP SCHEMA $PGB_SCHEMA CASCADE" >/dev/null
}

# The DSN may hold a password: the echoed command names it, never shows it.
pg() {
  echo "+ $BIN bench --store postgres --dsn \$PG_DSN --schema wasmq_bench $*"
  "$BIN" bench --store postgres --dsn "$DSN" --schema wasmq_bench "$@"
}

for round in $(seq 1 "$ROUNDS"); do
  echo "== round $round of $ROUNDS ($(date -u +%H:%M:%S) UTC)"
  TPS=""
  pgbench_round
  single=$(pg --enqueue http --clients 16 --batch 1 --jobs 20000)
  echo "$single"
  # Issue #15's target is a multiple of PostgreSQL's own commit rate in
  # the same minutes: print it rather than leave it to the reader.
  rate=$(grep -o '[0-9]* jobs/s' <<<"$single" | head -1 | cut -d' ' -f1)
  if [ -n "$TPS" ] && [ -n "$rate" ]; then
    awk -v r="$rate" -v t="$TPS" 'BEGIN { printf "single-job HTTP enqueue: %.2f× pgbench -N (%d jobs/s against %.0f tps)\n", r / t, r, t }'
  fi
  pg --enqueue http --clients 4 --batch 1000 --jobs 200000
  pg --jobs 40000 --func testkit.noop --capacity 200
  run "$BIN" bench --enqueue http --clients 16 --batch 1 --jobs 20000
  if [ "$BACKLOG" -gt 0 ]; then
    # The same run on an empty store, then behind the backlog: the pair
    # issue #15's "within 10 %" compares.
    pg --jobs 100000
    pg --jobs 100000 --backlog "$BACKLOG" --history 100000
  fi
done
