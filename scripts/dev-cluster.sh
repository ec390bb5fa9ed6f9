#!/usr/bin/env bash
# A three-node tusk cluster on this machine, for trying a cross-node resume by hand: every node
# is stateless and shares one S3 bucket (moto), Redis and etcd, so an upload created on one node
# can be continued on any other.
#
# Usage: scripts/dev-cluster.sh up|down|status        (from any directory)
#
#   up      scripts/services.sh up (Redis, etcd, moto; installs them if missing), create the
#           bucket tusk-dev in moto, start nodes 1-3 on http://127.0.0.1:1081/files/, :1082 and
#           :1083, wait until each answers, and print a curl walk-through. Nodes already
#           running are reused.
#   down    Stop the nodes (TERM, bounded wait, then KILL), then scripts/services.sh down.
#   status  The services and the nodes, each up or down.
#
#   TUSK_BIN=path/to/tusk   binary to run (default target/release/tusk; build it first with
#                           `cargo build --release`; this script never builds)
#
# Files: .services/run/node-N.log and .services/run/node-N.pid (N = 1, 2, 3). Everything listens
# on 127.0.0.1 only. The bucket lives in moto's memory: `down` (or a moto restart) empties it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

RUN_DIR="$ROOT/.services/run"
TUSK_BIN="${TUSK_BIN:-$ROOT/target/release/tusk}"
BUCKET="tusk-dev"
S3_ENDPOINT="" REDIS_URL="" ETCD_ENDPOINTS="" # from .services/env, read by `up`
NODES=(1 2 3)    # node N listens on 127.0.0.1:108N
READY_TIMEOUT=30 # seconds a node gets to answer after it is started
STOP_TIMEOUT=15  # seconds a node gets to exit after SIGTERM, before SIGKILL

log() { printf 'dev-cluster: %s\n' "$*"; }
die() {
    printf 'dev-cluster: %s\n' "$*" >&2
    exit 1
}

# shellcheck source=scripts/lib/process.sh
source "$ROOT/scripts/lib/process.sh"

node_port() { printf '%s' "$((1080 + $1))"; }
node_url() { printf 'http://127.0.0.1:%s/files/' "$(node_port "$1")"; }
node_pid_file() { printf '%s/node-%s.pid' "$RUN_DIR" "$1"; }
node_log_file() { printf '%s/node-%s.log' "$RUN_DIR" "$1"; }


# The PID of node N if its pid file names a live `tusk serve` of that node, else nothing.
node_pid() {
    live_pid_from "$(node_pid_file "$1")" " serve --listen 127.0.0.1:$(node_port "$1") "
}

node_ready() { curl -sf -o /dev/null --max-time 2 -X OPTIONS "$(node_url "$1")"; }


start_node() {
    local n="$1" port pid limit t
    port="$(node_port "$n")"
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        die "node $n: port $port on 127.0.0.1 is already in use by another process"
    fi
    t="$(now)"
    # Credentials and endpoints match what scripts/services.sh started (.services/env).
    AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true \
        "$TUSK_BIN" serve \
        --listen "127.0.0.1:$port" \
        --s3-bucket "$BUCKET" \
        --s3-endpoint "$S3_ENDPOINT" \
        --s3-region us-east-1 \
        --s3-force-path-style \
        --redis-url "$REDIS_URL" \
        --etcd-endpoints "$ETCD_ENDPOINTS" \
        --preferred-part-size 5MiB \
        </dev/null >"$(node_log_file "$n")" 2>&1 &
    pid=$!
    printf '%s\n' "$pid" >"$(node_pid_file "$n")"

    limit="$(deadline "$READY_TIMEOUT")"
    until node_ready "$n"; do
        if ! pid_alive "$pid" || past "$limit"; then
            if pid_alive "$pid"; then
                printf 'dev-cluster: node %s (pid %s) not answering after %ss; last log lines:\n' \
                    "$n" "$pid" "$READY_TIMEOUT" >&2
                stop_pid "node $n" "$pid"
            else
                printf 'dev-cluster: node %s exited during start-up; last log lines:\n' "$n" >&2
            fi
            tail -n 30 "$(node_log_file "$n")" >&2 || true
            rm -f "$(node_pid_file "$n")"
            exit 1
        fi
        sleep 0.1
    done
    log "node $n: ready in $(elapsed "$t") s (pid $pid) on $(node_url "$n")"
}

print_walkthrough() {
    cat <<EOF

Cluster up: node 1 $(node_url 1), node 2 $(node_url 2), node 3 $(node_url 3)
Logs: .services/run/node-N.log. Stop everything with: scripts/dev-cluster.sh down

Try a cross-node resume (12 MiB file; parts are 5 MiB, so node 2 leaves 2 MiB pending):

  head -c 12582912 /dev/urandom > /tmp/tusk-demo.bin

  # 1. create the upload on node 1
  id=\$(curl -si -X POST http://127.0.0.1:1081/files/ -H 'Tus-Resumable: 1.0.0' \\
        -H 'Upload-Length: 12582912' | tr -d '\r' | awk 'tolower(\$1) == "location:" { print \$2 }')
  id=\${id##*/}; echo "upload id: \$id"

  # 2. send the first 7 MiB to node 2                          => 204, Upload-Offset: 7340032
  head -c 7340032 /tmp/tusk-demo.bin | curl -si -X PATCH "http://127.0.0.1:1082/files/\$id" \\
       -H 'Tus-Resumable: 1.0.0' -H 'Upload-Offset: 0' \\
       -H 'Content-Type: application/offset+octet-stream' --data-binary @-

  # 3. ask node 3 where to resume                               => 200, Upload-Offset: 7340032
  curl -sI "http://127.0.0.1:1083/files/\$id" -H 'Tus-Resumable: 1.0.0'

  # 4. send the rest to node 1                                  => 204, Upload-Offset: 12582912
  tail -c +7340033 /tmp/tusk-demo.bin | curl -si -X PATCH "http://127.0.0.1:1081/files/\$id" \\
       -H 'Tus-Resumable: 1.0.0' -H 'Upload-Offset: 7340032' \\
       -H 'Content-Type: application/offset+octet-stream' --data-binary @-

  # 5. any node now reports the upload complete; the object is in the bucket
  curl -sI "http://127.0.0.1:1082/files/\$id" -H 'Tus-Resumable: 1.0.0'
  curl -s '$S3_ENDPOINT/$BUCKET?list-type=2'

EOF
}

cmd_up() {
    if [[ ! -x "$TUSK_BIN" ]]; then
        printf 'dev-cluster: %s not found or not executable.\n' "$TUSK_BIN" >&2
        printf 'Build it first:  cargo build --release\n' >&2
        printf '(or point TUSK_BIN at another tusk binary)\n' >&2
        exit 1
    fi
    "$ROOT/scripts/services.sh" up
    # shellcheck source=/dev/null
    source "$ROOT/.services/env"
    S3_ENDPOINT="${TUSK_TEST_S3_ENDPOINT:?not set by .services/env}"
    REDIS_URL="${TUSK_TEST_REDIS_URL:?not set by .services/env}"
    ETCD_ENDPOINTS="${TUSK_TEST_ETCD_ENDPOINTS:?not set by .services/env}"

    # Creating a bucket that exists (and is ours) answers 200 in moto, so this is idempotent.
    curl -sf -o /dev/null -X PUT "$S3_ENDPOINT/$BUCKET" ||
        die "could not create bucket $BUCKET at $S3_ENDPOINT (see .services/run/moto.log)"
    log "bucket $BUCKET ready at $S3_ENDPOINT"

    local n pid
    for n in "${NODES[@]}"; do
        pid="$(node_pid "$n")"
        if [[ -n "$pid" ]] && node_ready "$n"; then
            log "node $n: already running (pid $pid) on $(node_url "$n")"
            continue
        fi
        if [[ -n "$pid" ]]; then # running but not answering: restart it
            log "node $n (pid $pid) is not answering: restarting it"
            stop_pid "node $n" "$pid"
        fi
        start_node "$n"
    done
    print_walkthrough
}

cmd_down() {
    local n pid
    for n in "${NODES[@]}"; do
        pid="$(node_pid "$n")"
        if [[ -n "$pid" ]]; then
            stop_pid "node $n" "$pid"
            log "node $n: stopped (pid $pid)"
        fi
        rm -f "$(node_pid_file "$n")"
    done
    "$ROOT/scripts/services.sh" down
}

cmd_status() {
    local n pid status=0
    "$ROOT/scripts/services.sh" status || status=$?
    for n in "${NODES[@]}"; do
        pid="$(node_pid "$n")"
        if [[ -n "$pid" ]]; then
            printf '%-6s up    pid %-8s %s\n' "node-$n" "$pid" "$(node_url "$n")"
        else
            printf '%-6s down  %-12s %s\n' "node-$n" "" "$(node_url "$n")"
            status=3
        fi
    done
    return "$status"
}

case "${1:-}" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    *)
        printf 'usage: %s up|down|status\n' "$0" >&2
        exit 2
        ;;
esac
