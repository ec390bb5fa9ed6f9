#!/usr/bin/env bash
# Flaky-link benchmark (not a test), in local and in distributed mode: one upload of SIZE_MIB MiB
# through the fault proxy of tusk-testkit, cut every CUT_KIB KiB of upstream traffic (by RST,
# by FIN, and at points drawn from 0.5-1.5 x CUT_KIB), by a client that HEADs and resumes after
# each cut, against the same upload through the proxy without cuts in the same run. It prints,
# per scenario, the bytes that reached the node over the file size, the attempts, and the time
# against the uncut upload; each upload is checked byte for byte, then deleted.
#
# Usage: scripts/bench-flaky.sh          (from any directory)
#
# Needs release binaries; this script never builds. Build them first with
#     cargo build --release -p tusk-server -p tusk-bench
#
# Settings (environment):
#   SIZE_MIB (default 64)   CUT_KIB (default 1024)   RUNS (default 1: rounds per scenario)
#   RATE_KIB (default 4096: the link's upstream bandwidth in KiB/s, 32 Mbit/s; 0 unthrottled)
#   MODES    (default "local distributed")
#   TUSK_BIN, BENCH_BIN     binaries (default target/release/tusk, target/release/tusk-bench)
#
# Local mode runs one node on a data directory under target/bench-tmp (removed on exit);
# distributed mode is step 5 of scripts/bench-distributed.sh (which starts Redis, etcd and moto
# through scripts/services.sh when they are not running). Everything is on 127.0.0.1.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TUSK_BIN="${TUSK_BIN:-$ROOT/target/release/tusk}"
BENCH_BIN="${BENCH_BIN:-$ROOT/target/release/tusk-bench}"
SIZE_MIB="${SIZE_MIB:-64}"
CUT_KIB="${CUT_KIB:-1024}"
RUNS="${RUNS:-1}"
RATE_KIB="${RATE_KIB:-4096}"
MODES="${MODES:-local distributed}"
READY_TIMEOUT=30 # seconds the node gets to print its address and answer OPTIONS
STOP_TIMEOUT=15  # seconds the node gets to exit after SIGTERM, before SIGKILL (process.sh)

log() { printf 'bench-flaky: %s\n' "$*"; }
die() {
    printf 'bench-flaky: %s\n' "$*" >&2
    exit 1
}

# shellcheck source=scripts/lib/process.sh
source "$ROOT/scripts/lib/process.sh"

[[ "$RATE_KIB" =~ ^[0-9]+$ ]] || die "RATE_KIB must be a whole number, got '$RATE_KIB'"
for setting in SIZE_MIB CUT_KIB RUNS; do
    [[ "${!setting}" =~ ^[1-9][0-9]*$ ]] || die "$setting must be a positive integer, got '${!setting}'"
done
for bin in "$TUSK_BIN" "$BENCH_BIN"; do
    [[ -x "$bin" ]] || die "$bin not found; build first: cargo build --release -p tusk-server -p tusk-bench"
done

mkdir -p "$ROOT/target/bench-tmp"
WORK="$(mktemp -d "$ROOT/target/bench-tmp/flaky.XXXXXX")"
NODE_PID=""
cleanup() {
    local status=$?
    if [[ -n "$NODE_PID" ]] && pid_alive "$NODE_PID"; then
        stop_pid "tusk node" "$NODE_PID" || true
    fi
    rm -rf "$WORK"
    rmdir "$ROOT/target/bench-tmp" 2>/dev/null || true
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ " $MODES " == *" local "* ]]; then
    "$TUSK_BIN" serve --listen 127.0.0.1:0 --data-dir "$WORK/data" </dev/null \
        >"$WORK/node.out" 2>"$WORK/node.log" &
    NODE_PID=$!
    limit="$(deadline "$READY_TIMEOUT")"
    url=""
    while :; do
        line="$(head -n 1 "$WORK/node.out")"
        if [[ "$line" =~ ^tusk\ listening\ on\ (http://127\.0\.0\.1:[0-9]+/files/)$ ]]; then
            url="${BASH_REMATCH[1]}"
            curl -sf -o /dev/null --max-time 2 -X OPTIONS "$url" && break
        fi
        if ! pid_alive "$NODE_PID" || past "$limit"; then
            tail -n 30 "$WORK/node.log" >&2 || true
            die "the local node did not start within ${READY_TIMEOUT}s"
        fi
        sleep 0.05
    done
    log "local mode: node pid $NODE_PID on $url"
    "$BENCH_BIN" flaky --endpoint "$url" --size-mib "$SIZE_MIB" --cut-kib "$CUT_KIB" \
        --rate-kib "$RATE_KIB" --runs "$RUNS"
    stop_pid "tusk node" "$NODE_PID"
    NODE_PID=""
fi

if [[ " $MODES " == *" distributed "* ]]; then
    log "distributed mode (scripts/bench-distributed.sh, step 5)"
    STEPS=5 FLAKY_SIZE_MIB="$SIZE_MIB" FLAKY_CUT_KIB="$CUT_KIB" FLAKY_RUNS="$RUNS" \
        FLAKY_RATE_KIB="$RATE_KIB" \
        TUSK_BIN="$TUSK_BIN" BENCH_BIN="$BENCH_BIN" "$ROOT/scripts/bench-distributed.sh"
fi
