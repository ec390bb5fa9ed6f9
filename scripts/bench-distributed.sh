#!/usr/bin/env bash
# Distributed-mode benchmark (not a test): how fast does one tusk node move an upload into S3
# compared with a direct aws-sdk-s3 multipart upload of the same bytes to the same S3 server, how
# many small PATCHes per second does it take, and how much memory does it use under concurrent
# uploads against its --max-buffered-bytes bound?
#
# Usage: scripts/bench-distributed.sh            (from any directory)
#
# Needs release binaries; this script never builds. Build them first with
#     cargo build --release -p tusk-server -p tusk-bench
#
# Settings (environment):
#   SIZE_MIB        (default 1024)  size of each upload in step 1
#   PART_SIZE_MIB   (default: tusk's default, 8)  tusk --preferred-part-size and the baseline's
#                                   part size
#   CONCURRENCY     (default: tusk's default, 2)  tusk --max-inflight-parts and the baseline's
#                                   UploadParts in flight
#   RUNS            (default 3)     timed rounds in step 1, after one untimed warm-up of each side
#   TUSK_BIN, BENCH_BIN             binaries (default target/release/tusk, target/release/tusk-bench)
#   STEPS           (default "1 2 3 4 5")  which steps to run
#   LOAD_UPLOADS    (default 1000), LOAD_CONCURRENCY (default 64), LOAD_DRIPPERS (default 100)
#                   step 6
#   FLAKY_SIZE_MIB  (default 64), FLAKY_CUT_KIB (default 1024), FLAKY_RUNS (default 1),
#   FLAKY_RATE_KIB  (default 4096: link bandwidth, KiB/s; 0 unthrottled)  step 5
#
# Steps (all on 127.0.0.1; S3 = moto, plus Redis and etcd, from scripts/services.sh):
#   1. s3-vs-tusk: SIZE_MIB MiB straight to S3 (multipart, PART_SIZE_MIB parts, CONCURRENCY in
#      flight) against tusk (POST + one streamed PATCH), alternating, RUNS rounds; medians, ratio.
#   2. patches: 32 MiB as 128 sequential PATCHes of 256 KiB; PATCHes/s, p50, p99, max.
#   3. concurrent: the node restarted with --max-buffered-bytes 64MiB (and --max-size 256MiB,
#      see below); 8 uploads of 256 MiB at once; idle and peak RSS against the 64 MiB bound.
#   4. resumed: as 3 on a restarted node, but each upload sent as PATCHes of 3 MiB, so every
#      part is assembled from a tail an earlier PATCH left in Redis.
#   5. flaky: FLAKY_SIZE_MIB MiB through the fault proxy, cut every FLAKY_CUT_KIB KiB of upstream
#      traffic (RST; FIN; and cut points drawn from 0.5-1.5 x that), resumed after each cut,
#      against the same upload through the proxy without cuts; bytes that reached the node over
#      the file size, attempts, time ratio (scripts/bench-flaky.sh runs it in local mode too).
#   6. load (not in the default STEPS; run with STEPS=6): three nodes with the default
#      --max-buffered-bytes; LOAD_UPLOADS uploads of 1-8 MiB, LOAD_CONCURRENCY at a time, each
#      created on one node and sent to the next; first alone, then on fresh nodes with
#      LOAD_DRIPPERS clients dripping a byte every 10 s. Uploads/s, p50/p99 upload time, errors,
#      peak RSS per node, etcd writes and Redis commands per upload.
#   7. redis (not in the default STEPS; run with STEPS=7): step 2's small PATCHes against
#      nodes whose state is (a) a Redis primary with one replica started here, acknowledging
#      with --redis-wait-replicas 0, (b) the same with --redis-wait-replicas 1, and (c) the
#      services' 3-master Redis Cluster (--redis-cluster): what waiting for a replica and a
#      cluster cost a small PATCH and a HEAD.
# For each step it also prints the CPU seconds used by tusk, moto, Redis, etcd and the benchmark
# client (the machine's capacity is cores x wall time), to show who is the bottleneck.
#
# Services: if they were all running already they are left running; if this script started them
# (none was running) it stops them at the end. Each run uses a fresh bucket, removed at the end.
# The node is started with --listen 127.0.0.1:0 and stopped by its PID. Work files live under
# target/bench-tmp (removed on exit).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TUSK_BIN="${TUSK_BIN:-$ROOT/target/release/tusk}"
BENCH_BIN="${BENCH_BIN:-$ROOT/target/release/tusk-bench}"
SIZE_MIB="${SIZE_MIB:-1024}"
PART_SIZE_MIB="${PART_SIZE_MIB:-}"
CONCURRENCY="${CONCURRENCY:-}"
RUNS="${RUNS:-3}"
STEPS="${STEPS:-1 2 3 4 5}"
FLAKY_SIZE_MIB="${FLAKY_SIZE_MIB:-64}"
FLAKY_CUT_KIB="${FLAKY_CUT_KIB:-1024}"
FLAKY_RUNS="${FLAKY_RUNS:-1}"
FLAKY_RATE_KIB="${FLAKY_RATE_KIB:-4096}"
LOAD_UPLOADS="${LOAD_UPLOADS:-1000}"
LOAD_CONCURRENCY="${LOAD_CONCURRENCY:-64}"
LOAD_DRIPPERS="${LOAD_DRIPPERS:-100}"
PATCH_TOTAL_MIB=32
PATCH_KIB=256
CONC_UPLOADS=8
CONC_SIZE_MIB=256
CONC_BUFFER_MIB=64
RESUMED_PATCH_MIB=3
READY_TIMEOUT=30 # seconds the node gets to print its address and answer OPTIONS
STOP_TIMEOUT=15  # seconds the node gets to exit after SIGTERM, before SIGKILL (process.sh)

log() { printf 'bench-distributed: %s\n' "$*"; }
die() {
    printf 'bench-distributed: %s\n' "$*" >&2
    exit 1
}

# shellcheck source=scripts/lib/process.sh
source "$ROOT/scripts/lib/process.sh"

positive() { [[ "$2" =~ ^[1-9][0-9]*$ ]] || die "$1 must be a positive integer, got '$2'"; }
positive SIZE_MIB "$SIZE_MIB"
positive RUNS "$RUNS"
positive FLAKY_SIZE_MIB "$FLAKY_SIZE_MIB"
positive FLAKY_CUT_KIB "$FLAKY_CUT_KIB"
positive FLAKY_RUNS "$FLAKY_RUNS"
want() { [[ " $STEPS " == *" $1 "* ]]; }
[[ -z "$PART_SIZE_MIB" ]] || positive PART_SIZE_MIB "$PART_SIZE_MIB"
[[ -z "$CONCURRENCY" ]] || positive CONCURRENCY "$CONCURRENCY"
for bin in "$TUSK_BIN" "$BENCH_BIN"; do
    if [[ ! -x "$bin" ]]; then
        printf 'bench-distributed: %s not found or not executable.\n' "$bin" >&2
        printf 'Build first:  cargo build --release -p tusk-server -p tusk-bench\n' >&2
        printf '(or point TUSK_BIN / BENCH_BIN at other binaries)\n' >&2
        exit 1
    fi
done
for tool in curl awk getconf; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' is required"
done

MIB=$((1024 * 1024))
CLK_TCK="$(getconf CLK_TCK)"
mkdir -p "$ROOT/target/bench-tmp"
WORK="$(mktemp -d "$ROOT/target/bench-tmp/dist.XXXXXX")"
NODE_PID=""
NODE_URL=""
LOAD_PIDS=() # step 6's nodes, stopped by cleanup too
REDIS_PIDS=() # step 7's Redis primary and replica, stopped by cleanup too
BUCKET=""
S3_ENDPOINT="" REDIS_URL="" ETCD_ENDPOINTS="" # from .services/env
STOP_SERVICES=""

cleanup() {
    local status=$?
    if [[ -n "$NODE_PID" ]] && pid_alive "$NODE_PID"; then
        stop_pid "tusk node" "$NODE_PID" || true
    fi
    NODE_PID=""
    for pid in "${LOAD_PIDS[@]}"; do
        if pid_alive "$pid"; then
            stop_pid "tusk node" "$pid" || true
        fi
    done
    for pid in "${REDIS_PIDS[@]}"; do
        if pid_alive "$pid"; then
            stop_pid "redis-server" "$pid" || true
        fi
    done
    if [[ -n "$BUCKET" && -n "$S3_ENDPOINT" && -z "$STOP_SERVICES" ]]; then
        # Empty after a complete run (the benchmark deletes its objects); moto refuses to delete a
        # bucket that is not, which only leaves a small bucket behind after a failed run.
        curl -s -o /dev/null -X DELETE "$S3_ENDPOINT/$BUCKET" || true
        # The uploads' state in Redis lives under this run's own prefix (the bucket name). etcd
        # needs nothing: the node gives its locks back when it stops.
        if [[ -n "$REDIS_URL" ]] && command -v redis-cli >/dev/null 2>&1; then
            redis-cli -u "$REDIS_URL" --scan --pattern "$BUCKET:*" 2>/dev/null |
                xargs -r -n 100 redis-cli -u "$REDIS_URL" del >/dev/null 2>&1 || true
        fi
    fi
    if [[ -n "$STOP_SERVICES" ]]; then
        log "stopping the services this script started"
        "$ROOT/scripts/services.sh" down || true
    fi
    rm -rf "$WORK"
    rmdir "$ROOT/target/bench-tmp" 2>/dev/null || true
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# CPU seconds (user + system, all threads) PID has used so far; 0 if it is gone.
cpu_s() {
    local stat
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || { echo 0; return 0; }
    stat="${stat##*) }" # fields from the state on: utime and stime are the 12th and 13th
    awk -v t="$CLK_TCK" '{ printf "%.2f", ($12 + $13) / t }' <<<"$stat"
}
sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a - b }'; }

# --- services and bucket ---------------------------------------------------------------------
services_up_before="$("$ROOT/scripts/services.sh" status 2>/dev/null | awk '$2 == "up"' | wc -l)" || true
"$ROOT/scripts/services.sh" up
if ((services_up_before == 0)); then
    STOP_SERVICES=1
    log "services started by this script; they are stopped at the end"
elif ((services_up_before < 3)); then
    log "some services were already running; all are left running at the end"
else
    log "services were already running; they are left running"
fi
# shellcheck source=/dev/null
source "$ROOT/.services/env"
S3_ENDPOINT="${TUSK_TEST_S3_ENDPOINT:?not set by .services/env}"
REDIS_URL="${TUSK_TEST_REDIS_URL:?not set by .services/env}"
ETCD_ENDPOINTS="${TUSK_TEST_ETCD_ENDPOINTS:?not set by .services/env}"
MOTO_PID="$(cat "$ROOT/.services/run/moto.pid")"
REDIS_PID="$(cat "$ROOT/.services/run/redis.pid")"
ETCD_PID="$(cat "$ROOT/.services/run/etcd.pid")"

BUCKET="tusk-bench-$(date +%s)-$$"
curl -sf -o /dev/null -X PUT "$S3_ENDPOINT/$BUCKET" ||
    die "could not create bucket $BUCKET at $S3_ENDPOINT (see .services/run/moto.log)"
log "bucket $BUCKET created at $S3_ENDPOINT"

# --- the node --------------------------------------------------------------------------------
# start_node NAME [extra tusk flags...]: start one distributed node on a free port; sets NODE_PID
# and NODE_URL once its first stdout line names its address and it answers OPTIONS with 204.
start_node() {
    local name="$1" limit line
    shift
    local flags=(
        --listen 127.0.0.1:0
        --s3-bucket "$BUCKET"
        --s3-endpoint "$S3_ENDPOINT"
        --s3-region us-east-1
        --s3-force-path-style
        --redis-url "$REDIS_URL"
        --redis-prefix "$BUCKET:"
        --etcd-endpoints "$ETCD_ENDPOINTS"
        --etcd-prefix "$BUCKET/"
    )
    [[ -z "$PART_SIZE_MIB" ]] || flags+=(--preferred-part-size "${PART_SIZE_MIB}MiB")
    [[ -z "$CONCURRENCY" ]] || flags+=(--max-inflight-parts "$CONCURRENCY")
    flags+=("$@")
    AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true \
        "$TUSK_BIN" serve "${flags[@]}" </dev/null >"$WORK/$name.out" 2>"$WORK/$name.log" &
    NODE_PID=$!
    NODE_URL=""
    limit="$(deadline "$READY_TIMEOUT")"
    while :; do
        line="$(head -n 1 "$WORK/$name.out")"
        if [[ "$line" =~ ^tusk\ listening\ on\ (http://127\.0\.0\.1:[0-9]+/files/)$ ]]; then
            NODE_URL="${BASH_REMATCH[1]}"
            if curl -sf -o /dev/null --max-time 2 -X OPTIONS "$NODE_URL"; then
                break
            fi
        fi
        if ! pid_alive "$NODE_PID" || past "$limit"; then
            tail -n 30 "$WORK/$name.log" >&2 || true
            die "tusk node ($name) did not start within ${READY_TIMEOUT}s"
        fi
        sleep 0.05
    done
    log "node $name: pid $NODE_PID on $NODE_URL (tusk flags: ${flags[*]:2})"
}

stop_node() {
    stop_pid "tusk node" "$NODE_PID"
    wait "$NODE_PID" 2>/dev/null || true
    NODE_PID=""
}

# Redis's host:port, from its URL (for the benchmark's command counts).
redis_host_port() {
    local rest="${REDIS_URL#redis://}"
    printf '%s' "${rest%%/*}"
}

# measure STEP CMD...: run CMD (the benchmark client), then print the CPU each process used.
measure() {
    local step="$1" t0 tusk0 moto0 redis0 etcd0 wall client
    shift
    tusk0="$(cpu_s "$NODE_PID")" moto0="$(cpu_s "$MOTO_PID")"
    redis0="$(cpu_s "$REDIS_PID")" etcd0="$(cpu_s "$ETCD_PID")"
    t0="$(now)"
    local TIMEFORMAT='%U %S'
    { time "$@" 2>&1; } 2>"$WORK/client.time"
    wall="$(elapsed "$t0")"
    client="$(awk '{ printf "%.2f", $1 + $2 }' "$WORK/client.time")"
    echo
    printf 'CPU during %s (wall %s s; 2 cores = %s CPU-s available):\n' "$step" "$wall" \
        "$(awk -v w="$wall" -v n="$(nproc)" 'BEGIN { printf "%.1f", w * n }')"
    printf '  %-22s %8s s\n' "tusk node" "$(sub "$(cpu_s "$NODE_PID")" "$tusk0")" \
        "moto (S3)" "$(sub "$(cpu_s "$MOTO_PID")" "$moto0")" \
        "redis" "$(sub "$(cpu_s "$REDIS_PID")" "$redis0")" \
        "etcd" "$(sub "$(cpu_s "$ETCD_PID")" "$etcd0")" \
        "tusk-bench (client)" "$client"
    echo
}

# --- 1. one large upload: S3 directly vs through tusk ----------------------------------------
if want 1 || want 2; then
    start_node main
    echo
fi
if want 1; then
    log "step 1: s3-vs-tusk, $SIZE_MIB MiB, $RUNS runs"
    measure "s3-vs-tusk" "$BENCH_BIN" s3-vs-tusk \
        --s3-endpoint "$S3_ENDPOINT" --bucket "$BUCKET" --tusk "$NODE_URL" \
        --size "$((SIZE_MIB * MIB))" --part-size "$((${PART_SIZE_MIB:-8} * MIB))" \
        --concurrency "${CONCURRENCY:-2}" --runs "$RUNS"
fi

# --- 2. many small PATCHes -------------------------------------------------------------------
if want 2; then
    log "step 2: patches, $PATCH_TOTAL_MIB MiB as PATCHes of $PATCH_KIB KiB"
    measure "patches" "$BENCH_BIN" patches --tusk "$NODE_URL" \
        --total "$((PATCH_TOTAL_MIB * MIB))" --patch "$((PATCH_KIB * 1024))" \
        --s3-endpoint "$S3_ENDPOINT" --bucket "$BUCKET" \
        --etcd "${ETCD_ENDPOINTS%%,*}" --redis "$(redis_host_port)"
fi
if want 1 || want 2; then
    stop_node
fi

# --- 3. concurrent uploads against the buffer bound ------------------------------------------
# tusk refuses a buffer bound smaller than one part of the largest upload it accepts (with the
# default --max-size of 1 TiB, parts are ~105 MiB to fit 10,000), so cap --max-size at this
# step's upload size: parts stay at the preferred size.
if want 3; then
    start_node bounded --max-buffered-bytes "${CONC_BUFFER_MIB}MiB" --max-size "${CONC_SIZE_MIB}MiB"
    log "step 3: concurrent, $CONC_UPLOADS uploads of $CONC_SIZE_MIB MiB," \
        "--max-buffered-bytes ${CONC_BUFFER_MIB}MiB"
    measure "concurrent" "$BENCH_BIN" concurrent --tusk "$NODE_URL" \
        --uploads "$CONC_UPLOADS" --size "$((CONC_SIZE_MIB * MIB))" --pid "$NODE_PID" \
        --buffer-bound "$((CONC_BUFFER_MIB * MIB))" \
        --s3-endpoint "$S3_ENDPOINT" --bucket "$BUCKET"
    stop_node
fi

# --- 4. the same with parts assembled from stored tails ----------------------------------------
# A fresh node, so its VmHWM is this step's own.
if want 4; then
    start_node resumed --max-buffered-bytes "${CONC_BUFFER_MIB}MiB" --max-size "${CONC_SIZE_MIB}MiB"
    log "step 4: resumed, $CONC_UPLOADS uploads of $CONC_SIZE_MIB MiB as PATCHes of" \
        "$RESUMED_PATCH_MIB MiB, --max-buffered-bytes ${CONC_BUFFER_MIB}MiB"
    measure "resumed" "$BENCH_BIN" concurrent --tusk "$NODE_URL" \
        --uploads "$CONC_UPLOADS" --size "$((CONC_SIZE_MIB * MIB))" --pid "$NODE_PID" \
        --patch-size "$((RESUMED_PATCH_MIB * MIB))" --buffer-bound "$((CONC_BUFFER_MIB * MIB))" \
        --s3-endpoint "$S3_ENDPOINT" --bucket "$BUCKET"
    stop_node
fi

# --- 5. the flaky link --------------------------------------------------------------------------
if want 5; then
    start_node flaky
    log "step 5: flaky, $FLAKY_SIZE_MIB MiB cut every $FLAKY_CUT_KIB KiB, $FLAKY_RUNS run(s)"
    measure "flaky" "$BENCH_BIN" flaky --endpoint "$NODE_URL" \
        --size-mib "$FLAKY_SIZE_MIB" --cut-kib "$FLAKY_CUT_KIB" --rate-kib "$FLAKY_RATE_KIB" \
        --runs "$FLAKY_RUNS"
    stop_node
fi

# --- 6. load over three nodes, without and with dripping clients ----------------------------
# host:port of REDIS_URL (redis://host:port/db), for INFO over plain RESP.
if want 6; then
    for drippers in 0 "$LOAD_DRIPPERS"; do
        # Fresh nodes for each run, so each node's VmHWM is this run's own.
        LOAD_PIDS=()
        urls=()
        for n in 1 2 3; do
            start_node "load$drippers-$n"
            LOAD_PIDS+=("$NODE_PID")
            urls+=("$NODE_URL")
            NODE_PID=""
        done
        log "step 6: load, $LOAD_UPLOADS uploads of 1-8 MiB, $LOAD_CONCURRENCY at a time," \
            "over 3 nodes, $drippers dripping clients"
        "$BENCH_BIN" load --endpoints "$(IFS=,; echo "${urls[*]}")" \
            --uploads "$LOAD_UPLOADS" --concurrency "$LOAD_CONCURRENCY" --drippers "$drippers" \
            --pids "$(IFS=,; echo "${LOAD_PIDS[*]}")" --buffer-bound "$((512 * MIB))" \
            --etcd "$ETCD_ENDPOINTS" --redis "$(redis_host_port)"
        for pid in "${LOAD_PIDS[@]}"; do
            stop_pid "tusk node" "$pid"
            wait "$pid" 2>/dev/null || true
        done
        LOAD_PIDS=()
    done
fi

# --- 7. what replica waits and a Redis Cluster cost a small PATCH ----------------------------
# A free TCP port on 127.0.0.1.
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
if want 7; then
    primary_port="$(free_port)"
    replica_port="$(free_port)"
    mkdir -p "$WORK/primary" "$WORK/replica"
    redis-server --bind 127.0.0.1 --port "$primary_port" --dir "$WORK/primary" --save '' \
        --appendonly yes --appendfsync everysec --repl-diskless-sync-delay 0 \
        >"$WORK/primary.redis" 2>&1 &
    REDIS_PIDS+=("$!")
    redis-server --bind 127.0.0.1 --port "$replica_port" --dir "$WORK/replica" --save '' \
        --replicaof 127.0.0.1 "$primary_port" >"$WORK/replica.redis" 2>&1 &
    REDIS_PIDS+=("$!")
    limit="$(deadline "$READY_TIMEOUT")"
    until redis-cli -p "$replica_port" info replication 2>/dev/null | grep -q 'master_link_status:up'; do
        past "$limit" && die "the replica on $replica_port did not sync"
        sleep 0.1
    done
    primary_url="redis://127.0.0.1:$primary_port/"
    for replicas in 0 1; do
        REDIS_URL="$primary_url" start_node "wait$replicas" --redis-wait-replicas "$replicas"
        log "step 7: patches, primary + replica, --redis-wait-replicas $replicas"
        measure "patches (wait $replicas)" "$BENCH_BIN" patches --tusk "$NODE_URL" \
            --total "$((PATCH_TOTAL_MIB * MIB))" --patch "$((PATCH_KIB * 1024))" \
            --s3-endpoint "$S3_ENDPOINT" --bucket "$BUCKET" \
            --redis "127.0.0.1:$primary_port"
        stop_node
    done
    REDIS_URL="${TUSK_TEST_REDIS_CLUSTER_URLS:?not set by .services/env}" \
        start_node cluster --redis-cluster
    log "step 7: patches, Redis Cluster of 3 masters"
    measure "patches (cluster)" "$BENCH_BIN" patches --tusk "$NODE_URL" \
        --total "$((PATCH_TOTAL_MIB * MIB))" --patch "$((PATCH_KIB * 1024))" \
        --s3-endpoint "$S3_ENDPOINT" --bucket "$BUCKET"
    stop_node
fi

warnings="$(cat "$WORK"/*.log | grep -E 'WARN|ERROR' || true)"
if [[ -n "$warnings" ]]; then
    log "the node logged $(wc -l <<<"$warnings") line(s) at WARN or ERROR; the last ones:"
    tail -n 5 <<<"$warnings"
fi
log "done"
