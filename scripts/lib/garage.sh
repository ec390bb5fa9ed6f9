# garage (a Rust S3-compatible store) for scripts/bench-distributed.sh (S3_SERVER=garage) and
# scripts/e2e-garage.sh: a single node on 127.0.0.1, free ports, a fresh key and bucket.
# The sourcing script defines log, die and READY_TIMEOUT and sources scripts/lib/process.sh.
# shellcheck shell=bash

GARAGE_MISSING="no garage binary (set GARAGE_BIN, or install it once outside the repository: cargo install --locked garage --root DIR, 20-30 min on 2 cores)"

# The garage binary: GARAGE_BIN, /work/tools/garage/bin/garage, or garage on PATH; nothing if
# none is there.
garage_bin() {
    if [[ -n "${GARAGE_BIN:-}" ]]; then
        [[ -x "$GARAGE_BIN" ]] && printf '%s\n' "$GARAGE_BIN"
    elif [[ -x /work/tools/garage/bin/garage ]]; then
        printf '%s\n' /work/tools/garage/bin/garage
    else
        command -v garage || true
    fi
}

garage_free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
garage_hex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }

# garage_start BIN DIR BUCKET: start garage with its data in DIR and BUCKET created; sets
# GARAGE_PID, GARAGE_ENDPOINT, GARAGE_KEY_ID, GARAGE_SECRET and GARAGE_CONFIG. The key may also
# create buckets (the end-to-end suite makes one per test).
garage_start() {
    local bin="$1" dir="$2" bucket="$3" port rpc limit
    port="$(garage_free_port)" rpc="$(garage_free_port)"
    mkdir -p "$dir/meta" "$dir/data"
    GARAGE_CONFIG="$dir/garage.toml"
    cat >"$GARAGE_CONFIG" <<TOML
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "lmdb"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc"
rpc_public_addr = "127.0.0.1:$rpc"
rpc_secret = "$(garage_hex 32)"

[s3_api]
s3_region = "us-east-1"
api_bind_addr = "127.0.0.1:$port"
root_domain = ".s3.garage.localhost"
TOML
    GARAGE_KEY_ID="GK$(garage_hex 12)"
    GARAGE_SECRET="$(garage_hex 32)"
    GARAGE_DEFAULT_ACCESS_KEY="$GARAGE_KEY_ID" GARAGE_DEFAULT_SECRET_KEY="$GARAGE_SECRET" \
        GARAGE_DEFAULT_BUCKET="$bucket" \
        "$bin" -c "$GARAGE_CONFIG" server --single-node --default-bucket \
        </dev/null >"$dir/garage.log" 2>&1 &
    GARAGE_PID=$!
    GARAGE_ENDPOINT="http://127.0.0.1:$port"
    limit="$(deadline "$READY_TIMEOUT")"
    until curl -s -o /dev/null --max-time 2 "$GARAGE_ENDPOINT/"; do
        if ! pid_alive "$GARAGE_PID" || past "$limit"; then
            tail -n 30 "$dir/garage.log" >&2 || true
            die "garage did not start within ${READY_TIMEOUT}s"
        fi
        sleep 0.1
    done
    # The default key exists once the API answers; allowing bucket creation is idempotent.
    limit="$(deadline "$READY_TIMEOUT")"
    until "$bin" -c "$GARAGE_CONFIG" key allow --create-bucket "$GARAGE_KEY_ID" >/dev/null 2>&1; do
        past "$limit" && die "garage did not let key $GARAGE_KEY_ID create buckets within ${READY_TIMEOUT}s"
        sleep 0.2
    done
    log "garage ($("$bin" --version 2>/dev/null | head -n 1)) on $GARAGE_ENDPOINT with bucket $bucket"
}
