#!/usr/bin/env bash
# The README's curl walk-through against a running tusk: create an 11-byte upload, PATCH
# "hello world", and check the answers the README promises (201 with a Location, then 204 with
# Upload-Offset: 11), plus a HEAD and a GET of the bytes.
#
# Usage: scripts/readme-walkthrough.sh [COLLECTION_URL]   (default http://127.0.0.1:1080/files/)
set -euo pipefail

URL="${1:-http://127.0.0.1:1080/files/}"
fail() {
    printf 'readme-walkthrough: %s\n' "$*" >&2
    exit 1
}
header() { tr -d '\r' | awk -v h="$1" 'tolower($1) == tolower(h ":") { print $2 }' | tail -n 1; }
status() { tr -d '\r' | awk 'NR == 1 { print $2 }'; }

created="$(curl -s -i --max-time 10 -X POST "$URL" -H 'Tus-Resumable: 1.0.0' -H 'Upload-Length: 11')"
[[ "$(status <<<"$created")" == 201 ]] || fail "POST: expected 201, got: $created"
location="$(header location <<<"$created")"
[[ "$location" == http://127.0.0.1:1080/files/* || "$location" == "$URL"* ]] ||
    fail "POST: unexpected Location '$location'"

patched="$(curl -s -i --max-time 10 -X PATCH "$location" -H 'Tus-Resumable: 1.0.0' \
    -H 'Upload-Offset: 0' -H 'Content-Type: application/offset+octet-stream' \
    --data-binary 'hello world')"
[[ "$(status <<<"$patched")" == 204 ]] || fail "PATCH: expected 204, got: $patched"
[[ "$(header upload-offset <<<"$patched")" == 11 ]] || fail "PATCH: expected Upload-Offset 11, got: $patched"

headed="$(curl -s -I --max-time 10 "$location" -H 'Tus-Resumable: 1.0.0')"
[[ "$(header upload-offset <<<"$headed")" == 11 ]] || fail "HEAD: expected Upload-Offset 11, got: $headed"
body="$(curl -s --max-time 10 "$location")"
[[ "$body" == "hello world" ]] || fail "GET: expected 'hello world', got '$body'"
printf 'readme-walkthrough: POST 201, PATCH 204 (Upload-Offset 11), HEAD and GET agree\n'
