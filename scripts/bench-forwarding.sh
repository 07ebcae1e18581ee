#!/usr/bin/env bash
# The intake's latency at 1,000 events/s offered, without and with forwarding
# running (docs/performance.md, "Intake latency while forwarding"): daemon X
# (SQLite FULL, runner off) takes `stripe-hookd trigger` load; in the second
# half it forwards every event (after = "received") to daemon Y, a second
# stripe-hookd on the same machine standing in for the application.
# Usage: scripts/bench-forwarding.sh   (needs curl and sqlite3)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/stripe-hookd/target}"
cargo build --release --quiet --bin stripe-hookd
bin="$CARGO_TARGET_DIR/release/stripe-hookd"
w=$(mktemp -d)
secret=whsec_benchintake0000000000000000; appsecret=whsec_benchapp00000000000000000000
summary() { python3 -c '
import json,sys
r=json.load(sys.stdin); l=r["latency_ms"]
print("%.0f req/s, p50 %.2f ms, p99 %.2f ms, max %.2f ms, statuses %s" % (r["requests_per_sec"], l["p50"], l["p99"], l["max"], r["statuses"]))'; }
wait_up() { for _ in $(seq 100); do curl -fs "$1/healthz" >/dev/null && return 0; sleep 0.1; done; return 1; }
run() { # label destinations
  rm -rf "$w"/x "$w"/y; mkdir -p "$w"/x "$w"/y
  STRIPE_WEBHOOK_SECRET=$appsecret STRIPE_API_KEY=sk_test_bench STRIPE_HOOKD_LISTEN=127.0.0.1:18402 STRIPE_HOOKD_STATE_DIR=$w/y \
    STRIPE_HOOKD_RUNNER__ENABLED=false "$bin" serve >"$w/y.log" 2>&1 & local ypid=$!
  STRIPE_WEBHOOK_SECRET=$secret STRIPE_API_KEY=sk_test_bench STRIPE_HOOKD_LISTEN=127.0.0.1:18401 STRIPE_HOOKD_STATE_DIR=$w/x \
    STRIPE_HOOKD_RUNNER__ENABLED=false STRIPE_HOOKD_DESTINATIONS="$2" "$bin" serve >"$w/x.log" 2>&1 & local xpid=$!
  wait_up http://127.0.0.1:18401; wait_up http://127.0.0.1:18402
  "$bin" trigger --url http://127.0.0.1:18401/webhooks/stripe --secret $secret --json --count 2000 --concurrency 64 >/dev/null
  for i in 1 2 3; do
    echo "$1 run $i, 5,000 events offered at 1,000/s: $("$bin" trigger --url http://127.0.0.1:18401/webhooks/stripe --secret $secret --json --count 5000 --rate 1000 --concurrency 64 | summary)"
  done
  sleep 3
  echo "$1: forwarded to the app so far: $(sqlite3 "$w/y/stripe-hookd.db" 'select count(*) from webhook_events' 2>/dev/null || echo n/a) events stored by the app"
  kill -TERM $xpid $ypid; wait $xpid $ypid 2>/dev/null || true
}
run "no forwarding" "[]"
run "forwarding (after=received)" "[{name=\"app\",url=\"http://127.0.0.1:18402/webhooks/stripe\",secret=\"$appsecret\",after=\"received\"}]"
rm -rf "$w"
