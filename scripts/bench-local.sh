#!/usr/bin/env bash
# Local benchmark (not a test): how fast does tusk take one large PATCH compared with a plain
# `dd ... conv=fsync` of the same file on the same filesystem, and how much memory does it use?
#
# Usage: scripts/bench-local.sh [SIZE_MIB]      (default 1024)
#   TUSK_BIN=path/to/tusk   binary to run (default target/release/tusk; build it first with
#                           `cargo build --release`; this script never builds)
#
# Each measurement runs 3 times after one untimed warm-up run (the first write of fresh blocks on
# this kind of disk is several times slower); every run and the median are printed. One tusk server serves the
# 3 uploads; its peak RSS (VmHWM) is the maximum over all of them. Before each timed run the
# script calls `sync` (untimed) so that no run pays for an earlier one's dirty pages; the source
# file is read from the page cache in both cases. Works under target/bench-tmp
# (same filesystem as the repo), removed on exit. Talks to 127.0.0.1 only.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SIZE_MIB="${1:-1024}"
RUNS=3
TUSK_BIN="${TUSK_BIN:-$ROOT/target/release/tusk}"

die() { printf 'bench-local: %s\n' "$*" >&2; exit 1; }

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

mkdir -p "$ROOT/target/bench-tmp"
WORK="$(mktemp -d "$ROOT/target/bench-tmp/run.XXXXXX")"
SERVER_PID=""

cleanup() {
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
# A field (in kB) of /proc/PID/status, printed in MiB.
proc_mib() {
    awk -v f="$2:" '$1 == f { printf "%.1f", $2 / 1024; found = 1 } END { if (!found) exit 1 }' \
        "/proc/$1/status"
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

echo "bench-local: $SIZE_MIB MiB, $RUNS runs each, binary $TUSK_BIN"
echo "bench-local: work dir $WORK"

# --- source data ---------------------------------------------------------------------------
SRC="$WORK/source.bin"
echo "bench-local: generating $SIZE_MIB MiB of random data..."
dd if=/dev/urandom of="$SRC" bs=1M count="$SIZE_MIB" status=none
[[ "$(stat -c %s "$SRC")" == "$SIZE_BYTES" ]] || die "source file has the wrong size"

# --- baseline: dd with fsync ---------------------------------------------------------------
dd_times=()
for run in $(seq 0 "$RUNS"); do # run 0 is an untimed warm-up
    rm -f "$WORK/dd.out"
    sync # start each run with no dirty pages from earlier steps (outside the timing)
    t0="$(now)"
    dd if="$SRC" of="$WORK/dd.out" bs=1M conv=fsync status=none
    t1="$(now)"
    if ((run == 0)); then
        echo "bench-local: dd warm-up: $(elapsed "$t0" "$t1") s (not counted)"
        continue
    fi
    dd_times+=("$(elapsed "$t0" "$t1")")
    echo "bench-local: dd run $run: ${dd_times[-1]} s"
done
rm -f "$WORK/dd.out"

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

tusk_times=()
for run in $(seq 0 "$RUNS"); do # run 0 is an untimed warm-up
    # Create the upload.
    code="$(curl -sS -o /dev/null -D "$WORK/post.h" -w '%{http_code}' -X POST \
        -H 'Tus-Resumable: 1.0.0' -H "Upload-Length: $SIZE_BYTES" "$ENDPOINT")"
    [[ "$code" == "201" ]] || die "POST $ENDPOINT: expected 201, got $code"
    URL="$(header "$WORK/post.h" Location)"
    [[ -n "$URL" ]] || die "POST $ENDPOINT: no Location header"
    case "$URL" in
        http://127.0.0.1:"$PORT"/*) ;;
        *) die "unexpected Location '$URL'" ;;
    esac
    ID="${URL##*/}"

    # Upload everything in one streamed PATCH (-T reads the file as it sends).
    sync
    t0="$(now)"
    code="$(curl -sS -o /dev/null -D "$WORK/patch.h" -w '%{http_code}' -X PATCH \
        -H 'Tus-Resumable: 1.0.0' -H 'Content-Type: application/offset+octet-stream' \
        -H 'Upload-Offset: 0' -T "$SRC" "$URL")"
    t1="$(now)"
    [[ "$code" == "204" ]] || die "PATCH $URL: expected 204, got $code"
    offset="$(header "$WORK/patch.h" Upload-Offset)"
    [[ "$offset" == "$SIZE_BYTES" ]] || die "PATCH $URL: Upload-Offset '$offset', expected $SIZE_BYTES"
    cmp -s "$SRC" "$WORK/tusk-data/$ID" || die "stored file $WORK/tusk-data/$ID differs from the source"
    if ((run == 0)); then
        echo "bench-local: tusk warm-up: $(elapsed "$t0" "$t1") s (not counted; upload $ID verified)"
    else
        tusk_times+=("$(elapsed "$t0" "$t1")")
        echo "bench-local: tusk run $run: ${tusk_times[-1]} s (upload $ID verified)"
    fi

    # Free the disk space again (termination extension).
    code="$(curl -sS -o /dev/null -w '%{http_code}' -X DELETE -H 'Tus-Resumable: 1.0.0' "$URL")"
    [[ "$code" == "204" ]] || echo "bench-local: warning: DELETE $URL answered $code" >&2
done

PEAK_RSS="$(proc_mib "$SERVER_PID" VmHWM)"

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

# --- report --------------------------------------------------------------------------------
DD_MED="$(median "${dd_times[@]}")"
TUSK_MED="$(median "${tusk_times[@]}")"

echo
printf 'Results for %s MiB (%s runs; tusk %s)\n\n' "$SIZE_MIB" "$RUNS" "$TUSK_BIN"
printf '%-8s %12s %12s %12s %12s %14s\n' run 'dd s' 'dd MiB/s' 'tusk s' 'tusk MiB/s' 'tusk/dd time'
for i in $(seq 0 $((RUNS - 1))); do
    printf '%-8s %12s %12s %12s %12s %14s\n' "$((i + 1))" \
        "${dd_times[$i]}" "$(mibps "${dd_times[$i]}")" \
        "${tusk_times[$i]}" "$(mibps "${tusk_times[$i]}")" \
        "$(awk -v a="${tusk_times[$i]}" -v b="${dd_times[$i]}" 'BEGIN { printf "%.2f", a / b }')"
done
printf '%-8s %12s %12s %12s %12s %14s\n' median \
    "$DD_MED" "$(mibps "$DD_MED")" "$TUSK_MED" "$(mibps "$TUSK_MED")" \
    "$(awk -v a="$TUSK_MED" -v b="$DD_MED" 'BEGIN { printf "%.2f", a / b }')"
echo
printf '%-28s %10s MiB\n' 'tusk idle RSS (VmRSS)' "$IDLE_RSS"
printf '%-28s %10s MiB\n' 'tusk peak RSS (VmHWM)' "$PEAK_RSS"
printf '%-28s %10s MiB\n' 'peak - idle' "$(awk -v a="$PEAK_RSS" -v b="$IDLE_RSS" 'BEGIN { printf "%.1f", a - b }')"
