#!/usr/bin/env bash
# Installs what the test suite needs beyond the Rust toolchain, on a fresh Debian machine:
# Mosquitto (the tests start private instances of it), Node.js and Python for the interop
# peers, podman for the container tests, then the peers themselves (scripts/install-peers.sh).
# Idempotent and quick when everything is present.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

missing=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
command -v node >/dev/null 2>&1 || missing+=(nodejs npm)
command -v python3 >/dev/null 2>&1 || missing+=(python3 python3-venv)
command -v sha1sum >/dev/null 2>&1 || missing+=(coreutils)
# The container tests (tests/container.rs): podman with runc (crun cannot run on these
# machines' mixed cgroups), its networking, podman-compose, and mmdebstrap for a base image
# built without a registry.
command -v podman >/dev/null 2>&1 || missing+=(podman)
command -v runc >/dev/null 2>&1 || missing+=(runc containernetworking-plugins iptables catatonit)
command -v podman-compose >/dev/null 2>&1 || missing+=(podman-compose)
# Names of compose services resolve through CNI's dnsname plugin (podman 4.3 on CNI).
[ -x /usr/lib/cni/dnsname ] || missing+=(golang-github-containernetworking-plugin-dnsname)
command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap)
command -v objcopy >/dev/null 2>&1 || missing+=(binutils)
if [ ${#missing[@]} -gt 0 ]; then
    echo "install-test-deps: installing ${missing[*]}"
    if [ "$(id -u)" -ne 0 ]; then
        echo "install-test-deps: need root (or sudo) to install: ${missing[*]}" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
bash "$ROOT/scripts/install-peers.sh"
