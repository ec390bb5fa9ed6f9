# Shared by the benchmark scripts' peer runs (PEERS=1): tus-node-server (@tus/server with
# @tus/s3-store or @tus/file-store) installed from npm, at the versions pinned in
# scripts/lib/peers/package.json and package-lock.json, into a cache directory outside the
# repository's tracked files, once, and reused by later runs. The server itself is
# scripts/lib/tus-node-server.mjs.
# The sourcing script defines ROOT and log first.
# shellcheck shell=bash

PEERS_SRC="$ROOT/scripts/lib/peers"
# Where the packages go: TUSK_PEERS_DIR, else target/bench-peers (ignored by git).
PEERS_DIR="${TUSK_PEERS_DIR:-$ROOT/target/bench-peers}"
PEERS_INSTALL_TIMEOUT="${PEERS_INSTALL_TIMEOUT:-300}" # seconds npm ci may take
PEER_SERVER="$ROOT/scripts/lib/tus-node-server.mjs"

# The installed packages' versions, for the log.
peers_versions() {
    local p out=()
    for p in server s3-store file-store; do
        out+=("@tus/$p $(node -p "require('$PEERS_DIR/node_modules/@tus/$p/package.json').version" 2>/dev/null || echo '?')")
    done
    printf '%s' "${out[*]}" | sed 's/ @/, @/g'
}

# peers_install: make sure the pinned packages are in PEERS_DIR (npm ci there if the lock file
# changed or nothing is installed yet). Returns 1, with a message saying why, if they cannot be
# (no node/npm, no network, too old a node); the caller then skips its peer steps.
peers_install() {
    local want have node_major
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        log "peer: node and npm are needed for tus-node-server; skipping the peer"
        return 1
    fi
    node_major="$(node -p 'process.versions.node.split(".").map(Number).join(" ")' 2>/dev/null)" || node_major=""
    # @tus/server 2.x needs node >= 20.19.
    if ! awk -v v="$node_major" 'BEGIN { split(v, a, " "); exit !(a[1] > 20 || (a[1] == 20 && a[2] >= 19)) }'; then
        log "peer: tus-node-server 2.x needs node >= 20.19 (have $(node --version 2>/dev/null)); skipping the peer"
        return 1
    fi
    want="$(cat "$PEERS_SRC/package.json" "$PEERS_SRC/package-lock.json" | sha256sum | cut -d' ' -f1)"
    have="$(cat "$PEERS_DIR/.installed" 2>/dev/null || true)"
    if [[ "$want" == "$have" && -d "$PEERS_DIR/node_modules/@tus/server" ]]; then
        log "peer: tus-node-server from $PEERS_DIR ($(peers_versions))"
        return 0
    fi
    log "peer: installing tus-node-server into $PEERS_DIR (npm ci, at most ${PEERS_INSTALL_TIMEOUT}s)"
    mkdir -p "$PEERS_DIR"
    rm -f "$PEERS_DIR/.installed"
    cp "$PEERS_SRC/package.json" "$PEERS_SRC/package-lock.json" "$PEERS_DIR/"
    if ! (cd "$PEERS_DIR" && timeout "$PEERS_INSTALL_TIMEOUT" npm ci --no-audit --no-fund \
        --loglevel=error >"$PEERS_DIR/npm-ci.log" 2>&1); then
        log "peer: npm ci failed (no network?); skipping the peer. Last lines of $PEERS_DIR/npm-ci.log:"
        tail -n 5 "$PEERS_DIR/npm-ci.log" | sed 's/^/    /' >&2 || true
        return 1
    fi
    printf '%s\n' "$want" >"$PEERS_DIR/.installed"
    log "peer: installed ($(peers_versions))"
}
