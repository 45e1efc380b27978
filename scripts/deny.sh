#!/usr/bin/env bash
# Checks the dependency tree with cargo deny (deny.toml): licenses on the reviewed allow-list, no
# OpenSSL or aws-lc, crates.io as the only source; and known vulnerabilities (RustSec advisories)
# when the advisory database can be fetched, or is already in CARGO_HOME/advisory-dbs.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v cargo-deny >/dev/null 2>&1; then
  echo "installing cargo-deny 0.20.2 (cargo install, a few minutes)"
  cargo install --quiet --locked cargo-deny --version 0.20.2
fi
cargo deny --locked check licenses bans sources
if timeout 60 cargo deny --locked fetch db >/dev/null 2>&1 || ls "${CARGO_HOME:-$HOME/.cargo}"/advisory-dbs/*/ >/dev/null 2>&1; then
  cargo deny --offline --locked check advisories
else
  echo "cargo deny: advisories not checked: the RustSec database (github.com) cannot be fetched from here"
fi
