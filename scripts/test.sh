#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine: installs what the tests need, starts the
# backing services (Redis, etcd, moto as S3; see scripts/services.sh and docs/development.md),
# then runs formatting and lint checks, the Rust tests (engine, backends, end-to-end against the
# real binary) and the tus-js-client resume test, and stops the services again on exit (also on
# failure or Ctrl-C). Everything listens on 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }

# --- system packages (Debian) -------------------------------------------------------------
missing=()
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v curl >/dev/null 2>&1 || missing+=(curl)
# promtool lints a real /metrics scrape in the end-to-end tests.
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# --- backing services: Redis, etcd, S3 (moto); also installs protoc ------------------------
# Before clippy: the etcd-client crate's build script needs protoc. The trap is set first so
# that a start that fails half-way still stops what did start; it keeps the exit status.
stop_services() {
    local status=$?
    scripts/services.sh down || printf 'warning: scripts/services.sh down failed\n' >&2
    exit "$status"
}
trap stop_services EXIT
log "starting services (scripts/services.sh up)"
scripts/services.sh up
# shellcheck source=/dev/null
source .services/env

# --- Rust: one debug build serves clippy's check, the tests and the JS test -----------------
# A CI checkout builds once, so incremental caches would only take disk (gigabytes).
if [[ -n "${CI:-}" ]]; then
    export CARGO_INCREMENTAL=0
fi
log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

# Licences, banned crates, duplicate versions and sources of the dependency tree (deny.toml).
# The advisory database is fetched from GitHub, which this machine cannot reach: operators run
# `cargo deny check advisories` where they can (docs/development.md, "Dependencies").
log "cargo deny (licenses, bans, sources)"
CARGO_DENY_VERSION=0.20.2
if ! cargo deny --version 2>/dev/null | grep -qx "cargo-deny $CARGO_DENY_VERSION"; then
    cargo install cargo-deny --locked --version "$CARGO_DENY_VERSION"
fi
# cargo-deny reads the whole dependency graph, other platforms' crates included, which the
# build above did not download.
cargo fetch --locked
cargo deny --offline check licenses bans sources

log "cargo machete (unused dependencies)"
CARGO_MACHETE_VERSION=0.9.2
if ! cargo machete --version 2>/dev/null | grep -q "$CARGO_MACHETE_VERSION"; then
    cargo install cargo-machete --locked --version "$CARGO_MACHETE_VERSION"
fi
cargo machete

log "cargo test"
cargo test --workspace --locked

# The engine's protocol tests three times more, over the distributed store: with in-memory S3
# and Redis (the real ones' semantics), then with the real Redis and S3 server started above,
# then with the Redis Cluster instead. Same binaries, no rebuild.
log "engine tests over the distributed store (in-memory services)"
TUSK_TEST_STORE=multipart cargo test --locked -p tusk-protocol
log "engine tests over the distributed store (real Redis and S3)"
TUSK_TEST_STORE=distributed cargo test --locked -p tusk-protocol
log "engine tests over the distributed store (Redis Cluster of 3 masters and S3)"
TUSK_TEST_STORE=cluster cargo test --locked -p tusk-protocol
# And the binary's distributed end-to-end tests once more, three nodes over that cluster.
log "end-to-end distributed tests over the Redis Cluster"
TUSK_TEST_E2E_REDIS_CLUSTER=1 cargo test --locked -p tusk-server --test e2e distributed::
# And the whole end-to-end suite with unsigned part bodies (the default over HTTPS), where the
# nodes stream a part to S3 while small PATCHes fill it: every fault test on that path too.
log "end-to-end tests with unsigned part bodies (parts streamed while they fill)"
TUSK_S3_PAYLOAD_SIGNING=never cargo test --locked -p tusk-server --test e2e

# --- the README's first command, exactly as a newcomer types it ------------------------------
# `cargo run --release -- serve` on a fresh clone: it must build, start on 127.0.0.1:1080 and
# answer; the README's curl walk-through then runs against it. Its own process group, so the
# server (cargo's child) is stopped with it.
readme_serve() {
    local url="http://127.0.0.1:1080/files/" log=target/readme-serve.log created_data="" pid i
    if curl -s -o /dev/null --max-time 2 -X OPTIONS "$url"; then
        printf 'something already listens on 127.0.0.1:1080; stop it to run this check\n' >&2
        return 1
    fi
    [[ -e tusk-data ]] || created_data=1
    setsid cargo run --release --locked -- serve >"$log" 2>&1 </dev/null &
    pid=$!
    # The release build comes first: up to 40 minutes on a cold 2-core machine.
    for ((i = 0; i < 24000; i++)); do
        curl -s -o /dev/null --max-time 2 -X OPTIONS "$url" && break
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 40 "$log" >&2
            printf "'cargo run --release -- serve' exited before it answered\n" >&2
            return 1
        fi
        sleep 0.1
    done
    local status=0
    scripts/readme-walkthrough.sh "$url" || status=$?
    kill -TERM -- "-$pid" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    [[ -z "$created_data" ]] || rm -rf tusk-data
    if ((status != 0)); then
        tail -n 40 "$log" >&2
        return "$status"
    fi
}
log "the README's first command: cargo run --release -- serve"
readme_serve

# --- tus-js-client against the real binary --------------------------------------------------
log "tus-js-client tests (kill-and-resume; parallelUploads over three nodes; 64 MiB over HTTPS)"
# `cargo test` above already built target/debug/tusk for the end-to-end tests.
(
    cd tests/js
    npm ci --no-audit --no-fund --loglevel=error
    TUSK_BIN="$PWD/../../target/debug/tusk" npm test
)

log "deployment artefacts"
scripts/check-deploy.sh

log "all tests passed"
