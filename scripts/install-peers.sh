#!/usr/bin/env bash
# Install the third-party test peers used by the interop tests (OPC UA, Azure IoT):
#   * Python asyncua (pinned in tests/peers/requirements.txt + constraints.txt)
#     into tests/peers/.venv  -> run peers with tests/peers/.venv/bin/python
#   * Microsoft's Azure IoT SDKs azure-iot-device + azure-iot-hub (pinned in
#     tests/peers/requirements-azure.txt + constraints-azure.txt) into their own
#     venv tests/peers/.venv-azure (they need paho-mqtt < 2, .venv pins 2.1.0)
#     -> run them with tests/peers/.venv-azure/bin/python
#   * node-opcua (pinned exactly in tests/peers/package.json + package-lock.json)
#     into tests/peers/node_modules
#
# Idempotent: each part writes a stamp (hash of its pin files) and is skipped
# while the stamp matches, so a second run takes well under a second.
#
# Options / environment:
#   --force            reinstall everything selected
#   --python-only      both Python venvs          --node-only   only the node part
#   --azure-only       only tests/peers/.venv-azure
#   PYTHON=/path       interpreter to build the venvs from (default: python3)
#   PEERS_PY_MODE=target   skip venv, use the `pip install --target` fallback (for testing)
#
# Needs python3 (>= 3.10) with venv (or pip) and node >= 20 with npm. If
# `python3 -m venv` cannot work and we are root on Debian, python3-venv is
# installed with apt-get; otherwise `pip install --target` is used.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PEERS="$ROOT/tests/peers"
VENV="$PEERS/.venv"
PY_STAMP="$VENV/.iiot-peers-stamp"
AZ_VENV="$PEERS/.venv-azure"
AZ_STAMP="$AZ_VENV/.iiot-peers-stamp"
NODE_STAMP="$PEERS/node_modules/.iiot-peers-stamp"
NODE_OPCUA_VERSION="2.160.0"
ASYNCUA_VERSION="2.1.0"
AZURE_IOT_DEVICE_VERSION="2.14.0"
AZURE_IOT_HUB_VERSION="2.7.0"

FORCE=0
DO_PY=1
DO_AZ=1
DO_NODE=1
for arg in "$@"; do
    case "$arg" in
        --force) FORCE=1 ;;
        --python-only) DO_NODE=0 ;;
        --azure-only) DO_PY=0; DO_NODE=0 ;;
        --node-only) DO_PY=0; DO_AZ=0 ;;
        -h | --help) sed -n '2,24p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "install-peers: unknown option $arg" >&2; exit 2 ;;
    esac
done

log() { echo "install-peers: $*"; }
die() { echo "install-peers: ERROR: $*" >&2; exit 1; }

hash_files() { cat "$@" | sha256sum | cut -d' ' -f1; }

APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 || return 1
    [ "$(id -u)" = 0 ] || return 1
    if [ "$APT_UPDATED" = 0 ]; then
        log "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq || return 1
        APT_UPDATED=1
    fi
    log "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null || return 1
}

# ---------------------------------------------------------------- python ----
# pick_python: sets PY (absolute interpreter path) and PYVER ("3.11"); dies unless >= 3.10.
PY=""
PYVER=""
pick_python() {
    [ -n "$PY" ] && return
    local py="${PYTHON:-python3}"
    command -v "$py" >/dev/null 2>&1 || die "$py not found: install python3 (>= 3.10), e.g. apt-get install python3 python3-venv"
    py="$("$py" -c 'import sys; print(sys.executable)')" || die "cannot run ${PYTHON:-python3}"
    "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' ||
        die "$py is $("$py" --version 2>&1); the peers need Python >= 3.10 (asyncua $ASYNCUA_VERSION; uamqp wheels)"
    PY="$py"
    PYVER="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
}

# make_env DIR REQUIREMENTS [pip options...]: (re)creates DIR as a venv from $PY and
# pip-installs REQUIREMENTS into it, or, where no venv can be made, installs into
# DIR/site-packages with a DIR/bin/python wrapper so callers use the same path either way.
make_env() {
    local dir="$1" reqs="$2" name
    shift 2
    name="tests/peers/$(basename "$dir")"
    rm -rf "$dir"
    local mode="${PEERS_PY_MODE:-venv}"
    if [ "$mode" = venv ]; then
        if ! "$PY" -m venv "$dir" >/dev/null 2>&1; then
            rm -rf "$dir"
            log "python: '$PY -m venv' failed (python3-venv/ensurepip missing?)"
            if apt_install "python$PYVER-venv" python3-venv && "$PY" -m venv "$dir" >/dev/null 2>&1; then
                :
            else
                rm -rf "$dir"
                mode=target
            fi
        fi
    fi

    if [ "$mode" = venv ]; then
        log "python: created venv $name from $PY ($PYVER)"
        "$dir/bin/python" -m pip install -q --disable-pip-version-check "$@" -r "$reqs" ||
            die "pip install into $name failed (see above)"
    else
        if ! "$PY" -m pip --version >/dev/null 2>&1; then
            apt_install python3-pip || true
            "$PY" -m pip --version >/dev/null 2>&1 ||
                die "neither '$PY -m venv' nor '$PY -m pip' works: install python3-venv or python3-pip"
        fi
        log "python: no venv, using '$PY -m pip install --target $name/site-packages'"
        mkdir -p "$dir/bin" "$dir/site-packages"
        "$PY" -m pip install -q --disable-pip-version-check --target "$dir/site-packages" "$@" -r "$reqs" ||
            die "pip install --target into $name failed (see above)"
        cat >"$dir/bin/python" <<EOF
#!/bin/sh
# generated by scripts/install-peers.sh (pip --target fallback)
here="\$(cd "\$(dirname "\$0")/.." && pwd)"
PYTHONPATH="\$here/site-packages\${PYTHONPATH:+:\$PYTHONPATH}" exec "$PY" "\$@"
EOF
        chmod +x "$dir/bin/python"
    fi
}

install_python() {
    pick_python
    local want
    want="$(hash_files "$PEERS/requirements.txt" "$PEERS/constraints.txt")-py$PYVER"
    if [ "$FORCE" = 0 ] && [ -f "$PY_STAMP" ] && [ "$(cat "$PY_STAMP")" = "$want" ] &&
        "$VENV/bin/python" -c 'import importlib.metadata as m; m.version("asyncua")' >/dev/null 2>&1; then
        log "python: asyncua $ASYNCUA_VERSION already installed in tests/peers/.venv (skipped)"
        return
    fi

    make_env "$VENV" "$PEERS/requirements.txt"

    local got
    got="$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("asyncua"))')" ||
        die "asyncua not importable from tests/peers/.venv/bin/python"
    [ "$got" = "$ASYNCUA_VERSION" ] || die "expected asyncua $ASYNCUA_VERSION, got $got"
    echo "$want" >"$PY_STAMP"
    log "python: installed asyncua $got (python $PYVER) -> tests/peers/.venv/bin/python"
}

# ----------------------------------------------------------------- azure ----
# Microsoft's azure-iot-device + azure-iot-hub, in their own venv: azure-iot-device
# 2.14.0 needs paho-mqtt < 2 (.venv has 2.1.0). Two things are not plain wheels:
#   * uamqp (C extension, needed by azure-iot-hub) must come as a manylinux wheel
#     (--only-binary=uamqp; PyPI has them for CPython 3.10-3.13). Building it would need
#     cmake, gcc/g++, make and the OpenSSL headers, so we refuse instead.
#   * paho-mqtt 1.6.1 is only published as an sdist: pure Python, pip builds it with
#     setuptools + wheel (no compiler). PIP_CONSTRAINT makes that isolated build use the
#     setuptools/wheel versions pinned in constraints-azure.txt.
AZ_CHECK='import importlib.metadata as m, azure.iot.device, azure.iot.hub
print(m.version("azure-iot-device"), m.version("azure-iot-hub"))'

install_azure() {
    pick_python
    local want
    want="$(hash_files "$PEERS/requirements-azure.txt" "$PEERS/constraints-azure.txt")-py$PYVER"
    if [ "$FORCE" = 0 ] && [ -f "$AZ_STAMP" ] && [ "$(cat "$AZ_STAMP")" = "$want" ] &&
        "$AZ_VENV/bin/python" -c 'import importlib.metadata as m; m.version("azure-iot-hub")' >/dev/null 2>&1; then
        log "azure: azure-iot-device $AZURE_IOT_DEVICE_VERSION + azure-iot-hub $AZURE_IOT_HUB_VERSION already installed in tests/peers/.venv-azure (skipped)"
        return
    fi

    (
        export PIP_CONSTRAINT="$PEERS/constraints-azure.txt"
        make_env "$AZ_VENV" "$PEERS/requirements-azure.txt" --only-binary=uamqp
    ) || die "installing tests/peers/.venv-azure failed. If pip found no uamqp 1.6.11 wheel above:
    it publishes manylinux2014 wheels for CPython 3.10-3.13 only (this is $PY, $PYVER, $(uname -m));
    point PYTHON= at such an interpreter (a source build would need cmake, gcc/g++, make, libssl-dev)"

    local got
    got="$("$AZ_VENV/bin/python" -c "$AZ_CHECK")" ||
        die "azure.iot.device / azure.iot.hub not importable from tests/peers/.venv-azure/bin/python (see above)"
    [ "$got" = "$AZURE_IOT_DEVICE_VERSION $AZURE_IOT_HUB_VERSION" ] ||
        die "expected azure-iot-device $AZURE_IOT_DEVICE_VERSION + azure-iot-hub $AZURE_IOT_HUB_VERSION, got ${got/ / + }"
    echo "$want" >"$AZ_STAMP"
    log "azure: installed azure-iot-device $AZURE_IOT_DEVICE_VERSION + azure-iot-hub $AZURE_IOT_HUB_VERSION (python $PYVER) -> tests/peers/.venv-azure/bin/python"
}

# ------------------------------------------------------------------ node ----
install_node() {
    command -v node >/dev/null 2>&1 || die "node not found: node-opcua $NODE_OPCUA_VERSION needs Node.js >= 20 with npm (Debian 12's own nodejs is 18, too old)"
    command -v npm >/dev/null 2>&1 || die "npm not found: install npm (Node.js >= 20)"
    local nodever major
    nodever="$(node --version)"
    major="${nodever#v}"
    major="${major%%.*}"
    [ "$major" -ge 20 ] 2>/dev/null || die "node $nodever is too old: node-opcua $NODE_OPCUA_VERSION needs Node.js >= 20"

    local want
    want="$(hash_files "$PEERS/package.json" "$PEERS/package-lock.json")-node$major"
    if [ "$FORCE" = 0 ] && [ -f "$NODE_STAMP" ] && [ "$(cat "$NODE_STAMP")" = "$want" ] &&
        [ -f "$PEERS/node_modules/node-opcua/package.json" ]; then
        log "node: node-opcua $NODE_OPCUA_VERSION already installed in tests/peers/node_modules (skipped)"
        return
    fi
    [ -f "$PEERS/package-lock.json" ] || die "tests/peers/package-lock.json missing (regenerate with: cd tests/peers && npm install)"
    log "node: npm ci in tests/peers (node $nodever, npm $(npm --version 2>/dev/null))"
    (cd "$PEERS" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci in tests/peers failed (see above)"
    local got
    got="$(cd "$PEERS" && node -p 'require("node-opcua/package.json").version')" || die "node-opcua not resolvable"
    [ "$got" = "$NODE_OPCUA_VERSION" ] || die "expected node-opcua $NODE_OPCUA_VERSION, got $got"
    echo "$want" >"$NODE_STAMP"
    log "node: installed node-opcua $got -> tests/peers/node_modules"
}

start=$(date +%s)
[ "$DO_PY" = 1 ] && install_python
[ "$DO_AZ" = 1 ] && install_azure
[ "$DO_NODE" = 1 ] && install_node
log "done in $(($(date +%s) - start)) s"
