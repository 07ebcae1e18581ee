#!/usr/bin/env bash
# Checks a built Debian package: its control data (conffiles, maintainer
# scripts, libpq dependency), its contents, that the unit's paths are what
# the package installs (binary, config, environment file, credentials, state
# directory, docs) and that `systemd-analyze verify` passes on the installed
# unit, and the packaged binary itself (`--version`, `migrate` against
# Postgres, with `sslmode=require` when the server offers TLS, `migrate
# --dry-run` after it).
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
unit="$work/root/usr/lib/systemd/system/stripe-hookd.service"
grep -qx 'ExecStart=/usr/bin/stripe-hookd serve' "$unit" \
  || fail "the packaged unit does not start /usr/bin/stripe-hookd"

# The unit's paths against what the package installs and the binary reads.
in_package() { printf '%s\n' "$contents" | grep -qxF ".$1"; }
setting() { sed -n "s/^$1=//p" "$unit"; }
exec_start=$(setting ExecStart | awk '{print $1}')
in_package "$exec_start" || fail "ExecStart=$exec_start is not in the package"
grep -qx 'ExecReload=/bin/kill -HUP \$MAINPID' "$unit" || fail "the unit has no ExecReload= (SIGHUP reload)"
"$bin" --help | grep -qF /etc/stripe-hookd/config.toml || fail "the binary's default config path is not /etc/stripe-hookd/config.toml"
for env_file in $(setting EnvironmentFile); do
  in_package "${env_file#-}" || fail "EnvironmentFile=$env_file is not in the package"
done
for doc in $(setting Documentation); do
  case "$doc" in file://*) in_package "${doc#file://}" || fail "Documentation=$doc is not in the package" ;; esac
done
creds_dir=$(sed -n 's/^ *install -d -m 0700 \(.*\)$/\1/p' "$work/control/postinst")
[ -n "$creds_dir" ] || fail "postinst does not create the credentials directory"
for cred in $(setting LoadCredential); do
  id=${cred%%:*} path=${cred#*:}
  [ "$(dirname "$path")" = "$creds_dir" ] || fail "LoadCredential=$cred: not in $creds_dir, which postinst creates"
  grep -qaF "$id" "$bin" || fail "LoadCredential=$cred: the binary reads no credential $id"
done
state=$(setting StateDirectory)
[ "$state" = stripe-hookd ] || fail "StateDirectory=$state (the docs and postrm name /var/lib/private/stripe-hookd)"
grep -qF "/var/lib/private/$state" "$work/control/postrm" || fail "postrm does not name the state directory /var/lib/private/$state"

# systemd-analyze verify on the unit as installed: an alternate root holding
# the package, the host's units (targets the unit names) and /bin/kill.
if command -v systemd-analyze >/dev/null && [ -d /usr/lib/systemd/system ]; then
  vroot="$work/verify-root"
  mkdir -p "$vroot/usr/lib/systemd/system" "$vroot/bin"
  cp -r "$work/root/." "$vroot/"
  cp -rn /usr/lib/systemd/system/. "$vroot/usr/lib/systemd/system/" 2>/dev/null || true
  cp /bin/kill "$vroot/bin/kill"
  if ! out=$(systemd-analyze verify --man=no --root="$vroot" stripe-hookd.service 2>&1); then
    fail "systemd-analyze verify on the installed unit: $out"
  fi
  [ -z "$out" ] || fail "systemd-analyze verify on the installed unit: $out"
  echo "systemd-analyze verify (installed unit): clean"
else
  echo "no systemd-analyze or /usr/lib/systemd/system: installed unit not verified" >&2
fi
version=$("$bin" --version)
echo "packaged binary: $version"
printf '%s\n' "$version" | grep -qE '^stripe-hookd [0-9.]+' || fail "--version: $version"
zcat "$work/root/usr/share/man/man1/stripe-hookd.1.gz" | grep -q '^\.TH stripe-hookd 1' || fail "man page"

if [ -n "$pg" ]; then
  db="hookd_package_check"
  psql -q "$pg" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
  url="${pg%/*}/$db"
  # libpq (libpq5, built with OpenSSL) does TLS: sslmode=require must work
  # whenever the server offers it.
  case "$pg" in *\?*) sep='&' ;; *) sep='?' ;; esac
  if psql -q "$pg${sep}sslmode=require" -c 'SELECT 1' >/dev/null 2>&1; then
    url="$url?sslmode=require"
  else
    echo "the server does not offer TLS: sslmode=require not checked" >&2
  fi
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
