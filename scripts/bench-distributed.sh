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
#   READY_TIMEOUT   (default 30)    seconds a node gets to start (more under a profiler)
#   STEPS           (default "1 2 3 4 5")  which steps to run
#   LOAD_UPLOADS    (default 1000), LOAD_CONCURRENCY (default 64), LOAD_DRIPPERS (default 100)
#                   step 6
#   FLAKY_SIZE_MIB  (default 64), FLAKY_CUT_KIB (default 1024), FLAKY_RUNS (default 1),
#   FLAKY_RATE_KIB  (default 4096: link bandwidth, KiB/s; 0 unthrottled)  step 5
#   PEERS           (default 0)     1: run steps 1-4 against tus-node-server too (see "Peers")
#   UNSIGNED_PAYLOAD (default 0)    1: parts as UNSIGNED-PAYLOAD on both sides (tusk with
#                                   --s3-payload-signing never, the baseline likewise); by
#                                   default both hash every part (plain HTTP to the S3 server)
#   S3_CPU          (default unset) a CPU number: the S3 server (moto or garage) runs on that
#                                   CPU alone and everything else (Redis, etcd, the nodes, the
#                                   clients) on the other CPUs, with taskset: on a small machine,
#                                   what a separate S3 server would look like (put back at exit)
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
# Peers (PEERS=1): tus-node-server (@tus/server with @tus/s3-store, the versions pinned in
# scripts/lib/peers/, installed once by npm into target/bench-peers or TUSK_PEERS_DIR and reused)
# is started by scripts/lib/tus-node-server.mjs on 127.0.0.1 against the same moto, with a bucket
# of its own and parts of PART_SIZE_MIB (8 MiB; the store's other options are its defaults: parts
# spooled to files in TMPDIR, here the work dir, at most 60 part uploads in flight). Steps 1-4 run
# against it right after tusk's, with the same client and the same checks (its objects are `<id>`
# and `<id>.info` like tusk's; the client's output calls the server under test "tusk"); step 1
# runs its own direct-S3 baseline rounds beside it. Steps 3 and 4 start a fresh peer process each
# and report its RSS the same way (it has no buffer bound to compare with). The end prints both
# sides' figures and the peer/tusk ratios in one table. If npm cannot install the packages (no
# network) or the peer fails, its steps are skipped with a message; tusk's are not affected.
#
# S3_SERVER=garage runs the steps against garage instead of moto (a Rust S3 server: GARAGE_BIN,
# default /work/tools/garage/bin/garage or garage on PATH; install it once, outside the repo,
# with `cargo install --locked garage --root DIR`, 20-30 minutes on 2 cores). The script starts
# a single-node garage with a key and the bucket, and runs tusk with --s3-checksum
# when-required, the baseline client's mode there (garage refuses the SDK's streamed checksum
# bodies); the peer is skipped. Without the
# binary it says so and exits 0.
#
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
PEERS="${PEERS:-0}"
PATCH_TOTAL_MIB=32
PATCH_KIB=256
CONC_UPLOADS=8
CONC_SIZE_MIB=256
CONC_BUFFER_MIB=64
RESUMED_PATCH_MIB=3
READY_TIMEOUT=${READY_TIMEOUT:-30} # seconds the node gets to print its address and answer OPTIONS
STOP_TIMEOUT=15  # seconds the node gets to exit after SIGTERM, before SIGKILL (process.sh)

log() { printf 'bench-distributed: %s\n' "$*"; }
die() {
    printf 'bench-distributed: %s\n' "$*" >&2
    exit 1
}

# shellcheck source=scripts/lib/process.sh
source "$ROOT/scripts/lib/process.sh"
# shellcheck source=scripts/lib/peers.sh
source "$ROOT/scripts/lib/peers.sh"
# shellcheck source=scripts/lib/garage.sh
source "$ROOT/scripts/lib/garage.sh"

positive() { [[ "$2" =~ ^[1-9][0-9]*$ ]] || die "$1 must be a positive integer, got '$2'"; }
positive SIZE_MIB "$SIZE_MIB"
positive RUNS "$RUNS"
positive FLAKY_SIZE_MIB "$FLAKY_SIZE_MIB"
positive FLAKY_CUT_KIB "$FLAKY_CUT_KIB"
positive FLAKY_RUNS "$FLAKY_RUNS"
want() { [[ " $STEPS " == *" $1 "* ]]; }
[[ "$PEERS" == 0 || "$PEERS" == 1 ]] || die "PEERS must be 0 or 1, got '$PEERS'"
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

# The peer: installed (or found installed) now, so that a failed install is said up front.
if [[ "$PEERS" == 1 ]] && { want 1 || want 2 || want 3 || want 4; }; then
    if ! command -v jq >/dev/null 2>&1; then
        log "peer: 'jq' is needed for the side-by-side table; skipping the peer"
        PEERS=0
    elif ! peers_install; then
        PEERS=0
    fi
fi

MIB=$((1024 * 1024))
CLK_TCK="$(getconf CLK_TCK)"
mkdir -p "$ROOT/target/bench-tmp"
WORK="$(mktemp -d "$ROOT/target/bench-tmp/dist.XXXXXX")"
NODE_PID=""
NODE_URL=""
PEER_PID="" # tus-node-server (PEERS=1)
PEER_URL=""
PEER_BUCKET=""
LOAD_PIDS=() # step 6's nodes, stopped by cleanup too
REDIS_PIDS=() # step 7's Redis primary and replica, stopped by cleanup too
PINNED_PIDS=() # services pinned to CPUs with S3_CPU, put back by cleanup
BUCKET=""
S3_ENDPOINT="" REDIS_URL="" ETCD_ENDPOINTS="" # from .services/env
STOP_SERVICES=""

cleanup() {
    local status=$?
    if [[ -n "$NODE_PID" ]] && pid_alive "$NODE_PID"; then
        stop_pid "tusk node" "$NODE_PID" || true
    fi
    NODE_PID=""
    if [[ -n "$PEER_PID" ]] && pid_alive "$PEER_PID"; then
        stop_pid "tus-node-server" "$PEER_PID" || true
    fi
    PEER_PID=""
    if [[ -n "$GARAGE_PID" ]] && pid_alive "$GARAGE_PID"; then
        stop_pid "garage" "$GARAGE_PID" || true
    fi
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
    if [[ -n "$BUCKET" && -n "$S3_ENDPOINT" && -z "$STOP_SERVICES" && -z "$GARAGE_PID" ]]; then
        # Empty after a complete run (the benchmark deletes its objects); moto refuses to delete a
        # bucket that is not, which only leaves a small bucket behind after a failed run.
        curl -s -o /dev/null -X DELETE "$S3_ENDPOINT/$BUCKET" || true
        [[ -z "$PEER_BUCKET" ]] || curl -s -o /dev/null -X DELETE "$S3_ENDPOINT/$PEER_BUCKET" || true
        # The uploads' state in Redis lives under this run's own prefix (the bucket name). etcd
        # needs nothing: the node gives its locks back when it stops.
        if [[ -n "$REDIS_URL" ]] && command -v redis-cli >/dev/null 2>&1; then
            redis-cli -u "$REDIS_URL" --scan --pattern "$BUCKET:*" 2>/dev/null |
                xargs -r -n 100 redis-cli -u "$REDIS_URL" del >/dev/null 2>&1 || true
        fi
    fi
    for pid in "${PINNED_PIDS[@]}"; do
        taskset -a -cp "0-$(($(nproc --all) - 1))" "$pid" >/dev/null 2>&1 || true
    done
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

# A free TCP port on 127.0.0.1.
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# start_garage: a single-node garage (scripts/lib/garage.sh) with a fresh key and the run's
# bucket; points S3_ENDPOINT and the AWS credentials at it (S3_SERVER=garage). Exits 0 without
# the binary.
start_garage() {
    local bin
    bin="$(garage_bin)"
    if [[ -z "$bin" ]]; then
        log "S3_SERVER=garage: $GARAGE_MISSING; skipped"
        exit 0
    fi
    PEERS=0
    BUCKET="tusk-bench-$(date +%s)-$$"
    garage_start "$bin" "$WORK/garage" "$BUCKET"
    export AWS_ACCESS_KEY_ID="$GARAGE_KEY_ID" AWS_SECRET_ACCESS_KEY="$GARAGE_SECRET"
    export AWS_REQUEST_CHECKSUM_CALCULATION=when_required
    S3_ENDPOINT="$GARAGE_ENDPOINT"
    TUSK_S3_FLAGS+=(--s3-checksum when-required)
}

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
S3_SERVER="${S3_SERVER:-moto}"
GARAGE_PID=""
TUSK_S3_FLAGS=()
UNSIGNED_PAYLOAD="${UNSIGNED_PAYLOAD:-0}"
if [[ "$UNSIGNED_PAYLOAD" == 1 ]]; then
    TUSK_S3_FLAGS+=(--s3-payload-signing never)
fi
if [[ "$S3_SERVER" == garage ]]; then
    start_garage
fi
REDIS_URL="${TUSK_TEST_REDIS_URL:?not set by .services/env}"
ETCD_ENDPOINTS="${TUSK_TEST_ETCD_ENDPOINTS:?not set by .services/env}"
MOTO_PID="${GARAGE_PID:-$(cat "$ROOT/.services/run/moto.pid")}"
REDIS_PID="$(cat "$ROOT/.services/run/redis.pid")"
ETCD_PID="$(cat "$ROOT/.services/run/etcd.pid")"
if [[ -n "${S3_CPU:-}" ]]; then
    command -v taskset >/dev/null 2>&1 || die "S3_CPU needs taskset (util-linux)"
    cpus="$(nproc --all)"
    [[ "$S3_CPU" =~ ^[0-9]+$ ]] && ((S3_CPU < cpus && cpus > 1)) ||
        die "S3_CPU=$S3_CPU: a CPU number below $cpus, on a machine with at least 2"
    others="$(seq 0 $((cpus - 1)) | grep -vx "$S3_CPU" | paste -sd, -)"
    PINNED_PIDS=("$MOTO_PID" "$REDIS_PID" "$ETCD_PID")
    taskset -a -cp "$S3_CPU" "$MOTO_PID" >/dev/null
    # This shell too: the nodes and clients it starts inherit it.
    for pid in "$REDIS_PID" "$ETCD_PID" "$$"; do
        taskset -a -cp "$others" "$pid" >/dev/null
    done
    log "S3_CPU=$S3_CPU: the S3 server (pid $MOTO_PID) on CPU $S3_CPU alone, everything else on CPUs $others"
fi

if [[ "$S3_SERVER" != garage ]]; then
    BUCKET="tusk-bench-$(date +%s)-$$"
    curl -sf -o /dev/null -X PUT "$S3_ENDPOINT/$BUCKET" ||
        die "could not create bucket $BUCKET at $S3_ENDPOINT (see .services/run/moto.log)"
    log "bucket $BUCKET created at $S3_ENDPOINT"
fi
if [[ "$PEERS" == 1 ]]; then
    PEER_BUCKET="$BUCKET-peer"
    if curl -sf -o /dev/null -X PUT "$S3_ENDPOINT/$PEER_BUCKET"; then
        log "bucket $PEER_BUCKET created for tus-node-server"
    else
        log "peer: could not create bucket $PEER_BUCKET; skipping the peer"
        PEER_BUCKET="" PEERS=0
    fi
fi

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
        "${TUSK_S3_FLAGS[@]}"
    )
    [[ -z "$PART_SIZE_MIB" ]] || flags+=(--preferred-part-size "${PART_SIZE_MIB}MiB")
    [[ -z "$CONCURRENCY" ]] || flags+=(--max-inflight-parts "$CONCURRENCY")
    flags+=("$@")
    AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}" \
        AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}" AWS_EC2_METADATA_DISABLED=true \
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

# start_peer NAME: start tus-node-server with @tus/s3-store on PEER_BUCKET on a free port; sets
# PEER_PID and PEER_URL once its first stdout line names its address and it answers OPTIONS with
# 204. Returns 1 (after saying why) if it does not, so that the caller skips the peer's step.
start_peer() {
    local name="$1" limit line
    mkdir -p "$WORK/$name.tmp" # the S3 store spools each part to a file in os.tmpdir()
    TMPDIR="$WORK/$name.tmp" node "$PEER_SERVER" --modules "$PEERS_DIR" --store s3 \
        --s3-endpoint "$S3_ENDPOINT" --bucket "$PEER_BUCKET" \
        --part-size "$((${PART_SIZE_MIB:-8} * MIB))" \
        </dev/null >"$WORK/$name.peer.out" 2>"$WORK/$name.peer.err" &
    PEER_PID=$!
    PEER_URL=""
    limit="$(deadline "$READY_TIMEOUT")"
    while :; do
        line="$(head -n 1 "$WORK/$name.peer.out")"
        if [[ "$line" =~ ^tus-node-server\ listening\ on\ (http://127\.0\.0\.1:[0-9]+/files/)$ ]]; then
            PEER_URL="${BASH_REMATCH[1]}"
            if curl -sf -o /dev/null --max-time 2 -X OPTIONS "$PEER_URL"; then
                break
            fi
        fi
        if ! pid_alive "$PEER_PID" || past "$limit"; then
            tail -n 20 "$WORK/$name.peer.err" >&2 || true
            log "peer: tus-node-server ($name) did not start within ${READY_TIMEOUT}s; skipping its step"
            stop_peer
            return 1
        fi
        sleep 0.05
    done
    log "peer $name: tus-node-server pid $PEER_PID on $PEER_URL (@tus/s3-store, bucket $PEER_BUCKET," \
        "$((${PART_SIZE_MIB:-8})) MiB parts)"
}

stop_peer() {
    if [[ -n "$PEER_PID" ]]; then
        stop_pid "tus-node-server" "$PEER_PID" || true
        wait "$PEER_PID" 2>/dev/null || true
    fi
    PEER_PID="" PEER_URL=""
}

# Redis's host:port, from its URL (for the benchmark's command counts).
redis_host_port() {
    local rest="${REDIS_URL#redis://}"
    printf '%s' "${rest%%/*}"
}

# measure STEP CMD...: run CMD (the benchmark client), then print the CPU each process used.
# The server measured is NODE_PID, "tusk node", unless MEASURE_PID and MEASURE_LABEL say
# otherwise (the peer). The client's output is kept in $WORK/last.out, and the step's wall time
# and CPU split in LAST_CPU (JSON), for the side-by-side table. Returns the client's status.
measure() {
    local step="$1" t0 tusk0 moto0 redis0 etcd0 wall client rc=0
    local pid="${MEASURE_PID:-$NODE_PID}" label="${MEASURE_LABEL:-tusk node}"
    local server_cpu moto_cpu redis_cpu etcd_cpu
    shift
    tusk0="$(cpu_s "$pid")" moto0="$(cpu_s "$MOTO_PID")"
    redis0="$(cpu_s "$REDIS_PID")" etcd0="$(cpu_s "$ETCD_PID")"
    t0="$(now)"
    local TIMEFORMAT='%U %S'
    { time "$@" 2>&1 | tee "$WORK/last.out"; } 2>"$WORK/client.time" || rc=$?
    wall="$(elapsed "$t0")"
    client="$(awk '{ printf "%.2f", $1 + $2 }' "$WORK/client.time")"
    server_cpu="$(sub "$(cpu_s "$pid")" "$tusk0")" moto_cpu="$(sub "$(cpu_s "$MOTO_PID")" "$moto0")"
    redis_cpu="$(sub "$(cpu_s "$REDIS_PID")" "$redis0")" etcd_cpu="$(sub "$(cpu_s "$ETCD_PID")" "$etcd0")"
    echo
    printf 'CPU during %s (wall %s s; %s cores = %s CPU-s available):\n' "$step" "$wall" "$(nproc)" \
        "$(awk -v w="$wall" -v n="$(nproc)" 'BEGIN { printf "%.1f", w * n }')"
    printf '  %-22s %8s s\n' "$label" "$server_cpu" \
        "$S3_SERVER (S3)" "$moto_cpu" \
        "redis" "$redis_cpu" \
        "etcd" "$etcd_cpu" \
        "tusk-bench (client)" "$client"
    echo
    LAST_CPU="{\"wall\":$wall,\"server\":$server_cpu,\"moto\":$moto_cpu,\"redis\":$redis_cpu,\"etcd\":$etcd_cpu,\"client\":$client}"
    return "$rc"
}

# keep SIDE STEP: file the last client run's summary line and CPU split for the table at the end.
keep() {
    local summary
    summary="$(sed -n 's/^summary //p' "$WORK/last.out" | tail -n 1)"
    [[ -n "$summary" ]] || return 0
    jq -c --argjson cpu "$LAST_CPU" '. + {cpu: $cpu}' <<<"$summary" >"$WORK/result.$1.$2.json" || true
}

# peer_step STEP TITLE CMD...: run the client against the peer (PEER_PID), as measure does, and
# file the result; a failure is reported and skipped, never fatal.
peer_step() {
    local step="$1" title="$2"
    shift 2
    if MEASURE_PID="$PEER_PID" MEASURE_LABEL="tus-node-server" measure "$title (tus-node-server)" "$@"; then
        keep peer "$step"
    else
        log "peer: step $step against tus-node-server failed (see above; $WORK is removed at exit," \
            "its log was:)"
        tail -n 20 "$WORK"/*.peer.err >&2 2>/dev/null || true
    fi
}

# --- 1. one large upload: S3 directly vs through tusk ----------------------------------------
# With PEERS=1 the peer runs beside the node for steps 1 and 2 (each idles while the other is
# measured), so that each step's peer run follows tusk's directly.
peer_main=""
if want 1 || want 2; then
    start_node main
    if [[ "$PEERS" == 1 ]] && start_peer peer-main; then
        peer_main=1
    fi
    echo
fi
if want 1; then
    log "step 1: s3-vs-tusk, $SIZE_MIB MiB, $RUNS runs"
    s3_args=(--s3-endpoint "$S3_ENDPOINT" --size "$((SIZE_MIB * MIB))"
        --part-size "$((${PART_SIZE_MIB:-8} * MIB))" --concurrency "${CONCURRENCY:-2}" --runs "$RUNS")
    [[ "$UNSIGNED_PAYLOAD" == 1 ]] && s3_args+=(--unsigned-payload)
    measure "s3-vs-tusk" "$BENCH_BIN" s3-vs-tusk --bucket "$BUCKET" --tusk "$NODE_URL" "${s3_args[@]}"
    [[ "$PEERS" == 1 ]] && keep tusk 1
    if [[ -n "$peer_main" ]]; then
        log "step 1 (peer): s3-vs-tusk against tus-node-server, $SIZE_MIB MiB, $RUNS runs, with its" \
            "own baseline rounds (\"tusk\" in the client's output is tus-node-server here)"
        peer_step 1 "s3-vs-tusk" "$BENCH_BIN" s3-vs-tusk --bucket "$PEER_BUCKET" --tusk "$PEER_URL" \
            "${s3_args[@]}"
    fi
fi

# --- 2. many small PATCHes -------------------------------------------------------------------
if want 2; then
    log "step 2: patches, $PATCH_TOTAL_MIB MiB as PATCHes of $PATCH_KIB KiB"
    measure "patches" "$BENCH_BIN" patches --tusk "$NODE_URL" \
        --total "$((PATCH_TOTAL_MIB * MIB))" --patch "$((PATCH_KIB * 1024))" \
        --s3-endpoint "$S3_ENDPOINT" --bucket "$BUCKET" \
        --etcd "${ETCD_ENDPOINTS%%,*}" --redis "$(redis_host_port)"
    [[ "$PEERS" == 1 ]] && keep tusk 2
    if [[ -n "$peer_main" ]]; then
        log "step 2 (peer): patches against tus-node-server"
        peer_step 2 "patches" "$BENCH_BIN" patches --tusk "$PEER_URL" \
            --total "$((PATCH_TOTAL_MIB * MIB))" --patch "$((PATCH_KIB * 1024))" \
            --s3-endpoint "$S3_ENDPOINT" --bucket "$PEER_BUCKET"
    fi
fi
if want 1 || want 2; then
    stop_node
    stop_peer
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
    [[ "$PEERS" == 1 ]] && keep tusk 3
    stop_node
    # A fresh peer process, so its VmHWM is this step's own; it has no buffer bound.
    if [[ "$PEERS" == 1 ]] && start_peer peer-concurrent; then
        log "step 3 (peer): concurrent against tus-node-server, $CONC_UPLOADS uploads of" \
            "$CONC_SIZE_MIB MiB (no buffer bound to set)"
        peer_step 3 "concurrent" "$BENCH_BIN" concurrent --tusk "$PEER_URL" \
            --uploads "$CONC_UPLOADS" --size "$((CONC_SIZE_MIB * MIB))" --pid "$PEER_PID" \
            --s3-endpoint "$S3_ENDPOINT" --bucket "$PEER_BUCKET"
        stop_peer
    fi
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
    [[ "$PEERS" == 1 ]] && keep tusk 4
    stop_node
    if [[ "$PEERS" == 1 ]] && start_peer peer-resumed; then
        log "step 4 (peer): resumed against tus-node-server, $CONC_UPLOADS uploads of" \
            "$CONC_SIZE_MIB MiB as PATCHes of $RESUMED_PATCH_MIB MiB"
        peer_step 4 "resumed" "$BENCH_BIN" concurrent --tusk "$PEER_URL" \
            --uploads "$CONC_UPLOADS" --size "$((CONC_SIZE_MIB * MIB))" --pid "$PEER_PID" \
            --patch-size "$((RESUMED_PATCH_MIB * MIB))" \
            --s3-endpoint "$S3_ENDPOINT" --bucket "$PEER_BUCKET"
        stop_peer
    fi
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

# --- the peer beside tusk ----------------------------------------------------------------------
# One row per figure: tusk's, the peer's, and peer / tusk (above 1: the peer took longer, used
# more, or for rates did more).
peer_table() {
    local step field label fmt t p any=""
    printf '\nPeers side by side: tusk against tus-node-server (@tus/s3-store), same client, same moto\n\n'
    printf '%-52s %14s %16s %12s\n' "step: figure" "tusk" "tus-node-server" "peer/tusk"
    # step;jq filter;label;printf format
    while IFS=';' read -r step field label fmt; do
        [[ -f "$WORK/result.tusk.$step.json" || -f "$WORK/result.peer.$step.json" ]] || continue
        any=1
        t="$(jq -r "$field // empty" "$WORK/result.tusk.$step.json" 2>/dev/null || true)"
        p="$(jq -r "$field // empty" "$WORK/result.peer.$step.json" 2>/dev/null || true)"
        printf '%-52s %14s %16s %12s\n' "$step: $label" \
            "$([[ -n "$t" ]] && printf "$fmt" "$t" || echo -)" \
            "$([[ -n "$p" ]] && printf "$fmt" "$p" || echo -)" \
            "$(awk -v a="$t" -v b="$p" 'BEGIN { if (a != "" && b != "" && a + 0 != 0) printf "%.2f", b / a; else print "-" }')"
    done <<'ROWS'
1;.tusk_median_s;upload, median s;%.3f
1;.tusk_median_mib_s;upload, median MiB/s;%.1f
1;.baseline_median_s;its run's baseline (S3 direct), median s;%.3f
1;.ratio;server / baseline (medians);%.2f
1;.cpu.server;server CPU-s (whole step, baseline rounds too);%.2f
1;.cpu.moto;moto CPU-s (whole step);%.2f
1;.cpu.wall;wall s (whole step);%.1f
2;.patches_per_s;PATCHes/s (256 KiB each);%.1f
2;.p50_ms;PATCH p50 ms;%.2f
2;.p99_ms;PATCH p99 ms;%.2f
2;.head_p50_ms;HEAD p50 ms;%.2f
2;.cpu.server;server CPU-s;%.2f
2;.cpu.moto;moto CPU-s;%.2f
3;.seconds;8 x 256 MiB at once, total s;%.2f
3;.aggregate_mib_s;aggregate MiB/s;%.1f
3;.idle_rss / 1048576;idle RSS MiB;%.1f
3;([.vm_hwm, .peak_rss_sampled] | max) / 1048576;peak RSS MiB;%.1f
3;(([.vm_hwm, .peak_rss_sampled] | max) - .idle_rss) / 1048576;peak - idle MiB;%.1f
3;.cpu.server;server CPU-s;%.2f
3;.cpu.moto;moto CPU-s;%.2f
4;.seconds;the same as 3 MiB PATCHes, total s;%.2f
4;.aggregate_mib_s;aggregate MiB/s;%.1f
4;.idle_rss / 1048576;idle RSS MiB;%.1f
4;([.vm_hwm, .peak_rss_sampled] | max) / 1048576;peak RSS MiB;%.1f
4;(([.vm_hwm, .peak_rss_sampled] | max) - .idle_rss) / 1048576;peak - idle MiB;%.1f
4;.cpu.server;server CPU-s;%.2f
4;.cpu.moto;moto CPU-s;%.2f
ROWS
    [[ -n "$any" ]] || printf '(no step produced figures)\n'
    printf '\ntusk bound for steps 3 and 4: --max-buffered-bytes %s MiB; tus-node-server has none.\n' \
        "$CONC_BUFFER_MIB"
}
if [[ "$PEERS" == 1 ]]; then
    peer_table
fi

warnings="$(cat "$WORK"/*.log | grep -E 'WARN|ERROR' || true)"
if [[ -n "$warnings" ]]; then
    log "the node logged $(wc -l <<<"$warnings") line(s) at WARN or ERROR; the last ones:"
    tail -n 5 <<<"$warnings"
fi
log "done"
