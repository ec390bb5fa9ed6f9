#!/usr/bin/env bash
# TLS benchmark (not a test): one large upload (one PATCH, curl) over plain HTTP/1.1, HTTPS
# HTTP/1.1 and HTTPS HTTP/2, against two local-mode nodes of the same binary (one plain, one
# with TLS), in the same run, with the node's CPU seconds for each. Reports each mode's median
# and the ratios HTTPS/1.1 : plain and HTTP/2 : HTTPS/1.1 (target: HTTP/2 within 10 %).
#
# Usage: scripts/bench-tls.sh [SIZE_MIB]      (default 1024)
#   TUSK_BIN=path/to/tusk   binary (default target/release/tusk; this script never builds)
#   RUNS=N                  timed rounds (default 3), after one untimed warm-up of each mode;
#                           the modes alternate within a round
#   RATE=BYTES_PER_S        curl's --limit-rate (default none: loopback speed)
#   CLIENT=curl|node        who sends the PATCH (default curl). curl 7.88's HTTP/2 uploads cost
#                           the client several times the CPU of HTTP/1.1; node (Node's https
#                           and http2 modules, scripts/lib/patch-upload.mjs) does not
#   DATA_DIR=DIR            where the nodes store uploads (default under target/bench-tmp; a
#                           tmpfs such as /dev/shm takes the disk out of the comparison)
#
# The certificate is made for the run with `openssl`. Uploads land in target/bench-tmp (the
# repo's filesystem), removed on exit together with the nodes. 127.0.0.1 only.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/process.sh
source "$ROOT/scripts/lib/process.sh"
SIZE_MIB="${1:-1024}"
RUNS="${RUNS:-3}"
RATE="${RATE:-}"
CLIENT="${CLIENT:-curl}"
DATA_DIR="${DATA_DIR:-}"
TUSK_BIN="${TUSK_BIN:-$ROOT/target/release/tusk}"
READY_TIMEOUT=30
STOP_TIMEOUT=15

die() { printf 'bench-tls: %s\n' "$*" >&2; exit 1; }
log() { printf '== %s\n' "$*" >&2; }

[[ "$SIZE_MIB" =~ ^[1-9][0-9]*$ ]] || die "SIZE_MIB must be a positive integer, got '$SIZE_MIB'"
[[ "$RUNS" =~ ^[1-9][0-9]?$ ]] || die "RUNS must be 1 to 99, got '$RUNS'"
[[ -x "$TUSK_BIN" ]] || die "$TUSK_BIN not found: cargo build --release -p tusk-server first"
[[ "$CLIENT" == curl || "$CLIENT" == node ]] || die "CLIENT must be curl or node"
for tool in curl openssl awk sort cmp "$CLIENT"; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' is required"
done
curl -V | grep -q HTTP2 || die "this curl has no HTTP/2"

mkdir -p "$ROOT/target/bench-tmp"
WORK="$(mktemp -d "$ROOT/target/bench-tmp/tls.XXXXXX")"
STORE="$WORK"
if [[ -n "$DATA_DIR" ]]; then
    mkdir -p "$DATA_DIR"
    STORE="$(mktemp -d "$DATA_DIR/tusk-bench-tls.XXXXXX")"
fi
PLAIN_PID="" TLS_PID=""
cleanup() {
    for pid in "$PLAIN_PID" "$TLS_PID"; do
        [[ -z "$pid" ]] || stop_pid "tusk node" "$pid" || true
    done
    rm -rf "$WORK"
    [[ "$STORE" == "$WORK" ]] || rm -rf "$STORE"
    rmdir "$ROOT/target/bench-tmp" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -keyout "$WORK/ca.key" -out "$WORK/ca.pem" -subj "/CN=bench-ca" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/tls.key" \
    -out "$WORK/tls.csr" -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1" 2>/dev/null
openssl x509 -req -in "$WORK/tls.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" -days 2 \
    -set_serial 1 -copy_extensions copy -out "$WORK/tls.pem" 2>/dev/null

# start NAME ARGS...: a node on a free port; sets NODE_PID and NODE_URL.
start() {
    local name="$1" limit line
    shift
    "$TUSK_BIN" serve --listen 127.0.0.1:0 --data-dir "$STORE/$name-data" "$@" \
        </dev/null >"$WORK/$name.out" 2>"$WORK/$name.log" &
    NODE_PID=$!
    limit="$(deadline "$READY_TIMEOUT")"
    while :; do
        line="$(head -n 1 "$WORK/$name.out" 2>/dev/null || true)"
        if [[ "$line" =~ ^tusk\ listening\ on\ (https?://127\.0\.0\.1:[0-9]+/files/)$ ]]; then
            NODE_URL="${BASH_REMATCH[1]}"
            break
        fi
        pid_alive "$NODE_PID" && ! past "$limit" || die "node $name did not start"
        sleep 0.05
    done
}
start plain
PLAIN_PID="$NODE_PID" PLAIN_URL="$NODE_URL"
start tls --tls-cert-file "$WORK/tls.pem" --tls-key-file "$WORK/tls.key"
TLS_PID="$NODE_PID" TLS_URL="$NODE_URL"

SIZE=$((SIZE_MIB * 1024 * 1024))
head -c "$SIZE" /dev/urandom >"$WORK/source"
log "$SIZE_MIB MiB source written; plain node $PLAIN_URL, TLS node $TLS_URL"

# CPU seconds (user + system) a process has used so far.
cpu_of() {
    awk -v tck="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / tck }' "/proc/$1/stat"
}

# upload MODE: one POST and one PATCH of the source; prints "seconds cpu_seconds".
upload() {
    local mode="$1" url pid version curl_opts=(-sS --max-time 3600)
    case "$mode" in
        plain) url="$PLAIN_URL" pid="$PLAIN_PID" curl_opts+=(--http1.1) version=1.1 ;;
        https1) url="$TLS_URL" pid="$TLS_PID" curl_opts+=(--cacert "$WORK/ca.pem" --http1.1) version=1.1 ;;
        https2) url="$TLS_URL" pid="$TLS_PID" curl_opts+=(--cacert "$WORK/ca.pem" --http2) version=2 ;;
    esac
    [[ -z "$RATE" ]] || curl_opts+=(--limit-rate "$RATE")
    local location cpu0 t0 out
    location="$(curl "${curl_opts[@]}" -X POST -H 'Tus-Resumable: 1.0.0' \
        -H "Upload-Length: $SIZE" -o /dev/null -w '%header{location}' "$url")"
    [[ -n "$location" ]] || die "$mode: POST gave no Location"
    cpu0="$(cpu_of "$pid")" t0="$(now)"
    local client_seconds=""
    if [[ "$CLIENT" == node && "$mode" != plain ]]; then
        local proto=h1 reply
        [[ "$mode" == https1 ]] || proto=h2
        reply="$(node "$ROOT/scripts/lib/patch-upload.mjs" "$proto" "$location" "$WORK/source" \
            "$WORK/ca.pem")"
        # Node's own start-up is not the upload's: time the PATCH as the client saw it.
        out="$version ${reply%% *}" client_seconds="${reply##* }"
    else
        out="$(curl "${curl_opts[@]}" -X PATCH -H 'Tus-Resumable: 1.0.0' \
            -H 'Content-Type: application/offset+octet-stream' -H 'Upload-Offset: 0' \
            -T "$WORK/source" -o /dev/null -w '%{http_version} %{http_code}' "$location")"
    fi
    local seconds cpu
    seconds="${client_seconds:-$(elapsed "$t0")}" cpu="$(awk -v a="$cpu0" -v b="$(cpu_of "$pid")" 'BEGIN { printf "%.2f", b - a }')"
    [[ "$out" == "$version 204" ]] || die "$mode: PATCH answered '$out', expected '$version 204'"
    # The stored file is the source, byte for byte (then removed, untimed).
    local stored="$STORE/${mode/https*/tls}-data/${location##*/}"
    cmp -s "$WORK/source" "$stored" || die "$mode: stored bytes differ"
    curl "${curl_opts[@]}" -X DELETE -H 'Tus-Resumable: 1.0.0' -o /dev/null "$location"
    printf '%s %s\n' "$seconds" "$cpu"
}

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

MODES=(plain https1 https2)
for mode in "${MODES[@]}"; do upload "$mode" >/dev/null; done
log "warm-up done; $RUNS timed round(s)"
declare -A TIMES CPUS
for ((round = 1; round <= RUNS; round++)); do
    # Rotate the order each round, so no mode always goes first.
    for ((i = 0; i < ${#MODES[@]}; i++)); do
        mode="${MODES[$(((i + round) % ${#MODES[@]}))]}"
        sync
        result="$(upload "$mode")"
        read -r seconds cpu <<<"$result"
        printf '%-7s round %d: %7.3f s (%7.1f MiB/s), node CPU %6.2f s\n' "$mode" "$round" \
            "$seconds" "$(awk -v s="$seconds" -v m="$SIZE_MIB" 'BEGIN { print m / s }')" "$cpu"
        TIMES[$mode]+="$seconds " CPUS[$mode]+="$cpu "
    done
done

echo
printf '%-28s %10s %12s %14s\n' "mode (median of $RUNS)" "seconds" "MiB/s" "node CPU s"
declare -A MEDIAN
for mode in "${MODES[@]}"; do
    # shellcheck disable=SC2086
    MEDIAN[$mode]="$(median ${TIMES[$mode]})"
    # shellcheck disable=SC2086
    printf '%-28s %10.3f %12.1f %14.2f\n' "$mode" "${MEDIAN[$mode]}" \
        "$(awk -v s="${MEDIAN[$mode]}" -v m="$SIZE_MIB" 'BEGIN { print m / s }')" "$(median ${CPUS[$mode]})"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo
echo "HTTPS HTTP/1.1 time / plain HTTP/1.1:  $(ratio "${MEDIAN[https1]}" "${MEDIAN[plain]}")"
echo "HTTPS HTTP/2 time / HTTPS HTTP/1.1:    $(ratio "${MEDIAN[https2]}" "${MEDIAN[https1]}")  (target: at most 1.10)"
