#!/usr/bin/env bash
# Writes the Debian package's generated files into debian/assets/: the man
# page and shell completions (from the clap definition) and the packaged
# unit (systemd/stripe-hookd.service with the package's paths). They are
# committed so that `cargo deb` alone builds the package; a test
# (tests/it/install.rs, `debian_assets_are_what_the_binary_generates`)
# fails when one is stale, naming this script.
#
#   scripts/deb-assets.sh [BINARY [OUT_DIR]]
#
# BINARY defaults to a debug build of this checkout, OUT_DIR to debian/assets.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-}
if [ -z "$bin" ]; then
  cargo build --locked --quiet --bin stripe-hookd
  target=$(cargo metadata --format-version 1 --no-deps | sed -E 's/.*"target_directory":"([^"]*)".*/\1/')
  bin="$target/debug/stripe-hookd"
fi
out=${2:-debian/assets}
mkdir -p "$out"
"$bin" man > "$out/stripe-hookd.1"
"$bin" completions bash > "$out/stripe-hookd.bash"
"$bin" completions zsh > "$out/_stripe-hookd"
"$bin" completions fish > "$out/stripe-hookd.fish"
# The package installs the binary in /usr/bin and the docs in /usr/share/doc.
sed -e 's#/usr/local/bin/stripe-hookd#/usr/bin/stripe-hookd#' \
    -e 's#file:///usr/local/share/doc/stripe-hookd/README.md#man:stripe-hookd(1) file:///usr/share/doc/stripe-hookd/README.md#' \
    systemd/stripe-hookd.service > "$out/stripe-hookd.service"
grep -q '^ExecStart=/usr/bin/stripe-hookd serve$' "$out/stripe-hookd.service" \
  || { echo "packaged unit: ExecStart not rewritten to /usr/bin" >&2; exit 1; }
echo "wrote $out/: $(ls "$out" | tr '\n' ' ')"
