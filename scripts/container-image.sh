#!/usr/bin/env bash
# Builds the image from a binary built outside it: fills a build context with
# scripts/container-rootfs.sh, then builds the Dockerfile's `host-binary` target from it (CI's
# way, since no registry is reachable here; tests/container.rs and `iiot bench container` use it).
#
#   scripts/container-image.sh BINARY TAG [CONTEXT_DIR]
#
# CONTEXT_DIR is kept when given (a temporary one is removed). podman reads CONTAINERS_CONF,
# scripts/containers.conf unless set.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${1:?usage: container-image.sh BINARY TAG [CONTEXT_DIR]}"
TAG="${2:?usage: container-image.sh BINARY TAG [CONTEXT_DIR]}"
CTX="${3:-}"
if [ -z "$CTX" ]; then
    CTX="$(mktemp -d)"
    trap 'rm -rf "$CTX"' EXIT
fi
export CONTAINERS_CONF="${CONTAINERS_CONF:-$ROOT/scripts/containers.conf}"
bash "$ROOT/scripts/container-rootfs.sh" "$BIN" "$CTX"
podman build --quiet --format docker --pull=never --target host-binary \
    -f "$ROOT/Dockerfile" -t "$TAG" "$CTX" >/dev/null
