#!/usr/bin/env bash
# The performance benchmark (docs/performance.md): intake throughput and
# latency (SQLite synchronous=FULL, and Postgres), peak RSS, intake with
# 1,000,000 events already stored, runner throughput (no-op and reconcile
# handlers against a local fake Stripe), end-to-end lag, intake latency during
# a 100,000-event replay.
#
#   scripts/bench.sh                       # SQLite
#   BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test scripts/bench.sh
#   EVENTS=20000 FILL=1000000 scripts/bench.sh
#
# The load generator is `stripe-hookd trigger --count` on the same machine.
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${EVENTS:-20000}
FILL=${FILL:-1000000}
CONCURRENCY=${CONCURRENCY:-64}
features=""
[ -n "${BENCH_POSTGRES_URL:-}" ] && features="--features postgres"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/stripe-hookd/target}"
cargo build --release $features --quiet
bin="$CARGO_TARGET_DIR/release/stripe-hookd"
secret=whsec_bench_secret
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

echo "# stripe-hookd benchmark"
echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/ {print $2}') GiB"
echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo $((20000 + RANDOM % 20000)); }

# start_daemon DATABASE_URL → sets $pid and $url
start_daemon() {
  local port; port=$(free_port)
  STRIPE_WEBHOOK_SECRET=$secret STRIPE_HOOKD_ENDPOINTS='[{path="/webhooks/stripe",mode="test",secrets=["'$secret'"]}]' \
  DATABASE_URL="$1" STRIPE_HOOKD_LISTEN="127.0.0.1:$port" STRIPE_HOOKD_STATE_DIR="$work" \
  STRIPE_HOOKD_RUNNER__ENABLED=false STRIPE_HOOKD_LOG__LEVEL=error \
    "$bin" serve >"$work/daemon.log" 2>&1 &
  pid=$!
  url="http://127.0.0.1:$port/webhooks/stripe"
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "daemon did not start:"; cat "$work/daemon.log"; exit 1
}
stop_daemon() { kill -TERM "$pid"; wait "$pid" || true; }

load() { "$bin" trigger --url "$url" --secret "$secret" --json "$@"; }
summary() {
  python3 -c '
import json, sys
r = json.load(sys.stdin)
l = r["latency_ms"]
print("%.0f req/s, p50 %.2f ms, p95 %.2f ms, p99 %.2f ms, max %.2f ms, statuses %s" % (r["requests_per_sec"], l["p50"], l["p95"], l["p99"], l["max"], r["statuses"]))
'
}
intake() { # label DATABASE_URL
  start_daemon "$2"
  load --count 2000 --concurrency "$CONCURRENCY" >/dev/null                       # warm-up
  echo "intake $1 max throughput ($EVENTS distinct events, concurrency $CONCURRENCY): $(load --count "$EVENTS" --concurrency "$CONCURRENCY" | summary)"
  for rate in 1000 5000; do
    echo "intake $1 offered ${rate}/s ($((rate * 5)) events): $(load --count $((rate * 5)) --rate "$rate" --concurrency "$CONCURRENCY" | summary)"
  done
  echo "intake $1 peak RSS: $(awk '/VmHWM/ {printf "%.1f MiB", $2/1024}' /proc/$pid/status)"
  stop_daemon
}

sqlite_url="sqlite://$work/bench.db"
intake sqlite "$sqlite_url"
if [ -n "${BENCH_POSTGRES_URL:-}" ]; then
  pg_db="hookd_bench_$$"
  psql "$BENCH_POSTGRES_URL" -qc "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" -c "CREATE DATABASE $pg_db" >/dev/null
  pg_url="${BENCH_POSTGRES_URL%/*}/$pg_db"
  intake postgres "$pg_url"
fi

echo "filling the outboxes with $FILL events…"
cargo bench $features --quiet --bench fill -- "$sqlite_url" "$FILL"
intake "sqlite+${FILL}" "$sqlite_url"
if [ -n "${BENCH_POSTGRES_URL:-}" ]; then
  cargo bench $features --quiet --bench fill -- "$pg_url" "$FILL"
  intake "postgres+${FILL}" "$pg_url"
  psql "$BENCH_POSTGRES_URL" -qc "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null
fi

cargo bench $features --quiet --bench runner -- --events 10000 --concurrency 8
cargo bench $features --quiet --bench e2e -- --events 5000 --rate 500
cargo bench $features --quiet --bench replay -- --events 100000 --rate 500
