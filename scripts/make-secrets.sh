#!/usr/bin/env bash
# Makes the secrets the compose stack and the Kubernetes manifests read, in DIR (never in the
# repository): api-keys.json (an admin key and an approver key; the vault never lets the
# principal that submitted a certificate request approve it), the two keys alone (admin-key,
# approver-key) for curl, and kek (the vault's 32-byte key-encryption key, hex).
#
#   scripts/make-secrets.sh DIR
set -euo pipefail
DIR="${1:?usage: make-secrets.sh DIR}"
mkdir -p "$DIR"
key() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
umask 077
[ -s "$DIR/admin-key" ] || key > "$DIR/admin-key"
[ -s "$DIR/approver-key" ] || key > "$DIR/approver-key"
[ -s "$DIR/kek" ] || key > "$DIR/kek"
printf '[{"name":"admin","key":"%s","roles":["admin"]},\n {"name":"approver","key":"%s","roles":["approver"]}]\n' \
    "$(cat "$DIR/admin-key")" "$(cat "$DIR/approver-key")" > "$DIR/api-keys.json"
# The services run as uid 65532 in their containers and read these through read-only mounts.
chmod 0644 "$DIR/api-keys.json" "$DIR/kek"
echo "make-secrets: wrote $DIR/{api-keys.json,admin-key,approver-key,kek}"
