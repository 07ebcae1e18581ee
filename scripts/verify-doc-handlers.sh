#!/usr/bin/env bash
# Runs the Node and Python handlers of docs/forwarding.md ("Handlers") as
# written there, against the real daemon: one destination per handler and
# scheme, an event forwarded to each, then redelivered (de-duplicated), and
# requests carrying Stripe-Hookd-Sequence (a stale one is skipped). Fails
# unless every handler verifies, handles each event once, and skips what is
# stale. Needs node/npm and python3 with venv, and the registries (it
# installs express, stripe, standardwebhooks from npm, and flask, stripe,
# standardwebhooks from PyPI into a cache).
#
#   scripts/verify-doc-handlers.sh [BINARY]
#
# BINARY defaults to a debug build of this checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bin=${1:-}
if [ -z "$bin" ]; then
  cargo build --locked --quiet --bin stripe-hookd
  target=$(cargo metadata --format-version 1 --no-deps | sed -E 's/.*"target_directory":"([^"]*)".*/\1/')
  bin="$target/debug/stripe-hookd"
fi
cache=${STRIPE_HOOKD_DOC_CACHE:-$HOME/.cache/stripe-hookd/doc-handlers}
mkdir -p "$cache/node"
if [ ! -d "$cache/node/node_modules/standardwebhooks" ]; then
  (cd "$cache/node" && npm init -y >/dev/null && npm install --silent express stripe standardwebhooks)
fi
if [ ! -x "$cache/venv/bin/flask" ]; then
  python3 -m venv "$cache/venv"
  "$cache/venv/bin/pip" install -q flask stripe standardwebhooks
fi

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# The snippets, each with "handle the event" replaced by a line the check
# reads, and a listener added.
python3 - "$root/docs/forwarding.md" "$work" <<'EOF'
import re, sys
doc, out = open(sys.argv[1]).read(), sys.argv[2]
def blocks(heading, lang):
    section = doc.split(heading, 1)[1].split("\n### ", 1)[0]
    return re.findall(r"```" + lang + r"\n(.*?)```", section, re.S)
node = blocks("### Node (Express)", "js")
py = blocks("### Python (Flask)", "python")
assert len(node) == 2 and len(py) == 2, (len(node), len(py))
for name, code in zip(["node-stripe", "node-standard"], node):
    code = code.replace("// … handle event.type …",
                        "console.log(`handled ${event.id} ${req.headers['stripe-hookd-delivery']}`);")
    assert "console.log(`handled" in code
    code += "\napp.listen(Number(process.env.PORT), '127.0.0.1');\n"
    open(f"{out}/{name}.js", "w").write(code)
for name, code in zip(["py-stripe", "py-standard"], py):
    code = code.replace('# … handle event["type"] …',
                        'print("handled", event["id"], request.headers["Stripe-Hookd-Delivery"], flush=True)')
    assert 'print("handled"' in code
    code += '\nimport logging\nlogging.getLogger("werkzeug").setLevel(logging.ERROR)\napp.run(host="127.0.0.1", port=int(os.environ["PORT"]))\n'
    open(f"{out}/{name}.py", "w").write(code)
EOF

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
stripe_secret=$("$bin" destinations secret)
standard_secret=$("$bin" destinations secret --standard)
endpoint_secret=$("$bin" destinations secret)
declare -A port secret
for app in node-stripe node-standard py-stripe py-standard; do
  port[$app]=$(free_port)
  case $app in *standard) secret[$app]=$standard_secret ;; *) secret[$app]=$stripe_secret ;; esac
  case $app in
    node-*) NODE_PATH="$cache/node/node_modules" PORT=${port[$app]} STRIPE_API_KEY=sk_test_docs \
              HOOKD_DESTINATION_SECRET=${secret[$app]} node "$work/$app.js" >"$work/$app.log" 2>&1 & ;;
    py-*) PORT=${port[$app]} HOOKD_DESTINATION_SECRET=${secret[$app]} \
            "$cache/venv/bin/python" "$work/$app.py" >"$work/$app.log" 2>&1 & ;;
  esac
  pids+=($!)
done

listen=$(free_port)
{
  echo "listen = \"127.0.0.1:$listen\""
  echo "admin_listen = \"127.0.0.1:$(free_port)\""
  echo "state_dir = \"$work/state\""
  echo "[[endpoints]]"
  echo "path = \"/webhooks/stripe\""
  echo "mode = \"test\""
  echo "secrets = [\"$endpoint_secret\"]"
  for app in node-stripe node-standard py-stripe py-standard; do
    echo "[[destinations]]"
    echo "name = \"$app\""
    echo "url = \"http://127.0.0.1:${port[$app]}/webhooks/stripe\""
    echo "secret = \"${secret[$app]}\""
    echo "after = \"received\""
    case $app in *standard) echo 'signature = "standard"' ;; esac
  done
} >"$work/config.toml"
mkdir -p "$work/state"
STRIPE_HOOKD_CONFIG="$work/config.toml" "$bin" serve >"$work/daemon.log" 2>&1 &
pids+=($!)

# Stripe's scheme, signed for the intake.
sign_stripe() { # secret body
  local t; t=$(date +%s)
  printf 't=%s,v1=%s' "$t" "$(printf '%s.%s' "$t" "$2" | openssl dgst -sha256 -hmac "$1" -r | cut -d' ' -f1)"
}
wait_for() { # what command...
  local what=$1; shift
  for _ in $(seq 1 600); do "$@" && return 0; sleep 0.1; done
  echo "timed out waiting for $what" >&2
  for f in "$work"/*.log; do echo "== $f"; tail -n 20 "$f"; done >&2
  exit 1
}
wait_for "the daemon" curl -fs -o /dev/null "http://127.0.0.1:$listen/healthz"
for app in "${!port[@]}"; do
  wait_for "$app" bash -c "curl -s -o /dev/null http://127.0.0.1:${port[$app]}/"
done

event_id="evt_docs_$(date +%s%N)"
body=$(printf '{"id":"%s","object":"event","type":"customer.updated","api_version":"2025-03-31.basil","created":%s,"livemode":false,"pending_webhooks":1,"request":{"id":null,"idempotency_key":null},"data":{"object":{"id":"cus_docs","object":"customer"}}}' "$event_id" "$(date +%s)")
curl -fsS -o /dev/null -H "Content-Type: application/json" \
  -H "Stripe-Signature: $(sign_stripe "$endpoint_secret" "$body")" \
  --data-binary "$body" "http://127.0.0.1:$listen/webhooks/stripe"
handled() { grep -c "^handled $event_id " "$work/$1.log" || true; }
for app in "${!port[@]}"; do
  wait_for "$app to handle $event_id" bash -c "grep -q '^handled $event_id ' '$work/$app.log'"
done
echo "each handler verified and handled $event_id"

# Redelivered (same delivery id, a fresh signature): de-duplicated.
STRIPE_HOOKD_CONFIG="$work/config.toml" "$bin" deliveries redeliver --status delivered >/dev/null
for app in "${!port[@]}"; do
  wait_for "the redelivery to $app" bash -c \
    "[ \$(grep -c 'delivered destination=$app ' '$work/daemon.log') -eq 2 ]"
done
for app in "${!port[@]}"; do
  [ "$(handled "$app")" = 1 ] || { echo "$app handled the redelivery again" >&2; exit 1; }
done
echo "each handler answered the redelivery without handling it again"

# The sequence check: requests signed as the daemon signs them, for one
# object with sequences 7, 5 (stale: skipped), 9.
send_seq() { # app event_id delivery_id sequence
  local app=$1 id=$2 dlv=$3 seq=$4 t body sig
  t=$(date +%s)
  body=$(printf '{"id":"%s","object":"event","type":"customer.subscription.updated","data":{"object":{"id":"sub_docs","object":"subscription"}}}' "$id")
  case $app in
    *standard)
      sig=$(python3 -c 'import base64, hashlib, hmac, sys
key = base64.b64decode(sys.argv[1].removeprefix("whsec_"))
print(base64.b64encode(hmac.new(key, sys.argv[2].encode(), hashlib.sha256).digest()).decode())' \
              "${secret[$app]}" "$dlv.$t.$body")
      curl -fsS -o /dev/null -H "Content-Type: application/json" -H "webhook-id: $dlv" \
        -H "webhook-timestamp: $t" -H "webhook-signature: v1,$sig" \
        -H "Stripe-Hookd-Delivery: $dlv" -H "Stripe-Hookd-Sequence: $seq" \
        --data-binary "$body" "http://127.0.0.1:${port[$app]}/webhooks/stripe" ;;
    *)
      curl -fsS -o /dev/null -H "Content-Type: application/json" \
        -H "Stripe-Signature: $(sign_stripe "${secret[$app]}" "$body")" \
        -H "Stripe-Hookd-Delivery: $dlv" -H "Stripe-Hookd-Sequence: $seq" \
        --data-binary "$body" "http://127.0.0.1:${port[$app]}/webhooks/stripe" ;;
  esac
}
for app in "${!port[@]}"; do
  send_seq "$app" evt_seq_a dlv_seq_a 7
  send_seq "$app" evt_seq_b dlv_seq_b 5
  send_seq "$app" evt_seq_c dlv_seq_c 9
  got=$(grep -o '^handled evt_seq_[abc]' "$work/$app.log" | tr '\n' ' ')
  [ "$got" = "handled evt_seq_a handled evt_seq_c " ] || { echo "$app: $got" >&2; exit 1; }
done
echo "each handler skipped the stale sequence (5 after 7) and applied the newer (9)"
echo "verified: ${!port[*]}"
