#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine: installs what the tests need, then runs
# formatting and lint checks, the Rust tests (engine, backends, end-to-end against the real
# binary) and the tus-js-client resume test. Everything listens on 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

# --- system packages (Debian) -------------------------------------------------------------
missing=()
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# --- Rust: one debug build serves clippy's check, the tests and the JS test -----------------
log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "cargo test"
cargo test --workspace --locked

# --- tus-js-client against the real binary --------------------------------------------------
log "tus-js-client resume test"
# `cargo test` above already built target/debug/tusk for the end-to-end tests.
(
    cd tests/js
    npm ci --no-audit --no-fund --loglevel=error
    TUSK_BIN="$PWD/../../target/debug/tusk" npm test
)

log "all tests passed"
