#!/usr/bin/env bash
# Cost of the pre-access hook (not a test): one local node, an upload sent as small sequential
# PATCHes, with the hook off, on (a receiver on 127.0.0.1 that allows everything, so each PATCH
# pays one hook round trip), and on with --hooks-access-cache 1m, in turn, RUNS times each.
# Prints tusk-bench patches' figures for every run.
#
# Usage: scripts/bench-access.sh        (release binaries: cargo build --release -p tusk-server
#                                        -p tusk-bench; this script never builds)
#   RUNS (default 2)  TOTAL_KIB (default 4096)  PATCH_KIB (default 16)
#   TUSK_BIN, BENCH_BIN (default target/release/tusk, target/release/tusk-bench)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TUSK_BIN="${TUSK_BIN:-$ROOT/target/release/tusk}"
BENCH_BIN="${BENCH_BIN:-$ROOT/target/release/tusk-bench}"
RUNS="${RUNS:-2}"
TOTAL_KIB="${TOTAL_KIB:-4096}"
PATCH_KIB="${PATCH_KIB:-16}"
STOP_TIMEOUT=15

log() { printf 'bench-access: %s\n' "$*"; }
die() {
    printf 'bench-access: %s\n' "$*" >&2
    exit 1
}
# shellcheck source=scripts/lib/process.sh
source "$ROOT/scripts/lib/process.sh"

for bin in "$TUSK_BIN" "$BENCH_BIN"; do
    [[ -x "$bin" ]] || die "$bin not found; build first: cargo build --release -p tusk-server -p tusk-bench"
done
mkdir -p "$ROOT/target/bench-tmp"
WORK="$(mktemp -d "$ROOT/target/bench-tmp/access.XXXXXX")"
PIDS=()
cleanup() {
    local status=$?
    for pid in "${PIDS[@]}"; do
        pid_alive "$pid" && stop_pid "process" "$pid"
    done
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT

# The hook receiver: answers every hook with an empty object (allow).
python3 - >"$WORK/receiver.out" 2>/dev/null <<'PY' &
import http.server
class Allow(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without this, Nagle and delayed ACKs add 40 ms.
    disable_nagle_algorithm = True
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Allow)
print(server.server_address[1], flush=True)
server.serve_forever()
PY
PIDS+=($!)
limit="$(deadline 10)"
until [[ -s "$WORK/receiver.out" ]]; do
    past "$limit" && die "the hook receiver did not start"
    sleep 0.05
done
RECEIVER="http://127.0.0.1:$(head -n 1 "$WORK/receiver.out")/hooks"

run() {
    local mode="$1" url="" line pid
    local flags=(serve --listen 127.0.0.1:0 --data-dir "$WORK/data-$mode-$2")
    [[ "$mode" != off ]] && flags+=(--hooks-url "$RECEIVER" --hooks-events pre-access)
    [[ "$mode" == cached ]] && flags+=(--hooks-access-cache 1m)
    "$TUSK_BIN" "${flags[@]}" </dev/null >"$WORK/node.out" 2>"$WORK/node.log" &
    pid=$!
    PIDS+=("$pid")
    limit="$(deadline 30)"
    while :; do
        line="$(head -n 1 "$WORK/node.out")"
        if [[ "$line" =~ ^tusk\ listening\ on\ (http://127\.0\.0\.1:[0-9]+/files/)$ ]]; then
            url="${BASH_REMATCH[1]}"
            break
        fi
        past "$limit" && die "the node did not start"
        sleep 0.05
    done
    log "hook $mode, run $2"
    "$BENCH_BIN" patches --tusk "$url" --total "$((TOTAL_KIB * 1024))" --patch "$((PATCH_KIB * 1024))"
    stop_pid "tusk node" "$pid"
}

for ((i = 1; i <= RUNS; i++)); do
    run off "$i"
    run on "$i"
    run cached "$i"
done
