#!/usr/bin/env bash
# Builds the Debian package (cargo-deb, [package.metadata.deb] in Cargo.toml):
# the binary with Postgres support, the unit, the example config, the man
# page, completions and docs.
#
#   scripts/package.sh [--dev] [OUT_DIR]     (default OUT_DIR: $CARGO_TARGET_DIR/debian)
#
# --dev packages a dev-profile build with the tests' features (CI: reuses
# the test build; slower binary, same files). Needs cargo-deb
# (`cargo install cargo-deb`) and dpkg-dev.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=release
if [ "${1:-}" = "--dev" ]; then profile=dev; shift; fi
target=$(cargo metadata --format-version 1 --no-deps | sed -E 's/.*"target_directory":"([^"]*)".*/\1/')
out=${1:-$target/debian}
command -v cargo-deb >/dev/null || { echo "cargo-deb not found: cargo install cargo-deb" >&2; exit 1; }

# --dev builds with the features the tests were built with (CI: no second
# compile of the crate); the release package has exactly postgres.
if [ "$profile" = dev ]; then features=--all-features; else features="--features postgres"; fi
cargo build --locked --profile "$profile" $features --bin stripe-hookd
built="$target/$([ "$profile" = dev ] && echo debug || echo "$profile")/stripe-hookd"

# cargo-deb reads assets from target/release/…: stage them in a target dir of
# their own so a dev build never lands in the real release directory.
stage="$target/deb-stage"
rm -rf "$stage"
assets="$stage/release/deb-assets"
mkdir -p "$assets"
cp "$built" "$stage/release/stripe-hookd"
"$built" man | gzip -9n > "$assets/stripe-hookd.1.gz"
"$built" completions bash > "$assets/stripe-hookd.bash"
"$built" completions zsh > "$assets/_stripe-hookd"
"$built" completions fish > "$assets/stripe-hookd.fish"
# The package installs the binary in /usr/bin and the docs in /usr/share/doc.
sed -e 's#/usr/local/bin/stripe-hookd#/usr/bin/stripe-hookd#' \
    -e 's#file:///usr/local/share/doc/stripe-hookd/README.md#man:stripe-hookd(1) file:///usr/share/doc/stripe-hookd/README.md#' \
    systemd/stripe-hookd.service > "$assets/stripe-hookd.service"
grep -q '^ExecStart=/usr/bin/stripe-hookd serve$' "$assets/stripe-hookd.service" \
  || { echo "packaged unit: ExecStart not rewritten to /usr/bin" >&2; exit 1; }

mkdir -p "$out"
CARGO_TARGET_DIR="$stage" cargo deb --no-build --strip --output "$out/"
ls -1 "$out"/stripe-hookd_*.deb
