#!/usr/bin/env bash
# The backing services the tests (and scripts/dev-cluster.sh) need: Redis, etcd and an S3 server
# (moto), installed if missing and run on 127.0.0.1 only, under .services/ (git-ignored).
#
# Usage: scripts/services.sh up|down|status        (from any directory)
#
#   up      Install what is missing (Debian: apt-get redis-server etcd-server etcd-client
#           protobuf-compiler libprotobuf-dev python3-venv curl; moto[server]==5.1.22 into the venv
#           .services/venv), start each service that is not already running, wait until each
#           answers, and write .services/env:   source .services/env
#           A service whose recorded PID is still alive is reused, so `up` is idempotent.
#           protoc is installed here too: the etcd-client crate's build script needs it.
#   down    Stop each service by its recorded PID (TERM, bounded wait, then KILL), remove the
#           PID files and .services/env.
#   status  One line per service: name, up/down, PID, address. Exit status 0 if all are up,
#           3 if any is down.
#
# Settings (environment; etcd's peer port is its client port + 1):
#   TUSK_SERVICES_REDIS_PORT  (default 16379)    redis-server --save '' --appendonly no
#   TUSK_SERVICES_REDIS_CLUSTER_PORT (default 17001) a 3-master Redis Cluster on this port and
#                                                the next two (bus ports 10000 above), created
#                                                afresh at each start
#   TUSK_SERVICES_ETCD_PORT   (default 12379)    etcd, data dir wiped at each start
#   TUSK_SERVICES_S3_PORT     (default 15000)    moto_server (buckets vanish when it stops)
#   TUSK_SERVICES_READY_TIMEOUT (default 30)     seconds each service gets to answer
#
# Files under .services/: run/<name>.pid, run/<name>.port, run/<name>.log, run/redis/ (Redis
# dir), run/cluster<N>/ (cluster nodes' dirs), run/etcd/ (etcd data), venv/ (moto), env
# (exports for tests).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

SERVICES_DIR="$ROOT/.services"
RUN_DIR="$SERVICES_DIR/run"
VENV="$SERVICES_DIR/venv"
ENV_FILE="$SERVICES_DIR/env"
MOTO_VERSION="5.1.22"

REDIS_PORT="${TUSK_SERVICES_REDIS_PORT:-16379}"
ETCD_PORT="${TUSK_SERVICES_ETCD_PORT:-12379}"
S3_PORT="${TUSK_SERVICES_S3_PORT:-15000}"
REDIS_CLUSTER_PORT="${TUSK_SERVICES_REDIS_CLUSTER_PORT:-17001}"
READY_TIMEOUT="${TUSK_SERVICES_READY_TIMEOUT:-30}" # seconds each service gets to answer
STOP_TIMEOUT=10 # seconds each service gets to exit after SIGTERM, before SIGKILL

# start order; `down` stops them in reverse. cluster1-3 are the masters of one Redis Cluster.
SERVICES=(redis cluster1 cluster2 cluster3 etcd moto)

log() { printf 'services: %s\n' "$*"; }
die() {
    printf 'services: %s\n' "$*" >&2
    exit 1
}

for port_var in REDIS_PORT ETCD_PORT S3_PORT REDIS_CLUSTER_PORT; do
    port="${!port_var}"
    if ! [[ "$port" =~ ^[1-9][0-9]{0,4}$ ]] || ((port >= 65535)); then
        die "TUSK_SERVICES_$port_var must be a TCP port below 65535, got '$port'"
    fi
done
# Each cluster node also listens on its port + 10000 (the cluster bus).
((REDIS_CLUSTER_PORT + 2 + 10000 < 65536)) ||
    die "TUSK_SERVICES_REDIS_CLUSTER_PORT must leave room for 3 ports and their bus ports (+10000)"
CLUSTER_NODES=(cluster1 cluster2 cluster3)
ETCD_PEER_PORT=$((ETCD_PORT + 1))
[[ "$READY_TIMEOUT" =~ ^[1-9][0-9]*$ ]] ||
    die "TUSK_SERVICES_READY_TIMEOUT must be a whole number of seconds, got '$READY_TIMEOUT'"


# --- processes --------------------------------------------------------------------------------

# shellcheck source=scripts/lib/process.sh
source "$ROOT/scripts/lib/process.sh"

pid_file() { printf '%s/%s.pid' "$RUN_DIR" "$1"; }
log_file() { printf '%s/%s.log' "$RUN_DIR" "$1"; }


# What each service's command line contains; guards against a recycled PID in a stale pid file.
service_cmd_pattern() {
    case "$1" in
        redis | cluster?) printf 'redis-server' ;;
        etcd) printf 'etcd' ;;
        moto) printf 'moto_server' ;;
        *) return 1 ;;
    esac
}

# The PID of SERVICE if its pid file names a live process running that service, else nothing.
service_pid() {
    live_pid_from "$(pid_file "$1")" "$(service_cmd_pattern "$1")"
}

port_file() { printf '%s/%s.port' "$RUN_DIR" "$1"; }

# The client port SERVICE is configured to use (from TUSK_SERVICES_*_PORT or the default).
wanted_port() {
    case "$1" in
        redis) printf '%s' "$REDIS_PORT" ;;
        cluster?) printf '%s' "$((REDIS_CLUSTER_PORT + ${1#cluster} - 1))" ;;
        etcd) printf '%s' "$ETCD_PORT" ;;
        moto) printf '%s' "$S3_PORT" ;;
    esac
}

# The client port a running SERVICE was started on (recorded at start), else the wanted one.
service_port() {
    local file
    file="$(port_file "$1")"
    if [[ -f "$file" ]]; then
        printf '%s' "$(<"$file")"
    else
        wanted_port "$1"
    fi
}

service_addr() {
    local port
    port="$(service_port "$1")"
    if [[ "$1" == etcd ]]; then
        printf '127.0.0.1:%s (peer %s)' "$port" "$((port + 1))"
    else
        printf '127.0.0.1:%s' "$port"
    fi
}

# True if something accepts TCP connections on 127.0.0.1:PORT.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }


# --- install ----------------------------------------------------------------------------------

as_root() {
    if ((EUID == 0)); then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

install_missing() {
    local missing=()
    command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
    command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
    command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
    command -v etcdctl >/dev/null 2>&1 || missing+=(etcd-client)
    command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
    # protoc's well-known types (google/protobuf/*.proto), which etcd-client's protos import;
    # --no-install-recommends would otherwise leave them out.
    [[ -f /usr/include/google/protobuf/descriptor.proto ]] || missing+=(libprotobuf-dev)
    command -v curl >/dev/null 2>&1 || missing+=(curl)
    if ! command -v python3 >/dev/null 2>&1; then
        missing+=(python3 python3-venv)
    elif ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
        # Debian's python3 has `venv` but not `ensurepip` until python3-venv is installed.
        missing+=(python3-venv)
    fi
    if ((${#missing[@]})); then
        log "apt-get install ${missing[*]}"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi

    local have=""
    if [[ -x "$VENV/bin/python" && -x "$VENV/bin/moto_server" ]]; then
        have="$("$VENV/bin/python" -c \
            'import importlib.metadata as m; print(m.version("moto"))' 2>/dev/null || true)"
    fi
    if [[ "$have" != "$MOTO_VERSION" ]]; then
        log "creating $VENV with moto[server]==$MOTO_VERSION${have:+ (found moto $have)}"
        rm -rf "$VENV"
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install -q --disable-pip-version-check "moto[server]==$MOTO_VERSION"
    fi
}

# --- start ------------------------------------------------------------------------------------

# Start SERVICE in the background (stdin from /dev/null, stdout and stderr to its log) and
# record its PID. The process outlives this script; `down` stops it by that PID.
launch() {
    local name="$1"
    shift
    "$@" </dev/null >"$(log_file "$name")" 2>&1 &
    printf '%s\n' "$!" >"$(pid_file "$name")"
    wanted_port "$name" >"$(port_file "$name")"
}

ready_redis() { [[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]; }
ping_port() { [[ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" == PONG ]]; }
ready_cluster1() { ping_port "$(wanted_port cluster1)"; }
ready_cluster2() { ping_port "$(wanted_port cluster2)"; }
ready_cluster3() { ping_port "$(wanted_port cluster3)"; }
cluster_ok() {
    redis-cli -h 127.0.0.1 -p "$REDIS_CLUSTER_PORT" cluster info 2>/dev/null |
        grep -q '^cluster_state:ok'
}

# Join the three cluster nodes into one cluster (slots split over them, no replicas) unless
# they already are one, and wait until it serves every slot.
form_cluster() {
    local limit name
    if ! cluster_ok; then
        local addrs=()
        for name in "${CLUSTER_NODES[@]}"; do addrs+=("127.0.0.1:$(wanted_port "$name")"); done
        redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes \
            >"$RUN_DIR/cluster-create.log" 2>&1 ||
            { cat "$RUN_DIR/cluster-create.log" >&2; die "redis-cli --cluster create failed"; }
    fi
    limit="$(deadline "$READY_TIMEOUT")"
    until cluster_ok; do
        past "$limit" && die "the Redis Cluster on port $REDIS_CLUSTER_PORT is not ok after ${READY_TIMEOUT}s"
        sleep 0.1
    done
}
ready_etcd() {
    ETCDCTL_API=3 etcdctl --endpoints "http://127.0.0.1:$ETCD_PORT" \
        --dial-timeout 1s --command-timeout 2s endpoint health >/dev/null 2>&1
}
ready_moto() { curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$S3_PORT/"; }

# Wait (at most READY_TIMEOUT seconds) until SERVICE, running as PID, answers. On failure show
# the end of its log, stop the process if this run started it (third argument "started"), and
# exit.
wait_ready() {
    local name="$1" pid="$2" started="${3:-}" limit
    limit="$(deadline "$READY_TIMEOUT")"
    until "ready_$name"; do
        if ! pid_alive "$pid" || past "$limit"; then
            if pid_alive "$pid"; then
                printf 'services: %s (pid %s) not ready after %ss; last log lines:\n' \
                    "$name" "$pid" "$READY_TIMEOUT" >&2
            else
                printf 'services: %s exited during start-up; last log lines:\n' "$name" >&2
            fi
            tail -n 30 "$(log_file "$name")" >&2 || true
            if [[ "$started" == started ]]; then
                pid_alive "$pid" && stop_pid "$name" "$pid"
                rm -f "$(pid_file "$name")" "$(port_file "$name")"
            fi
            exit 1
        fi
        sleep 0.1
    done
}

start_service() {
    local name="$1" port
    port="$(wanted_port "$name")"
    if port_busy "$port"; then
        local setting="${name/moto/s3}"
        [[ "$name" == cluster? ]] && setting=redis_cluster
        die "$name: port $port on 127.0.0.1 is already in use by another process" \
            "(set TUSK_SERVICES_$(tr '[:lower:]' '[:upper:]' <<<"$setting")_PORT)"
    fi
    if [[ "$name" == cluster? ]] && port_busy "$((port + 10000))"; then
        die "$name: cluster bus port $((port + 10000)) on 127.0.0.1 is already in use"
    fi
    if [[ "$name" == etcd ]] && port_busy "$ETCD_PEER_PORT"; then
        die "etcd: peer port $ETCD_PEER_PORT on 127.0.0.1 is already in use by another process"
    fi

    case "$name" in
        redis)
            mkdir -p "$RUN_DIR/redis"
            launch redis redis-server --bind 127.0.0.1 --port "$REDIS_PORT" \
                --dir "$RUN_DIR/redis" --save '' --appendonly no --daemonize no
            ;;
        cluster?)
            # A fresh node: its cluster state (nodes.conf) from an earlier run would name a
            # cluster the other fresh nodes are not in.
            rm -rf "${RUN_DIR:?}/$name"
            mkdir -p "$RUN_DIR/$name"
            launch "$name" redis-server --bind 127.0.0.1 --port "$port" \
                --dir "$RUN_DIR/$name" --save '' --appendonly no --daemonize no \
                --cluster-enabled yes --cluster-config-file nodes.conf \
                --cluster-node-timeout 2000
            ;;
        etcd)
            rm -rf "$RUN_DIR/etcd"
            launch etcd etcd --name tusk-test --data-dir "$RUN_DIR/etcd" \
                --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
                --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
                --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
                --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
                --initial-cluster "tusk-test=http://127.0.0.1:$ETCD_PEER_PORT" \
                --initial-cluster-state new \
                --heartbeat-interval 20 --election-timeout 200 \
                --logger zap --log-outputs stderr
            ;;
        moto)
            launch moto "$VENV/bin/moto_server" -H 127.0.0.1 -p "$S3_PORT"
            ;;
    esac

    wait_ready "$name" "$(<"$(pid_file "$name")")" started
}

write_env() {
    local tmp="$ENV_FILE.tmp"
    cat >"$tmp" <<EOF
# Written by scripts/services.sh up: the services it started. Use: source .services/env
export TUSK_TEST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/
export TUSK_TEST_REDIS_CLUSTER_URLS=redis://127.0.0.1:$REDIS_CLUSTER_PORT/,redis://127.0.0.1:$((REDIS_CLUSTER_PORT + 1))/,redis://127.0.0.1:$((REDIS_CLUSTER_PORT + 2))/
export TUSK_TEST_ETCD_ENDPOINTS=http://127.0.0.1:$ETCD_PORT
export TUSK_TEST_S3_ENDPOINT=http://127.0.0.1:$S3_PORT
export TUSK_TEST_SERVICES=1
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
EOF
    mv "$tmp" "$ENV_FILE"
}

cmd_up() {
    local t0 t pid name
    t0="$(now)"
    mkdir -p "$RUN_DIR"

    t="$(now)"
    install_missing
    log "install check: $(elapsed "$t") s"

    # A cluster is formed from three fresh nodes: if one is gone, start all three again.
    for name in "${CLUSTER_NODES[@]}"; do
        [[ -n "$(service_pid "$name")" ]] && continue
        for name in "${CLUSTER_NODES[@]}"; do
            pid="$(service_pid "$name")"
            [[ -n "$pid" ]] && stop_pid "$name" "$pid"
            rm -f "$(pid_file "$name")" "$(port_file "$name")"
        done
        break
    done

    for name in "${SERVICES[@]}"; do
        pid="$(service_pid "$name")"
        if [[ -n "$pid" ]]; then
            if [[ "$(service_port "$name")" != "$(wanted_port "$name")" ]]; then
                die "$name is already running (pid $pid) on port $(service_port "$name")," \
                    "not $(wanted_port "$name"): run 'scripts/services.sh down' first"
            fi
            wait_ready "$name" "$pid"
            log "$name: already running (pid $pid) on $(service_addr "$name")"
            continue
        fi
        t="$(now)"
        start_service "$name"
        log "$name: ready in $(elapsed "$t") s (pid $(<"$(pid_file "$name")")) on $(service_addr "$name")"
    done

    t="$(now)"
    form_cluster
    log "redis cluster: ok in $(elapsed "$t") s on 127.0.0.1:$REDIS_CLUSTER_PORT-$((REDIS_CLUSTER_PORT + 2))"

    write_env
    log "up in $(elapsed "$t0") s; environment for tests: source $ENV_FILE"
}

cmd_down() {
    local i name pid file
    for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
        name="${SERVICES[i]}"
        file="$(pid_file "$name")"
        pid="$(service_pid "$name")"
        if [[ -n "$pid" ]]; then
            stop_pid "$name" "$pid"
            log "$name: stopped (pid $pid)"
        fi
        rm -f "$file" "$(port_file "$name")"
    done
    rm -f "$ENV_FILE"
}

cmd_status() {
    local name pid all_up=1
    for name in "${SERVICES[@]}"; do
        pid="$(service_pid "$name")"
        if [[ -n "$pid" ]]; then
            printf '%-6s up    pid %-8s %s\n' "$name" "$pid" "$(service_addr "$name")"
        else
            printf '%-6s down  %-12s %s\n' "$name" "" "$(service_addr "$name")"
            all_up=0
        fi
    done
    ((all_up)) || return 3
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
