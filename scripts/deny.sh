#!/usr/bin/env bash
# Dependency hygiene with cargo-deny (policy: deny.toml): licences, bans and sources always
# (they need only the crates.io index), advisories only when the RustSec database can be
# fetched. Our build machines reach crates.io, PyPI, npm and Debian but not GitHub, where the
# database lives; there the advisory check is skipped with a notice, which is not a failure.
#
#   scripts/deny.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

if ! cargo deny --version >/dev/null 2>&1; then
  echo "== installing cargo-deny"
  cargo install cargo-deny --locked
fi

echo "== cargo deny check licenses bans sources"
cargo deny check licenses bans sources

advisory_db=https://github.com/rustsec/advisory-db
echo "== cargo deny check advisories"
if timeout 15 git ls-remote --exit-code "$advisory_db" HEAD >/dev/null 2>&1; then
  cargo deny check advisories
else
  echo "!! SKIPPED: the RustSec advisory database ($advisory_db) is unreachable from this"
  echo "   network, so known vulnerabilities were NOT checked. Run scripts/deny.sh where"
  echo "   github.com is reachable; reviewed exceptions are in deny.toml [advisories]."
fi
