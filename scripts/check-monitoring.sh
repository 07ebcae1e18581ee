#!/usr/bin/env bash
# Checks the monitoring kit in docs/monitoring/: the alert rules parse
# (`promtool check rules`) and fire as documented (`promtool test rules`),
# the dashboard is valid JSON, every hookd_* metric they use is one the code
# exports, and every runbook_url anchor is a heading in docs/operations.md.
# Usage: scripts/check-monitoring.sh   (needs promtool: Debian `prometheus`; jq)
set -euo pipefail
cd "$(dirname "$0")/.."
rules=docs/monitoring/alerts.yml
tests=docs/monitoring/alerts.test.yml
dashboard=docs/monitoring/grafana-dashboard.json
for tool in promtool jq; do
  command -v "$tool" >/dev/null || { echo "$tool not found (Debian: apt-get install prometheus jq)" >&2; exit 1; }
done
fail=0

promtool check rules "$rules"
promtool test rules "$tests"
jq -e '.panels | length > 0' "$dashboard" >/dev/null || { echo "$dashboard: not a dashboard with panels" >&2; fail=1; }

# Metric names: histogram series (_bucket/_sum/_count) belong to their base name.
used=$( { grep -o 'hookd_[a-z_]*' "$rules"; jq -r '.. | .expr? // empty' "$dashboard" | grep -o 'hookd_[a-z_]*'; } \
  | sed -E 's/_(bucket|sum|count)$//' | sort -u)
[ -n "$used" ] || { echo "no hookd_* metrics found in $rules / $dashboard" >&2; exit 1; }
for name in $used; do
  if ! grep -rqF "\"$name\"" src/; then
    echo "metric $name is used by the monitoring kit but not exported by the code (src/metrics.rs)" >&2
    fail=1
  fi
done

# Runbook links: each anchor must be the GitHub slug of a heading in operations.md.
slugs=$(grep -E '^#+ ' docs/operations.md | sed -E 's/^#+ //' | tr '[:upper:]' '[:lower:]' \
  | sed -E 's/[^a-z0-9 _-]//g; s/ /-/g')
for anchor in $(grep -o 'runbook_url: "[^"]*"' "$rules" | sed -E 's/.*operations\.md#([^"]*)"/\1/' | sort -u); do
  if ! printf '%s\n' "$slugs" | grep -qxF "$anchor"; then
    echo "runbook_url anchor #$anchor has no heading in docs/operations.md" >&2
    fail=1
  fi
done
if [ "$(grep -c 'alert:' "$rules")" != "$(grep -c 'runbook_url:' "$rules")" ]; then
  echo "every alert in $rules needs a runbook_url" >&2
  fail=1
fi

[ "$fail" = 0 ] && echo "monitoring kit ok: $(echo "$used" | wc -l) metrics, $(grep -c 'alert:' "$rules") alerts"
exit "$fail"
