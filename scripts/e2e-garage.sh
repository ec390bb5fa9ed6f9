#!/usr/bin/env bash
# The end-to-end suite against garage, a real S3-compatible store, instead of moto: run by hand,
# not by CI (garage takes 20-30 min to build on 2 cores and is not packaged for Debian).
#
# Usage: scripts/e2e-garage.sh [TEST FILTER ...]     (default: the whole e2e suite)
#   e.g. scripts/e2e-garage.sh distributed:: hooks::
#
# Starts Redis and etcd with scripts/services.sh (moto too, unused), a single-node garage
# (scripts/lib/garage.sh: GARAGE_BIN, /work/tools/garage/bin/garage or garage on PATH) with a key
# that may create buckets, and runs `cargo test -p tusk-server --test e2e` with the test S3
# endpoint and credentials pointed at garage. Without the binary it says so and exits 0. What differs from moto is in docs/development.md ("Against garage").
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

READY_TIMEOUT=30
STOP_TIMEOUT=10
log() { printf 'e2e-garage: %s\n' "$*"; }
die() {
    log "$*" >&2
    exit 1
}
# shellcheck source=scripts/lib/process.sh
source "$ROOT/scripts/lib/process.sh"
# shellcheck source=scripts/lib/garage.sh
source "$ROOT/scripts/lib/garage.sh"

bin="$(garage_bin)"
if [[ -z "$bin" ]]; then
    log "$GARAGE_MISSING; nothing run"
    exit 0
fi

mkdir -p "$ROOT/target"
WORK="$(mktemp -d "$ROOT/target/e2e-garage.XXXXXX")"
GARAGE_PID=""
STOP_SERVICES=""
cleanup() {
    local status=$?
    if [[ -n "$GARAGE_PID" ]] && pid_alive "$GARAGE_PID"; then
        stop_pid garage "$GARAGE_PID" || true
    fi
    if [[ -n "$STOP_SERVICES" ]]; then
        "$ROOT/scripts/services.sh" down || true
    fi
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT

# Stopped at the end only if this script started them. (Read whole first: `grep -q` in the
# pipe would end it early, and pipefail would take the broken pipe for "none up".)
services_status="$("$ROOT/scripts/services.sh" status 2>/dev/null || true)"
if ! grep -q " up " <<<"$services_status"; then
    STOP_SERVICES=1
fi
"$ROOT/scripts/services.sh" up
# shellcheck source=/dev/null
source "$ROOT/.services/env"

garage_start "$bin" "$WORK/garage" "tusk-e2e-default"
export TUSK_TEST_S3_ENDPOINT="$GARAGE_ENDPOINT"
export TUSK_TEST_S3_ACCESS_KEY_ID="$GARAGE_KEY_ID" TUSK_TEST_S3_SECRET_ACCESS_KEY="$GARAGE_SECRET"
# Checksums stay tusk's default (when-supported): garage 2.5 takes the CRC32 header the SDK
# sends with an in-memory part. TUSK_S3_CHECKSUM=when-required in the caller's environment
# reaches every node the tests start.
# garage accepts storage class and encryption headers but keeps neither.
export TUSK_TEST_S3_NO_OBJECT_SETTINGS=1
# Under when-supported garage refuses a part streamed with the SDK's aws-chunked checksum: the
# nodes send whole parts (the start-up check finds it), which the streaming test then expects.
if [[ "${TUSK_S3_CHECKSUM:-when-supported}" != when-required ]]; then
    export TUSK_TEST_S3_REFUSES_STREAMED_PARTS=1
fi

log "cargo test -p tusk-server --test e2e $*"
cargo test --locked -p tusk-server --test e2e -- "$@"
