#!/usr/bin/env bash
# Builds the Debian package (cargo-deb, [package.metadata.deb] in Cargo.toml):
# the binary with Postgres support, the unit, the example config, the man
# page, completions and docs. Plain `cargo deb` builds the same release
# package; this script also checks that debian/assets/ is fresh and can
# package a dev build.
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

# The generated files (man page, completions, packaged unit) are committed in
# debian/assets/ (scripts/deb-assets.sh): refuse to package stale ones.
fresh=$(mktemp -d)
trap 'rm -rf "$fresh"' EXIT
scripts/deb-assets.sh "$built" "$fresh" >/dev/null
if ! diff -r debian/assets "$fresh" >&2; then
  echo "debian/assets/ is stale: run scripts/deb-assets.sh and commit what it writes" >&2
  exit 1
fi

# cargo-deb reads the binary from target/release/: stage it in a target dir
# of its own so a dev build never lands in the real release directory.
stage="$target/deb-stage"
rm -rf "$stage"
mkdir -p "$stage/release"
cp "$built" "$stage/release/stripe-hookd"

mkdir -p "$out"
CARGO_TARGET_DIR="$stage" cargo deb --no-build --strip --output "$out/"
ls -1 "$out"/stripe-hookd_*.deb
