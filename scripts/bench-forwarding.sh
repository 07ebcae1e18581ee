#!/usr/bin/env bash
# The intake's latency at 1,000 events/s offered, without and with forwarding
# running (docs/performance.md, "Intake latency while forwarding"): daemon X
# (SQLite FULL, runner off) takes `stripe-hookd trigger` load; then it
# forwards every event (after = "received") to an application: a no-op
# receiver (answers 200 at once, `wrk_load noop`), then a second stripe-hookd
# (Y, which stores and fsyncs what it gets on the same disk and cores).
# With the runner on (reconcile handlers against a local fake Stripe, rate
# limit lifted): `runner` forwards nothing, `reconciled` forwards every event
# to the no-op app once reconciled (the default `after`), so the delivery
# rows are written by the runner's finishes, not by the intake's commits.
# Usage: scripts/bench-forwarding.sh [RUNS]   (RUNS per case, default 3; needs curl, python3)
#   HOOKD_BIN=PATH  measure that stripe-hookd binary (e.g. an older build) instead of building this one
#   LOAD_BIN=PATH   the stripe-hookd whose `trigger` offers the load (default: HOOKD_BIN), so that
#                   builds older than `trigger --rate` (e.g. 65fd5c5, the issues' "today") get the same generator
#   CASES="none noop recorded hookd runner reconciled"  which cases to run (default: none noop hookd);
#                   recorded: the deliveries of `noop` written by the intake, the forwarder off
# Each run also prints how many of daemon X's intake commits took over 5, 10
# and 25 ms (`hookd_intake_commit_seconds` from its admin /metrics, scraped
# before and after the run; "n/a" for a build without that metric), and
# each case how many bytes X handed to write calls per event it stored
# (`wchar` of /proc/PID/io: the WAL, the checkpoint's copy and the log)
# and how much CPU time X used per event stored (user + system, start-up
# and the 3 s after the load included).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/stripe-hookd/target}"
runs=${1:-3}
if [ -z "${HOOKD_BIN:-}" ]; then cargo build --release --quiet --bin stripe-hookd; fi
bin="${HOOKD_BIN:-$CARGO_TARGET_DIR/release/stripe-hookd}"
load="${LOAD_BIN:-$bin}"
cases=${CASES:-none noop hookd}
noop_exe=$(cargo bench --no-run --message-format=json --bench wrk_load 2>/dev/null |
  python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m.get("executable") and m["target"]["name"]=="wrk_load": print(m["executable"])' | tail -1)
w=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$w"; }
trap cleanup EXIT
secret=whsec_benchintake0000000000000000; appsecret=whsec_benchapp00000000000000000000
echo "binary $bin ($("$bin" --version)), $(nproc) cores, $(uptime | sed 's/.*load/load/')"
summary() { python3 -c '
import json,sys
r=json.load(sys.stdin); l=r["latency_ms"]
print("%.0f req/s, p50 %.2f ms, p99 %.2f ms, max %.2f ms, statuses %s" % (r["requests_per_sec"], l["p50"], l["p99"], l["max"], r["statuses"]))'; }
admin=benchadmintoken000000000000
scrape() { curl -s -H "Authorization: Bearer $admin" http://127.0.0.1:18491/metrics >"$1" || true; }
slow_commits() { python3 - "$1" "$2" <<'PY'
import re, sys
def read(path):
    found = {}
    for line in open(path):
        m = re.match(r'hookd_intake_commit_seconds_(?:bucket\{le="([^"]+)"\}|count) (\S+)', line)
        if m:
            found[m.group(1) or "count"] = float(m.group(2))
    return found
before, after = read(sys.argv[1]), read(sys.argv[2])
if "count" not in after:
    print("commits n/a")
else:
    n = after["count"] - before.get("count", 0)
    over = lambda le: int(n - (after[le] - before.get(le, 0)))
    print("%d commits, over 5 ms %d, 10 ms %d, 25 ms %d" % (n, over("0.005"), over("0.01"), over("0.025")))
PY
}
# utime + stime of process $1, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
wait_up() { for _ in $(seq 100); do curl -fs "$1" >/dev/null && return 0; sleep 0.1; done; return 1; }
count() { python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(sys.argv[2]).fetchone()[0])' "$1" "$2"; }

# `wrk_load MODE` serves until its stdin closes: the fifo is held open on
# descriptor FD for the script's life; its URL goes to variable VAR.
serve() { # mode fd var
  mkfifo "$w/$1.in"
  "$noop_exe" "$1" <"$w/$1.in" >"$w/$1.url" 2>"$w/$1.log" &
  pids+=($!)
  eval "exec $2>\"\$w/$1.in\""
  for _ in $(seq 100); do [ -s "$w/$1.url" ] && break; sleep 0.1; done
  printf -v "$3" '%s' "$(head -1 "$w/$1.url")"
}
# The no-op application, and the fake Stripe the runner fetches from (any
# id: a realistic object).
serve noop 9 noop_url
noop_pid=${pids[-1]}
serve fake 8 fake_url

run() { # label destinations start-Y [runner]
  rm -rf "$w"/x "$w"/y; mkdir -p "$w"/x "$w"/y
  local app_cpu0
  app_cpu0=$(cpu_ticks "$noop_pid")
  local runner=(STRIPE_HOOKD_RUNNER__ENABLED=false)
  if [ "${4:-}" = runner ]; then
    runner=(STRIPE_HOOKD_RUNNER__ENABLED=true STRIPE_API_BASE="$fake_url" STRIPE_HOOKD_STRIPE__REQUESTS_PER_SEC=100000)
  fi
  local ypid=""
  if [ "$3" = yes ]; then
    STRIPE_WEBHOOK_SECRET=$appsecret STRIPE_API_KEY=sk_test_bench STRIPE_HOOKD_LISTEN=127.0.0.1:18402 STRIPE_HOOKD_STATE_DIR=$w/y \
      STRIPE_HOOKD_RUNNER__ENABLED=false "$bin" serve >"$w/y.log" 2>&1 &
    ypid=$!; pids+=("$ypid")
    wait_up http://127.0.0.1:18402/healthz
  fi
  # No destinations: the variable is left out (builds before forwarding refuse it).
  local forward=()
  if [ "$2" != "[]" ]; then forward=(STRIPE_HOOKD_DESTINATIONS="$2"); fi
  env STRIPE_WEBHOOK_SECRET=$secret STRIPE_API_KEY=sk_test_bench STRIPE_HOOKD_LISTEN=127.0.0.1:18401 STRIPE_HOOKD_STATE_DIR=$w/x \
    STRIPE_HOOKD_ADMIN_TOKEN=$admin STRIPE_HOOKD_ADMIN_LISTEN=127.0.0.1:18491 "${runner[@]}" "${forward[@]}" "${extra_env[@]}" "$bin" serve >"$w/x.log" 2>&1 &
  local xpid=$!; pids+=("$xpid")
  wait_up http://127.0.0.1:18401/healthz
  "$load" trigger --url http://127.0.0.1:18401/webhooks/stripe --secret $secret --json --count 2000 --concurrency 64 >/dev/null
  for i in $(seq 1 "$runs"); do
    scrape "$w/before"
    local result
    result=$("$load" trigger --url http://127.0.0.1:18401/webhooks/stripe --secret $secret --json --count 5000 --rate 1000 --concurrency 64 | summary)
    scrape "$w/after"
    echo "$1 run $i, 5,000 events offered at 1,000/s: $result; $(slow_commits "$w/before" "$w/after")"
  done
  sleep 3
  local wchar cpu
  wchar=$(awk '$1 == "wchar:" {print $2}' "/proc/$xpid/io")
  cpu=$(cpu_ticks "$xpid")
  kill -TERM "$xpid"; wait "$xpid" 2>/dev/null || true
  local db="$w/x/stripe-hookd.db"
  local stored
  stored=$(count "$db" 'select count(*) from webhook_events')
  echo "$1: X wrote $(python3 -c "print('%.1f' % ($wchar / $stored / 1024))") KB and used $(python3 -c "print('%.0f' % ($cpu * 1e6 / $(getconf CLK_TCK) / $stored))") µs of CPU per event stored ($stored events)"
  if [ "${4:-}" = runner ]; then
    echo "$1: $(count "$db" "select count(*) from webhook_events where status in ('done', 'ignored')") of $(count "$db" 'select count(*) from webhook_events') events done 3 s after the load"
  fi
  if [ "$2" != "[]" ]; then
    [ "$3" = yes ] || echo "$1: the no-op app used $(python3 -c "print('%.0f' % (($(cpu_ticks "$noop_pid") - $app_cpu0) * 1e6 / $(getconf CLK_TCK) / $stored))") µs of CPU per event stored"
    echo "$1: $(count "$db" "select count(*) from deliveries where status = 'delivered'") of $(count "$db" 'select count(*) from deliveries') deliveries delivered 3 s after the load"
  fi
  if [ -n "$ypid" ]; then
    echo "$1: the app (Y) stored $(count "$w/y/stripe-hookd.db" 'select count(*) from webhook_events') events"
    kill -TERM "$ypid"; wait "$ypid" 2>/dev/null || true
  fi
}
extra_env=()
for c in $cases; do
  extra_env=()
  case $c in
    none) run "no forwarding" "[]" no ;;
    noop) run "forwarding to a no-op app" "[{name=\"app\",url=\"$noop_url/webhooks/stripe\",secret=\"$appsecret\",after=\"received\"}]" no ;;
    recorded) extra_env=(STRIPE_HOOKD_FORWARD__ENABLED=false)
      run "deliveries recorded, forwarder off" "[{name=\"app\",url=\"$noop_url/webhooks/stripe\",secret=\"$appsecret\",after=\"received\"}]" no ;;
    hookd) run "forwarding to a second stripe-hookd" "[{name=\"app\",url=\"http://127.0.0.1:18402/webhooks/stripe\",secret=\"$appsecret\",after=\"received\"}]" yes ;;
    runner) run "runner on, no forwarding" "[]" no runner ;;
    reconciled) run "runner on, forwarding once reconciled" "[{name=\"app\",url=\"$noop_url/webhooks/stripe\",secret=\"$appsecret\"}]" no runner ;;
    *) echo "unknown case $c (none, noop, recorded, hookd, runner, reconciled)" >&2; exit 2 ;;
  esac
done
