# Shared by scripts/services.sh and scripts/dev-cluster.sh: time, deadlines and processes.
# The sourcing script defines log, die and STOP_TIMEOUT first.
# shellcheck shell=bash

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
# True once the deadline (a `now` value) has passed.
past() { awk -v d="$1" -v n="$(now)" 'BEGIN { exit !(n > d) }'; }
deadline() { awk -v n="$(now)" -v s="$1" 'BEGIN { printf "%.3f", n + s }'; }

# The process state letter of PID (R, S, D, Z, ...), or nothing if there is no such process.
# The state follows the last ')' of /proc/PID/stat (the command name may contain spaces or ')').
proc_state() {
    local stat
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 0
    stat="${stat##*) }"
    printf '%s' "${stat%% *}"
}

# True if PID is a live (not zombie) process. A stopped process can linger as a zombie for a
# while, and `kill -0` says a zombie is alive, so this reads /proc/PID/stat instead.
pid_alive() {
    local state
    [[ "$1" =~ ^[0-9]+$ ]] || return 1
    state="$(proc_state "$1")"
    [[ -n "$state" && "$state" != Z && "$state" != X ]]
}

# Stop PID: SIGTERM, wait up to STOP_TIMEOUT seconds, then SIGKILL and wait again.
stop_pid() {
    local name="$1" pid="$2" limit
    kill -TERM "$pid" 2>/dev/null || true
    limit="$(deadline "$STOP_TIMEOUT")"
    while pid_alive "$pid"; do
        if past "$limit"; then
            log "$name (pid $pid) still running ${STOP_TIMEOUT}s after SIGTERM: sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            limit="$(deadline 5)"
            while pid_alive "$pid"; do
                past "$limit" && die "$name (pid $pid) survived SIGKILL"
                sleep 0.1
            done
            return 0
        fi
        sleep 0.1
    done
}

# The PID in pid file FILE if it names a live process whose command line contains PATTERN (a
# recycled PID in a stale pid file is not ours), else nothing.
live_pid_from() {
    local file="$1" pattern="$2" pid cmdline
    [[ -f "$file" ]] || return 0
    pid="$(<"$file")"
    pid_alive "$pid" || return 0
    cmdline="$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline")" || return 0
    [[ "$cmdline" == *"$pattern"* ]] || return 0
    printf '%s' "$pid"
}
