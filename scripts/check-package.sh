#!/usr/bin/env bash
# Checks a built Debian package: its control data (conffiles, maintainer
# scripts, libpq dependency), its contents, and the packaged binary itself
# (`--version`, `migrate` against Postgres, `migrate --dry-run` after it).
#
#   scripts/check-package.sh stripe-hookd_*.deb [POSTGRES_URL]
#
# POSTGRES_URL (default $TEST_POSTGRES_URL) names a server where a scratch
# database hookd_package_check is created and dropped again.
set -euo pipefail
deb=${1:?usage: scripts/check-package.sh PACKAGE.deb [POSTGRES_URL]}
pg=${2:-${TEST_POSTGRES_URL:-}}
fail() { echo "package check: $*" >&2; exit 1; }

info=$(dpkg-deb -I "$deb")
printf '%s\n' "$info" | grep -qE '^ Package: stripe-hookd$' || fail "not the stripe-hookd package"
printf '%s\n' "$info" | grep -qE '^ Depends:.*libpq5' || fail "Depends lacks libpq5 (built without the postgres feature?)"
for script in postinst prerm postrm conffiles; do
  printf '%s\n' "$info" | grep -qE "^ +[0-9]+ bytes, +[0-9]+ lines +\*? *$script" || fail "control member $script missing"
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dpkg-deb -e "$deb" "$work/control"
for conf in /etc/stripe-hookd/config.toml /etc/stripe-hookd/stripe-hookd.env; do
  grep -qxF "$conf" "$work/control/conffiles" || fail "$conf is not a conffile"
done
for script in postinst prerm postrm; do sh -n "$work/control/$script" || fail "$script: syntax"; done

contents=$(dpkg-deb -c "$deb" | awk '{print $6}')
for path in ./usr/bin/stripe-hookd ./usr/lib/systemd/system/stripe-hookd.service \
    ./etc/stripe-hookd/config.toml ./etc/stripe-hookd/stripe-hookd.env \
    ./usr/share/man/man1/stripe-hookd.1.gz \
    ./usr/share/bash-completion/completions/stripe-hookd \
    ./usr/share/zsh/vendor-completions/_stripe-hookd \
    ./usr/share/fish/vendor_completions.d/stripe-hookd.fish \
    ./usr/share/doc/stripe-hookd/README.md ./usr/share/doc/stripe-hookd/install.md \
    ./usr/share/doc/stripe-hookd/operations.md ./usr/share/doc/stripe-hookd/monitoring/alerts.yml; do
  printf '%s\n' "$contents" | grep -qxF "$path" || fail "$path missing from the package"
done

dpkg-deb -x "$deb" "$work/root"
bin="$work/root/usr/bin/stripe-hookd"
grep -qx 'ExecStart=/usr/bin/stripe-hookd serve' "$work/root/usr/lib/systemd/system/stripe-hookd.service" \
  || fail "the packaged unit does not start /usr/bin/stripe-hookd"
version=$("$bin" --version)
echo "packaged binary: $version"
printf '%s\n' "$version" | grep -qE '^stripe-hookd [0-9.]+' || fail "--version: $version"
zcat "$work/root/usr/share/man/man1/stripe-hookd.1.gz" | grep -q '^\.TH stripe-hookd 1' || fail "man page"

if [ -n "$pg" ]; then
  db="hookd_package_check"
  psql -q "$pg" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
  url="${pg%/*}/$db"
  env -i PATH="$PATH" DATABASE_URL="$url" STRIPE_WEBHOOK_SECRET=whsec_package_check \
    STRIPE_API_KEY=sk_test_package_check "$bin" migrate
  after=$(env -i PATH="$PATH" DATABASE_URL="$url" STRIPE_WEBHOOK_SECRET=whsec_package_check \
    STRIPE_API_KEY=sk_test_package_check "$bin" migrate --dry-run)
  psql -q "$pg" -c "DROP DATABASE $db"
  printf '%s\n' "$after" | grep -q '(postgres): 0 migration(s) pending' || fail "migrate on Postgres: $after"
else
  echo "no POSTGRES_URL / TEST_POSTGRES_URL: migrate not checked" >&2
fi
echo "package ok: $deb"
