#!/usr/bin/env bash
# The project's test command (README): installs the test dependencies, then runs every test
# of the workspace: unit tests, plc-sim, and the end-to-end tests of the real `iiot` binary
# against plc-sim, Mosquitto, asyncua and node-opcua, the container image and manifests (podman),
# then the OpenAPI conformance run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/install-test-deps.sh
cargo test --workspace "$@"
# The twin API's and the vault's OpenAPI documents against the running services (schemathesis).
bash scripts/api-conformance.sh
