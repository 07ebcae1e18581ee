#!/usr/bin/env bash
# Checks systemd/stripe-hookd.service: `systemd-analyze verify` must be
# clean and `systemd-analyze security` must report an exposure of 2.0 or
# lower. Usage: scripts/check-unit.sh PATH_TO_BUILT_BINARY
set -euo pipefail
binary=${1:?usage: scripts/check-unit.sh PATH_TO_BUILT_BINARY}
here=$(cd "$(dirname "$0")/.." && pwd)
unit="$here/systemd/stripe-hookd.service"
command -v systemd-analyze >/dev/null || { echo "systemd-analyze not found (Debian: apt-get install systemd)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# verify resolves ExecStart: point it at the binary that was just built.
sed "s#^ExecStart=/usr/local/bin/stripe-hookd#ExecStart=$(readlink -f "$binary")#" "$unit" > "$work/stripe-hookd.service"
out=$(systemd-analyze verify --man=no "$work/stripe-hookd.service" 2>&1 || true)
# Messages about the host's own units are not ours to fix.
ours=$(printf '%s\n' "$out" | grep 'stripe-hookd' || true)
if [ -n "$ours" ]; then
  echo "systemd-analyze verify reports problems:" >&2
  printf '%s\n' "$ours" >&2
  exit 1
fi
echo "systemd-analyze verify: clean"

line=$(systemd-analyze security --offline=yes "$unit" 2>&1 | grep 'Overall exposure level' || true)
echo "$line"
score=$(printf '%s' "$line" | grep -oE '[0-9]+\.[0-9]+' | head -n 1)
[ -n "$score" ] || { echo "could not read the exposure level" >&2; exit 1; }
awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || { echo "exposure $score is above 2.0" >&2; exit 1; }
