#!/usr/bin/env bash
# The performance benchmark (docs/performance.md).
#
#   scripts/bench.sh                      # intake vs the seed pattern, runner (SQLite)
#   scripts/bench.sh --postgres           # … and the Postgres runner, 3 instances
#   scripts/bench.sh --only intake        # parts, comma-separated:
#       intake     wrk (outside generator) against the daemon as shipped and
#                  against the seed pattern, same run: req/s of both, ratio
#       latency    intake latency at fixed offered rates and peak RSS
#                  (`stripe-hookd trigger`), SQLite (+ Postgres)
#       fill       intake with FILL events already stored
#       runner     runner throughput: no-op handler at the default
#                  concurrency, reconcile handlers against a local fake
#       instances  1 vs 3 instances draining a backlog over few and over
#                  many objects (Postgres only)
#       replay     intake latency during a 100,000-event replay
#       soak       memory and disk over time: a steady RATE (200) events/s
#                  for DURATION (3600) s, the runner on against a Stripe
#                  stand-in answering after SOAK_DELAY_MS (20) ms, every
#                  event forwarded to a no-op app; samples RSS, database
#                  size and backlog every SAMPLE_SECS (30) into
#                  $SOAK_DIR/samples.csv (default ./soak-<time>), then a
#                  summary and the bytes per table (dbstat)
#   default: intake,runner (+ instances with --postgres)
#
# Environment: BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test
# with --postgres), WRK_DURATION (8s), WRK_CONNECTIONS (32), WRK_THREADS (1),
# WRK_REQUESTS (requests generated: 250000), RUNS (alternated intake rounds: 3),
# HOOKD_BIN and WRK_LOAD_BIN (executables built before: nothing is built),
# BENCH_STRIPE_RPS (the runner's Stripe rate limit in the intake run;
# unset: the shipped default, 20/s for a test key), SEED_PATTERN (the seed
# pattern's directory, default ../shared/peers/seed-pattern beside the repo).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

postgres=""
parts=""
while [ $# -gt 0 ]; do
  case "$1" in
    --postgres) postgres=1 ;;
    --only) parts="$2"; shift ;;
    --only=*) parts="${1#--only=}" ;;
    -h|--help) sed -n '2,32p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)"; exit 2 ;;
  esac
  shift
done
if [ -n "$postgres" ]; then
  export BENCH_POSTGRES_URL="${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
fi
[ -z "$parts" ] && parts="intake,runner${postgres:+,instances}"
want() { [[ ",$parts," == *",$1,"* ]]; }

features=""
[ -n "${BENCH_POSTGRES_URL:-}" ] && features="--features postgres"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/stripe-hookd/target}"
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
# A release build of the daemon; each bench is built (bench profile, the
# release profile's settings) when its part first runs. HOOKD_BIN and
# WRK_LOAD_BIN name builds made before (nothing is built for them).
if [ -n "${HOOKD_BIN:-}" ]; then
  bin=$HOOKD_BIN
else
  cargo build --release $features --quiet --bin stripe-hookd
  bin="$CARGO_TARGET_DIR/release/stripe-hookd"
fi
bench_exe() { # the built executable of bench $1
  if [ "$1" = wrk_load ] && [ -n "${WRK_LOAD_BIN:-}" ]; then echo "$WRK_LOAD_BIN"; return; fi
  cargo bench $features --no-run --message-format=json --bench "$1" 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m.get("executable") and m["target"]["name"]==sys.argv[1]: print(m["executable"])' "$1" | tail -1
}
bench() { cargo bench $features --quiet --bench "$@"; }

secret=whsec_bench_secret
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "# stripe-hookd benchmark"
echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(free -g | awk '/Mem:/ {print $2}') GiB"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (over $(nproc) cores: figures taken under load are noisy)"
echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { # url → waits up to 60 s for any HTTP answer
  for _ in $(seq 1 600); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done
  return 1
}

# start_daemon DATABASE_URL [runner on: 1] [extra env…] → sets $pid and $url.
# As shipped: default config (info logs, text to a file, synchronous=FULL,
# HTTP workers = cores); the runner on needs an API key: a local fake Stripe.
start_daemon() {
  local db=$1 runner=${2:-0}; shift 2 || true
  local port admin; port=$(free_port); admin=$(free_port)
  local env=(STRIPE_WEBHOOK_SECRET=$secret DATABASE_URL="$db"
    STRIPE_HOOKD_LISTEN="127.0.0.1:$port" STRIPE_HOOKD_ADMIN_LISTEN="127.0.0.1:$admin"
    STRIPE_HOOKD_STATE_DIR="$work" STRIPE_HOOKD_LOG__FORMAT=text)
  if [ "$runner" = 1 ]; then
    env+=(STRIPE_API_KEY=sk_test_bench STRIPE_API_BASE="$fake_url")
    [ -n "${BENCH_STRIPE_RPS:-}" ] && env+=(STRIPE_HOOKD_STRIPE__REQUESTS_PER_SEC="$BENCH_STRIPE_RPS")
  else
    env+=(STRIPE_HOOKD_RUNNER__ENABLED=false STRIPE_HOOKD_LOG__LEVEL=error
      STRIPE_HOOKD_ENDPOINTS='[{path="/webhooks/stripe",mode="test",secrets=["'$secret'"]}]')
  fi
  env "${env[@]}" "$@" "$bin" serve >"$work/daemon.log" 2>&1 &
  pid=$!
  url="http://127.0.0.1:$port/webhooks/stripe"
  wait_http "http://127.0.0.1:$port/healthz" || { echo "daemon did not start:"; cat "$work/daemon.log"; exit 1; }
}
stop_daemon() { kill -TERM "$pid"; wait "$pid" || true; }

# The fake Stripe the daemon's runner fetches from (any id: a realistic object).
start_fake() { # [delay in ms]
  [ -n "${fake_url:-}" ] && return 0
  local exe; exe=$(bench_exe wrk_load)
  mkfifo "$work/fake.in"
  "$exe" fake --delay-ms "${1:-0}" <"$work/fake.in" >"$work/fake.url" 2>"$work/fake.log" &
  pids+=($!)
  exec 9>"$work/fake.in"   # held open: the fake serves until the script ends
  for _ in $(seq 1 100); do [ -s "$work/fake.url" ] && break; sleep 0.1; done
  fake_url=$(head -1 "$work/fake.url")
}

rows_sqlite() { python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone()[0])' "$1" "$2"; }

# wrk_run LABEL URL → prints wrk's BENCH line fields as shell variables w_*
wrk_run() {
  local out
  out=$(wrk -t"${WRK_THREADS:-1}" -c"${WRK_CONNECTIONS:-32}" -d"${WRK_DURATION:-8s}" --timeout 30s \
    -s benches/wrk/replay.lua "${2%/webhooks/stripe}" -- "$work/requests" | grep '^BENCH ')
  eval "$(echo "${out#BENCH }" | tr ' ' '\n' | sed 's/^/w_/')"
  echo "  $1: ${w_rps} req/s (${w_requests} requests in $((w_duration_us / 1000)) ms; p50 $((w_p50_us / 1000)).$(((w_p50_us / 10) % 100)) ms, p99 $((w_p99_us / 1000)).$(((w_p99_us / 10) % 100)) ms; non-2xx ${w_non2xx}, socket errors ${w_errors})"
  if [ "$w_wraps" != 0 ]; then echo "  WARNING: the request file ran out (raise WRK_REQUESTS): duplicates were sent"; fi
}

# check_stored LABEL ROWS: every answered request must be stored
check_stored() {
  local ok=yes
  [ "$w_non2xx" = 0 ] && [ "$w_errors" = 0 ] && [ "$2" -ge "$w_requests" ] || ok=NO
  echo "  $1 stored: $2 distinct events for ${w_requests} answered requests: every request stored: $ok"
  [ "$ok" = yes ]
}

intake_vs_seed() {
  command -v wrk >/dev/null || { echo "installing wrk (Debian package)"; sudo -n apt-get install -y -q wrk >/dev/null 2>&1 || apt-get install -y -q wrk >/dev/null; }
  local seed=${SEED_PATTERN:-$repo/../shared/peers/seed-pattern}
  [ -d "$seed" ] || seed=/work/shared/peers/seed-pattern
  # As its users run it: uvicorn[standard] (uvloop and httptools, what
  # FastAPI's own docs install); uvicorn picks both when they are there.
  local venv=${PEER_VENV:-$HOME/.cache/seed-pattern-venv-standard}
  if ! "$venv/bin/python" -c 'import uvloop, httptools' 2>/dev/null; then
    echo "installing the seed pattern's Python dependencies (uvicorn[standard]) into $venv"
    python3 -m venv "$venv" && "$venv/bin/pip" install -q stripe fastapi 'uvicorn[standard]'
  fi
  start_fake
  local gen; gen=$(bench_exe wrk_load)
  echo
  echo "## intake: wrk ${WRK_THREADS:-1} thread, ${WRK_CONNECTIONS:-32} connections, ${WRK_DURATION:-8s}, distinct signed payment_intent.succeeded deliveries"
  echo "stripe-hookd as shipped: SQLite synchronous=FULL, runner on (fake Stripe, rate limit ${BENCH_STRIPE_RPS:-default}), info logs as text to a file"
  echo "seed pattern: $seed (FastAPI + stripe-python construct_event + SQLite FULL, 2 uvicorn workers, uvloop + httptools)"
  local ratios=()
  for run in $(seq 1 "${RUNS:-3}"); do
    # Signed now: both runs replay the same deliveries within the tolerance.
    "$gen" requests --count "${WRK_REQUESTS:-250000}" --secret "$secret" --out "$work/requests" 2>/dev/null
    rm -f "$work/intake.db"* "$work/peer.db"*
    start_daemon "sqlite://$work/intake.db" 1
    wrk_run "run $run stripe-hookd" "$url"
    local hookd_rps=$w_rps
    stop_daemon
    check_stored "run $run stripe-hookd" "$(rows_sqlite "$work/intake.db" 'SELECT count(*) FROM webhook_events')" || true
    echo "  daemon log: $(wc -l <"$work/daemon.log") lines, $(grep -c ' ERROR ' "$work/daemon.log" || true) errors"

    local port; port=$(free_port)
    (cd "$seed" && STRIPE_WEBHOOK_SECRET=$secret PEER_DB="$work/peer.db" PEER_VENV="$venv" exec ./run.sh "$port" >"$work/seed.log" 2>&1) &
    local seed_pid=$!
    wait_http "http://127.0.0.1:$port/" || { echo "seed pattern did not start:"; cat "$work/seed.log"; exit 1; }
    sleep 3   # the first worker answers; let the second finish starting
    wrk_run "run $run seed pattern" "http://127.0.0.1:$port/webhooks/stripe"
    local seed_rps=$w_rps
    kill -TERM "$seed_pid"; wait "$seed_pid" || true
    check_stored "run $run seed pattern" "$(rows_sqlite "$work/peer.db" 'SELECT count(*) FROM processed_webhooks')" || true
    python3 -c 'import sys; print("  run %s: stripe-hookd %s req/s, seed pattern %s req/s, ratio %.1fx" % (sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[2]) / max(float(sys.argv[3]), 1)))' "$run" "$hookd_rps" "$seed_rps"
    ratios+=("$hookd_rps/$seed_rps")
  done
  python3 -c 'import sys, statistics
pairs = [tuple(map(float, a.split("/"))) for a in sys.argv[1:]]
print("  median of %d alternated rounds: stripe-hookd %.0f req/s, seed pattern %.0f req/s, ratio %.1fx (median of the ratios)" % (
    len(pairs), statistics.median(h for h, _ in pairs), statistics.median(s for _, s in pairs),
    statistics.median(h / max(s, 1) for h, s in pairs)))' "${ratios[@]}"
  rm -f "$work/requests"
}

load() { "$bin" trigger --url "$url" --secret "$secret" --json "$@"; }
summary() {
  python3 -c '
import json, sys
r = json.load(sys.stdin)
l = r["latency_ms"]
print("%.0f req/s, p50 %.2f ms, p95 %.2f ms, p99 %.2f ms, max %.2f ms, statuses %s" % (r["requests_per_sec"], l["p50"], l["p95"], l["p99"], l["max"], r["statuses"]))
'
}
latency() { # label DATABASE_URL
  local events=${EVENTS:-20000} conc=${CONCURRENCY:-64}
  start_daemon "$2" 0
  load --count 2000 --concurrency "$conc" >/dev/null                       # warm-up
  echo "intake $1 max throughput ($events distinct events, concurrency $conc, generator: stripe-hookd trigger): $(load --count "$events" --concurrency "$conc" | summary)"
  for rate in 1000 5000; do
    echo "intake $1 offered ${rate}/s ($((rate * 5)) events): $(load --count $((rate * 5)) --rate "$rate" --concurrency "$conc" | summary)"
  done
  echo "intake $1 peak RSS: $(awk '/VmHWM/ {printf "%.1f MiB", $2/1024}' /proc/$pid/status)"
  stop_daemon
}

# The forwarding app of the soak: takes every delivery (200 at once).
start_noop() {
  local exe; exe=$(bench_exe wrk_load)
  mkfifo "$work/noop.in"
  "$exe" noop <"$work/noop.in" >"$work/noop.url" 2>"$work/noop.log" &
  pids+=($!)
  exec 8>"$work/noop.in"
  for _ in $(seq 1 100); do [ -s "$work/noop.url" ] && break; sleep 0.1; done
  noop_url=$(head -1 "$work/noop.url")
}

# One sample of the soak: seconds, the daemon's RSS and peak RSS (KiB), the
# database and WAL sizes (bytes), events stored, events not yet finished,
# deliveries not yet delivered, the load average.
soak_sample() { # t db
  python3 - "$1" "$2" "$pid" <<'PY'
import os, sqlite3, sys
t, db, pid = sys.argv[1:]
st = dict(l.split(":", 1) for l in open(f"/proc/{pid}/status") if ":" in l)
kib = lambda k: int(st[k].split()[0])
size = lambda p: os.path.getsize(p) if os.path.exists(p) else 0
c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
q = lambda sql: c.execute(sql).fetchone()[0]
events = q("SELECT count(*) FROM webhook_events")
backlog = q("SELECT count(*) FROM webhook_events WHERE status IN ('pending', 'processing')")
undelivered = q("SELECT count(*) FROM deliveries WHERE status IN ('pending', 'delivering')")
c.close()
print(",".join(map(str, [t, kib("VmRSS"), kib("VmHWM"), size(db), size(db + "-wal"), events, backlog,
                         undelivered, open("/proc/loadavg").read().split()[0]])))
PY
}

soak() {
  local rate=${RATE:-200} duration=${DURATION:-3600} every=${SAMPLE_SECS:-30} delay=${SOAK_DELAY_MS:-20}
  local dir=${SOAK_DIR:-$repo/soak-$(date -u +%Y%m%dT%H%M%SZ)}
  mkdir -p "$dir"
  start_fake "$delay"
  start_noop
  local db="$dir/soak.db"
  rm -f "$db" "$db-wal" "$db-shm"
  # As shipped but for the Stripe rate limit (the stand-in is not Stripe:
  # lifted so that the runner keeps up with RATE) and one destination.
  BENCH_STRIPE_RPS=${BENCH_STRIPE_RPS:-1000} start_daemon "sqlite://$db" 1 \
    STRIPE_HOOKD_DESTINATIONS='[{name="app",url="'"$noop_url"'/hook",secret="whsec_soak_app_secret"}]'
  echo; echo "## soak: $rate events/s for ${duration} s, Stripe stand-in ${delay} ms, every event forwarded to a no-op app"
  echo "samples every ${every} s: $dir/samples.csv; daemon log: $dir/daemon.log"
  echo "t_s,rss_kib,hwm_kib,db_bytes,wal_bytes,events,backlog,undelivered,load1" >"$dir/samples.csv"
  soak_sample 0 "$db" >>"$dir/samples.csv"
  # The load: `trigger` at a fixed rate, in chunks of a minute (every
  # event type in turn, each chunk's events distinct), until DURATION.
  (
    local start=$SECONDS
    while [ $((SECONDS - start)) -lt "$duration" ]; do
      local left=$((duration - (SECONDS - start)))
      local n=$((rate * (left < 60 ? left : 60)))
      [ "$n" -gt 0 ] || break
      load --count "$n" --rate "$rate" --concurrency 16 >>"$dir/load.jsonl" || echo '{"error": "trigger failed"}' >>"$dir/load.jsonl"
    done
  ) &
  local loader=$!
  local t0=$SECONDS
  while kill -0 "$loader" 2>/dev/null; do
    sleep "$every"
    soak_sample $((SECONDS - t0)) "$db" >>"$dir/samples.csv"
  done
  wait "$loader" || true
  # Drained: every event finished and every delivery delivered (or 5 min).
  for _ in $(seq 1 300); do
    soak_sample $((SECONDS - t0)) "$db" >"$dir/last.csv"
    IFS=, read -r _ _ _ _ _ _ backlog undelivered _ <"$dir/last.csv"
    [ "$backlog" = 0 ] && [ "$undelivered" = 0 ] && break
    sleep 1
  done
  cat "$dir/last.csv" >>"$dir/samples.csv"
  cp "$work/daemon.log" "$dir/daemon.log"
  stop_daemon
  python3 - "$dir" "$db" "$rate" "$delay" <<'PY'
import csv, json, sqlite3, sys
d, db, rate, delay = sys.argv[1:]
rows = list(csv.DictReader(open(f"{d}/samples.csv")))
mib = lambda k: int(k) / 1024
print("t (min) | RSS MiB | peak MiB | db + wal MB | events | backlog | undelivered | load")
for r in rows:
    t = int(r["t_s"])
    if t == 0 or t % 300 < int(rows[1]["t_s"]) or r is rows[-1]:
        print("%6.1f | %6.1f | %6.1f | %8.1f | %8s | %6s | %6s | %s" % (t / 60, mib(r["rss_kib"]), mib(r["hwm_kib"]),
              (int(r["db_bytes"]) + int(r["wal_bytes"])) / 1e6, r["events"], r["backlog"], r["undelivered"], r["load1"]))
# A chunk with non-2xx answers still prints its report, then `trigger`
# logs an error line and fails (its "error" record): reports only.
loads = [json.loads(l) for l in open(f"{d}/load.jsonl") if l.startswith('{"requests"')]
statuses = {}
for l in loads:
    for k, v in l.get("statuses", {}).items():
        statuses[k] = statuses.get(k, 0) + v
p99 = sorted(l["latency_ms"]["p99"] for l in loads if "latency_ms" in l)
print("requests: %s; per-minute p99 of the intake: median %.1f ms, worst %.1f ms" % (
    statuses, p99[len(p99) // 2] if p99 else 0, p99[-1] if p99 else 0))
c = sqlite3.connect(db)
events = c.execute("SELECT count(*) FROM webhook_events").fetchone()[0]
deliveries = c.execute("SELECT count(*) FROM deliveries").fetchone()[0]
total = 0
print("bytes per table and index (dbstat), per event stored (%d events, %d deliveries):" % (events, deliveries))
for name, size in c.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC"):
    total += size
    if size >= 4096 * 16:
        print("  %-40s %10.1f MB %8.0f B/event" % (name, size / 1e6, size / max(events, 1)))
print("  %-40s %10.1f MB %8.0f B/event" % ("total (database file, WAL checkpointed)", total / 1e6, total / max(events, 1)))
PY
}

pg_url=""
fresh_pg() {
  pg_db="hookd_bench_$$"
  psql "$BENCH_POSTGRES_URL" -qc "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" -c "CREATE DATABASE $pg_db" >/dev/null
  pg_url="${BENCH_POSTGRES_URL%/*}/$pg_db"
}

want intake && intake_vs_seed

sqlite_url="sqlite://$work/bench.db"
if want latency || want fill; then
  echo; echo "## intake latency and memory (runner off, error logs)"
  latency sqlite "$sqlite_url"
  if [ -n "${BENCH_POSTGRES_URL:-}" ]; then fresh_pg; latency postgres "$pg_url"; fi
fi
if want fill; then
  FILL=${FILL:-1000000}
  echo "filling the outboxes with $FILL events…"
  bench fill -- "$sqlite_url" "$FILL"
  latency "sqlite+${FILL}" "$sqlite_url"
  if [ -n "${BENCH_POSTGRES_URL:-}" ]; then
    bench fill -- "$pg_url" "$FILL"
    latency "postgres+${FILL}" "$pg_url"
  fi
fi
[ -n "$pg_url" ] && psql "$BENCH_POSTGRES_URL" -qc "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null

if want runner; then
  echo; echo "## runner (default concurrency 8)"
  bench runner -- --events 10000 --concurrency 8
  bench e2e -- --events 5000 --rate 500
fi
if want instances; then
  if [ -z "${BENCH_POSTGRES_URL:-}" ]; then
    echo "instances: needs --postgres"
  else
    echo; echo "## instances on one Postgres: 3,000 events, 20 ms Stripe stand-in, concurrency 4 each"
    for objects in 30 3000; do
      for n in 1 3; do
        bench runner -- --postgres-only --events 3000 --objects "$objects" --delay-ms 20 --concurrency 4 --instances "$n"
      done
    done
  fi
fi
want replay && bench replay -- --events 100000 --rate 500
want soak && soak
exit 0
