#!/usr/bin/env bash
# Makes the third-party images the compose test needs, on a machine that reaches no image
# registry: Debian bookworm (minbase, by mmdebstrap) tagged as debian:bookworm-slim, and from it
# a Mosquitto image tagged as eclipse-mosquitto:2 (tests/containers/mosquitto.Containerfile).
# Skips what already exists. Needs CONTAINERS_CONF for podman on our machines
# (tests/container.rs passes one).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEBIAN=docker.io/library/debian:bookworm-slim
MOSQUITTO=docker.io/library/eclipse-mosquitto:2
if ! podman image exists "$DEBIAN"; then
    mmdebstrap --quiet --variant=minbase --mode=root --format=tar bookworm - | podman import - localhost/debian-base
    podman tag localhost/debian-base "$DEBIAN"
fi
if ! podman image exists "$MOSQUITTO"; then
    podman build --format docker --pull=never -t "$MOSQUITTO" \
        -f "$ROOT/tests/containers/mosquitto.Containerfile" "$ROOT/tests/containers"
fi
