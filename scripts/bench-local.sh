#!/usr/bin/env bash
# Local benchmark (not a test): how fast does tusk take one large PATCH compared with a plain
# `dd ... conv=fsync` of the same file on the same filesystem, and how much memory does it use?
#
# Usage: scripts/bench-local.sh [SIZE_MIB]      (default 1024)
#   TUSK_BIN=path/to/tusk   binary to run (default target/release/tusk; build it first with
#                           `cargo build --release`; this script never builds)
#   PEERS=1                 also run tusk's step against tus-node-server (@tus/server with
#                           @tus/file-store, the versions pinned in scripts/lib/peers/, installed
#                           once by npm into target/bench-peers or TUSK_PEERS_DIR), its data dir
#                           on the same filesystem; skipped with a message if npm cannot install
#                           it. The peer does not fsync before it answers, so its runs are timed
#                           to the 204 and, separately, to the end of a `sync` right after it.
#
#   RUNS=N                  timed rounds (default 5)
#
# Each round times one dd and then one tusk upload, after one untimed warm-up round (the first
# write of fresh blocks on this kind of disk is several times slower). This machine's disk is
# bimodal (the same dd takes 0.6 s or 1.3-3 s from one run to the next), so the two sides are
# measured side by side, over several rounds, rather than one block after the other. The order
# is the same in every round, so each side always follows the other: with the order alternated,
# the dd that came after two tusk uploads in a row took 1.5-2.1 s every time and the others
# 0.6-0.7 s, a pattern of this disk that made the ratio depend on the order. Every
# round, its tusk/dd time ratio, the medians, each side's best (the disk in its fast mode) and
# the median of the rounds' ratios are printed. One tusk server serves every upload; its peak
# RSS (VmHWM) is the maximum over all of them. Before each timed run the script calls `sync`
# (untimed) so that no run pays for an earlier one's dirty pages; the source file is read from
# the page cache in both cases. Works under target/bench-tmp (same filesystem as the repo),
# removed on exit. Talks to 127.0.0.1 only.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SIZE_MIB="${1:-1024}"
RUNS="${RUNS:-5}"
TUSK_BIN="${TUSK_BIN:-$ROOT/target/release/tusk}"
PEERS="${PEERS:-0}"
STOP_TIMEOUT=15 # seconds the peer gets to exit after SIGTERM (process.sh)

log() { printf 'bench-local: %s\n' "$*"; }
die() { printf 'bench-local: %s\n' "$*" >&2; exit 1; }
# shellcheck source=scripts/lib/process.sh
source "$ROOT/scripts/lib/process.sh" # stop_pid, pid_alive (its `elapsed` is redefined below)
# shellcheck source=scripts/lib/peers.sh
source "$ROOT/scripts/lib/peers.sh"

[[ "$PEERS" == 0 || "$PEERS" == 1 ]] || die "PEERS must be 0 or 1, got '$PEERS'"

[[ "$SIZE_MIB" =~ ^[1-9][0-9]*$ ]] || die "SIZE_MIB must be a positive integer, got '$SIZE_MIB'"
if [[ ! -x "$TUSK_BIN" ]]; then
    printf 'bench-local: %s not found or not executable.\n' "$TUSK_BIN" >&2
    printf 'Build it first:  cargo build --release\n' >&2
    printf '(or point TUSK_BIN at another tusk binary)\n' >&2
    exit 1
fi
for tool in curl dd cmp awk sort; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' is required"
done

SIZE_BYTES=$((SIZE_MIB * 1024 * 1024))

if [[ "$PEERS" == 1 ]] && ! peers_install; then
    PEERS=0
fi

mkdir -p "$ROOT/target/bench-tmp"
WORK="$(mktemp -d "$ROOT/target/bench-tmp/run.XXXXXX")"
SERVER_PID=""
PEER_PID=""

cleanup() {
    if [[ -n "$PEER_PID" ]] && pid_alive "$PEER_PID"; then
        stop_pid "tus-node-server" "$PEER_PID" || true
        wait "$PEER_PID" 2>/dev/null || true
    fi
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
    rmdir "$ROOT/target/bench-tmp" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
mibps() { awk -v s="$1" -v m="$SIZE_MIB" 'BEGIN { if (s > 0) printf "%.1f", m / s; else print "inf" }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
max_of() { printf '%s\n' "$@" | sort -g | tail -n 1; }
min_of() { printf '%s\n' "$@" | sort -g | head -n 1; }
# A field (in kB) of /proc/PID/status, printed in MiB.
proc_mib() {
    awk -v f="$2:" '$1 == f { printf "%.1f", $2 / 1024; found = 1 } END { if (!found) exit 1 }' \
        "/proc/$1/status"
}
# CPU seconds (user + system) PID has used so far.
cpu_s() {
    local stat
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || { echo 0; return 0; }
    stat="${stat##*) }"
    awk -v t="$(getconf CLK_TCK)" '{ printf "%.2f", ($12 + $13) / t }' <<<"$stat"
}
# The value of header $2 in the header dump file $1 (case-insensitive, CR stripped).
header() { awk -v h="$2" '{ sub(/\r$/, "") } tolower($1) == tolower(h ":") { print $2 }' "$1" | tail -n 1; }

# A free TCP port on 127.0.0.1: a random high port that nothing answers on (bounded tries).
free_port() {
    local p
    for _ in $(seq 1 100); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    die "no free port found on 127.0.0.1"
}

echo "bench-local: $SIZE_MIB MiB, $RUNS rounds, binary $TUSK_BIN"
echo "bench-local: work dir $WORK"

# --- source data ---------------------------------------------------------------------------
SRC="$WORK/source.bin"
echo "bench-local: generating $SIZE_MIB MiB of random data..."
dd if=/dev/urandom of="$SRC" bs=1M count="$SIZE_MIB" status=none
[[ "$(stat -c %s "$SRC")" == "$SIZE_BYTES" ]] || die "source file has the wrong size"

# --- tusk ----------------------------------------------------------------------------------
PORT="$(free_port)"
ENDPOINT="http://127.0.0.1:$PORT/files/"
mkdir -p "$WORK/tusk-data"
"$TUSK_BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$WORK/tusk-data" \
    --base-path /files/ --max-size "$SIZE_BYTES" >"$WORK/tusk.log" 2>&1 &
SERVER_PID=$!

ready=""
for _ in $(seq 1 600); do # 600 x 50 ms = 30 s
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        cat "$WORK/tusk.log" >&2
        die "tusk exited during start-up"
    fi
    code="$(curl -s -o /dev/null -w '%{http_code}' -X OPTIONS "$ENDPOINT" || true)"
    if [[ "$code" == "204" ]]; then
        ready=1
        break
    fi
    sleep 0.05
done
[[ -n "$ready" ]] || { cat "$WORK/tusk.log" >&2; die "tusk did not answer OPTIONS with 204 within 30 s"; }

IDLE_RSS="$(proc_mib "$SERVER_PID" VmRSS)"
echo "bench-local: tusk ready on 127.0.0.1:$PORT, idle RSS $IDLE_RSS MiB"

# One dd run with fsync, to a file removed first; prints its time.
dd_run() {
    local t0 t1
    rm -f "$WORK/dd.out"
    sync # start each run with no dirty pages from earlier steps (outside the timing)
    t0="$(now)"
    dd if="$SRC" of="$WORK/dd.out" bs=1M conv=fsync status=none
    t1="$(now)"
    rm -f "$WORK/dd.out"
    elapsed "$t0" "$t1"
}

# One tusk upload: POST, the whole file in one streamed PATCH (timed), the stored file compared
# with the source, DELETE. Prints its time and the upload's ID.
tusk_run() {
    local code url offset id t0 t1
    code="$(curl -sS -o /dev/null -D "$WORK/post.h" -w '%{http_code}' -X POST \
        -H 'Tus-Resumable: 1.0.0' -H "Upload-Length: $SIZE_BYTES" "$ENDPOINT")"
    [[ "$code" == "201" ]] || die "POST $ENDPOINT: expected 201, got $code"
    url="$(header "$WORK/post.h" Location)"
    [[ -n "$url" ]] || die "POST $ENDPOINT: no Location header"
    case "$url" in
        http://127.0.0.1:"$PORT"/*) ;;
        *) die "unexpected Location '$url'" ;;
    esac
    id="${url##*/}"

    # -T reads the file as it sends.
    sync
    t0="$(now)"
    code="$(curl -sS -o /dev/null -D "$WORK/patch.h" -w '%{http_code}' -X PATCH \
        -H 'Tus-Resumable: 1.0.0' -H 'Content-Type: application/offset+octet-stream' \
        -H 'Upload-Offset: 0' -T "$SRC" "$url")"
    t1="$(now)"
    [[ "$code" == "204" ]] || die "PATCH $url: expected 204, got $code"
    offset="$(header "$WORK/patch.h" Upload-Offset)"
    [[ "$offset" == "$SIZE_BYTES" ]] || die "PATCH $url: Upload-Offset '$offset', expected $SIZE_BYTES"
    cmp -s "$SRC" "$WORK/tusk-data/$id" || die "stored file $WORK/tusk-data/$id differs from the source"

    # Free the disk space again (termination extension).
    code="$(curl -sS -o /dev/null -w '%{http_code}' -X DELETE -H 'Tus-Resumable: 1.0.0' "$url")"
    [[ "$code" == "204" ]] || echo "bench-local: warning: DELETE $url answered $code" >&2
    echo "$(elapsed "$t0" "$t1") $id"
}

dd_times=()
tusk_times=()
TUSK_CPU0="$(cpu_s "$SERVER_PID")"
for run in $(seq 0 "$RUNS"); do # run 0 is an untimed warm-up
    dd_s="$(dd_run)"
    read -r tusk_s id < <(tusk_run)
    [[ -n "${tusk_s:-}" ]] || die "round $run: the tusk upload failed (see above)"
    if ((run == 0)); then
        echo "bench-local: warm-up: dd $dd_s s, tusk $tusk_s s (not counted; upload $id verified)"
        continue
    fi
    dd_times+=("$dd_s")
    tusk_times+=("$tusk_s")
    echo "bench-local: round $run: dd $dd_s s, tusk $tusk_s s (upload $id verified)"
done

PEAK_RSS="$(proc_mib "$SERVER_PID" VmHWM)"
TUSK_CPU="$(awk -v a="$(cpu_s "$SERVER_PID")" -v b="$TUSK_CPU0" 'BEGIN { printf "%.2f", a - b }')"

kill -TERM "$SERVER_PID"
stopped=""
for _ in $(seq 1 300); do # 300 x 50 ms = 15 s
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        stopped=1
        break
    fi
    sleep 0.05
done
if [[ -n "$stopped" ]]; then
    status=0
    wait "$SERVER_PID" || status=$?
    [[ "$status" == 0 ]] || echo "bench-local: warning: tusk exited with status $status after SIGTERM" >&2
else
    echo "bench-local: warning: tusk still running 15 s after SIGTERM; killing it" >&2
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
fi
SERVER_PID=""

# --- the peer: tus-node-server with @tus/file-store (PEERS=1) --------------------------------
# The same POST + one `curl -T` PATCH + cmp + DELETE, 3 runs after a warm-up. @tus/file-store
# answers the PATCH without an fsync, so each run is timed to the 204 and, separately, to the end
# of a `sync` started right after it (the bytes on disk, as tusk's 204 means). Any failure skips
# the peer with a message; it never fails the benchmark.
peer_times=()
peer_sync_times=()
PEER_IDLE_RSS="" PEER_PEAK_RSS="" PEER_CPU=""
peer_local() {
    local out="$WORK/peer.out" line url="" limit code loc purl pid offset t0 t1 t2 run cpu0
    mkdir -p "$WORK/peer-data"
    node "$PEER_SERVER" --modules "$PEERS_DIR" --store file --dir "$WORK/peer-data" \
        </dev/null >"$out" 2>"$WORK/peer.err" &
    PEER_PID=$!
    limit="$(deadline 30)"
    while :; do
        line="$(head -n 1 "$out")"
        if [[ "$line" =~ ^tus-node-server\ listening\ on\ (http://127\.0\.0\.1:([0-9]+)/files/)$ ]]; then
            url="${BASH_REMATCH[1]}"
            code="$(curl -s -o /dev/null --max-time 2 -w '%{http_code}' -X OPTIONS "$url" || true)"
            [[ "$code" == 204 ]] && break
        fi
        if ! pid_alive "$PEER_PID" || past "$limit"; then
            tail -n 20 "$WORK/peer.err" >&2 || true
            log "peer: tus-node-server did not start within 30 s"
            return 1
        fi
        sleep 0.05
    done
    pid="$PEER_PID"
    PEER_IDLE_RSS="$(proc_mib "$pid" VmRSS)"
    cpu0="$(cpu_s "$pid")"
    log "peer: tus-node-server (@tus/file-store, $(peers_versions)) ready on $url," \
        "pid $pid, idle RSS $PEER_IDLE_RSS MiB"
    for run in $(seq 0 "$RUNS"); do # run 0 is an untimed warm-up
        code="$(curl -sS -o /dev/null -D "$WORK/ppost.h" -w '%{http_code}' -X POST \
            -H 'Tus-Resumable: 1.0.0' -H "Upload-Length: $SIZE_BYTES" "$url")" || code=""
        [[ "$code" == 201 ]] || { log "peer: POST $url: expected 201, got '$code'"; return 1; }
        loc="$(header "$WORK/ppost.h" Location)"
        case "$loc" in
            http://127.0.0.1:*/files/*) purl="$loc" ;;
            /files/*) purl="${url%/files/}$loc" ;; # a relative Location
            *) log "peer: unexpected Location '$loc'"; return 1 ;;
        esac
        sync
        t0="$(now)"
        code="$(curl -sS -o /dev/null -D "$WORK/ppatch.h" -w '%{http_code}' -X PATCH \
            -H 'Tus-Resumable: 1.0.0' -H 'Content-Type: application/offset+octet-stream' \
            -H 'Upload-Offset: 0' -T "$SRC" "$purl")" || code=""
        t1="$(now)"
        sync
        t2="$(now)"
        [[ "$code" == 204 ]] || { log "peer: PATCH $purl: expected 204, got '$code'"; return 1; }
        offset="$(header "$WORK/ppatch.h" Upload-Offset)"
        [[ "$offset" == "$SIZE_BYTES" ]] || { log "peer: PATCH: Upload-Offset '$offset'"; return 1; }
        cmp -s "$SRC" "$WORK/peer-data/${purl##*/}" ||
            { log "peer: stored file ${purl##*/} differs from the source"; return 1; }
        if ((run == 0)); then
            log "peer warm-up: $(elapsed "$t0" "$t1") s, with sync $(elapsed "$t0" "$t2") s (not counted)"
        else
            peer_times+=("$(elapsed "$t0" "$t1")")
            peer_sync_times+=("$(elapsed "$t0" "$t2")")
            log "peer run $run: ${peer_times[-1]} s, with sync ${peer_sync_times[-1]} s (upload verified)"
        fi
        code="$(curl -sS -o /dev/null -w '%{http_code}' -X DELETE -H 'Tus-Resumable: 1.0.0' "$purl")" || true
        [[ "$code" == 204 ]] || log "peer: warning: DELETE $purl answered '$code'"
    done
    PEER_PEAK_RSS="$(proc_mib "$pid" VmHWM)"
    PEER_CPU="$(awk -v a="$(cpu_s "$pid")" -v b="$cpu0" 'BEGIN { printf "%.2f", a - b }')"
    stop_pid "tus-node-server" "$pid"
    wait "$pid" 2>/dev/null || true
    PEER_PID=""
}
if [[ "$PEERS" == 1 ]]; then
    if ! peer_local; then
        log "peer: skipped (see above)"
        peer_times=() peer_sync_times=()
    fi
    if [[ -n "$PEER_PID" ]]; then
        stop_pid "tus-node-server" "$PEER_PID" || true
        wait "$PEER_PID" 2>/dev/null || true
        PEER_PID=""
    fi
fi

# --- report --------------------------------------------------------------------------------
DD_MED="$(median "${dd_times[@]}")"
TUSK_MED="$(median "${tusk_times[@]}")"

echo
printf 'Results for %s MiB (%s rounds; tusk %s)\n\n' "$SIZE_MIB" "$RUNS" "$TUSK_BIN"
printf '%-8s %12s %12s %12s %12s %14s\n' round 'dd s' 'dd MiB/s' 'tusk s' 'tusk MiB/s' 'tusk/dd time'
for i in $(seq 0 $((RUNS - 1))); do
    printf '%-8s %12s %12s %12s %12s %14s\n' "$((i + 1))" \
        "${dd_times[$i]}" "$(mibps "${dd_times[$i]}")" \
        "${tusk_times[$i]}" "$(mibps "${tusk_times[$i]}")" \
        "$(awk -v a="${tusk_times[$i]}" -v b="${dd_times[$i]}" 'BEGIN { printf "%.2f", a / b }')"
done
printf '%-8s %12s %12s %12s %12s %14s\n' median \
    "$DD_MED" "$(mibps "$DD_MED")" "$TUSK_MED" "$(mibps "$TUSK_MED")" \
    "$(awk -v a="$TUSK_MED" -v b="$DD_MED" 'BEGIN { printf "%.2f", a / b }')"
DD_MIN="$(min_of "${dd_times[@]}")"
TUSK_MIN="$(min_of "${tusk_times[@]}")"
printf '%-8s %12s %12s %12s %12s %14s\n' best \
    "$DD_MIN" "$(mibps "$DD_MIN")" "$TUSK_MIN" "$(mibps "$TUSK_MIN")" \
    "$(awk -v a="$TUSK_MIN" -v b="$DD_MIN" 'BEGIN { printf "%.2f", a / b }')"
round_ratios=()
for i in $(seq 0 $((RUNS - 1))); do
    round_ratios+=("$(awk -v a="${tusk_times[$i]}" -v b="${dd_times[$i]}" 'BEGIN { printf "%.4f", a / b }')")
done
RATIO_MED="$(median "${round_ratios[@]}")"
printf '%-40s %10s\n' "median of the rounds' tusk/dd time" \
    "$(awk -v r="$RATIO_MED" 'BEGIN { printf "%.2f", r }')"
printf '%-40s %10s\n' "tusk's throughput / dd's (from it)" \
    "$(awk -v r="$RATIO_MED" 'BEGIN { printf "%.2fx", 1 / r }')"
echo
printf '%-28s %10s MiB\n' 'tusk idle RSS (VmRSS)' "$IDLE_RSS"
printf '%-28s %10s MiB\n' 'tusk peak RSS (VmHWM)' "$PEAK_RSS"
printf '%-28s %10s MiB\n' 'peak - idle' "$(awk -v a="$PEAK_RSS" -v b="$IDLE_RSS" 'BEGIN { printf "%.1f", a - b }')"
printf '%-28s %10s s (%s uploads, warm-up included)\n' 'tusk CPU' "$TUSK_CPU" "$((RUNS + 1))"

if ((${#peer_times[@]} == RUNS)); then
    PEER_MED="$(median "${peer_times[@]}")"
    PEER_SYNC_MED="$(median "${peer_sync_times[@]}")"
    ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
    echo
    printf 'Peer: tus-node-server with @tus/file-store (%s), same file, same filesystem\n\n' \
        "$(peers_versions)"
    printf '%-8s %12s %12s %14s %14s %12s %14s\n' run 'tusk s' 'peer s' 'peer MiB/s' \
        'peer+sync s' 'peer/tusk' 'peer+sync/tusk'
    for i in $(seq 0 $((RUNS - 1))); do
        printf '%-8s %12s %12s %14s %14s %12s %14s\n' "$((i + 1))" "${tusk_times[$i]}" \
            "${peer_times[$i]}" "$(mibps "${peer_times[$i]}")" "${peer_sync_times[$i]}" \
            "$(ratio "${peer_times[$i]}" "${tusk_times[$i]}")" \
            "$(ratio "${peer_sync_times[$i]}" "${tusk_times[$i]}")"
    done
    printf '%-8s %12s %12s %14s %14s %12s %14s\n' median "$TUSK_MED" "$PEER_MED" \
        "$(mibps "$PEER_MED")" "$PEER_SYNC_MED" "$(ratio "$PEER_MED" "$TUSK_MED")" \
        "$(ratio "$PEER_SYNC_MED" "$TUSK_MED")"
    echo
    echo '(tusk fsyncs before its 204; the peer does not: "peer+sync" adds a sync right after its 204)'
    printf '%-28s %10s MiB\n' 'peer idle RSS (VmRSS)' "$PEER_IDLE_RSS"
    printf '%-28s %10s MiB\n' 'peer peak RSS (VmHWM)' "$PEER_PEAK_RSS"
    printf '%-28s %10s MiB\n' 'peer peak - idle' \
        "$(awk -v a="$PEER_PEAK_RSS" -v b="$PEER_IDLE_RSS" 'BEGIN { printf "%.1f", a - b }')"
    printf '%-28s %10s s (%s uploads, warm-up included; tusk %s s)\n' 'peer CPU' "$PEER_CPU" \
        "$((RUNS + 1))" "$TUSK_CPU"
fi
