#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz + libFuzzer, fuzz/) of the OPC UA binary decoders we
# accept and of iiot-module's parsers.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     (default: 30 s each, every target)
#
# For each target it first replays every file in fuzz/regressions/<target>/ once, then fuzzes
# for SECONDS from the committed seeds (fuzz/seeds/<target>/) plus the local working corpus
# (fuzz/corpus/<target>/, gitignored). It exits non-zero if any target crashed, printing the
# input that did (fuzz/artifacts/<target>/...). Reproduce one with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run <target> <artifact>
# Logs: fuzz/target/fuzz-logs/<target>.log.
set -euo pipefail
# The binaries are looked up under fuzz/target: a caller's CARGO_TARGET_DIR must not move them.
unset CARGO_TARGET_DIR
cd "$(dirname "$0")/.."
root=$PWD

secs=30
if [[ $# -gt 0 && $1 =~ ^[0-9]+$ ]]; then
  secs=$1
  shift
fi

# cargo-fuzz needs nightly-only flags (sanitizers); RUSTC_BOOTSTRAP lets stable rustc take them.
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

# The fuzzers must test our build of async-opcua: fuzz/Cargo.toml has to carry the same
# [patch.crates-io] entries as the workspace (paths one level up).
patches() {
  sed -n '/^\[patch\.crates-io\]/,/^\[/{/^[a-z]/p}' "$1" | sed 's#path = "\(\.\./\)\{0,1\}#path = "#' | sort
}
if ! diff <(patches Cargo.toml) <(patches fuzz/Cargo.toml) >/dev/null; then
  echo "!! fuzz/Cargo.toml [patch.crates-io] differs from Cargo.toml's (workspace < > fuzz):"
  diff <(patches Cargo.toml) <(patches fuzz/Cargo.toml) || true
  echo "   copy the workspace's entries, with paths prefixed by ../"
  exit 1
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

if [[ $# -gt 0 ]]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

echo "== cargo fuzz build (fuzz/target)"
start=$(date +%s)
cargo fuzz build
echo "   built in $(($(date +%s) - start)) s"

host=$(rustc -vV | sed -n 's/^host: //p')
bin_dir=$root/fuzz/target/$host/release
log_dir=$root/fuzz/target/fuzz-logs
mkdir -p "$log_dir"

# Run the targets on a 2 MiB stack: async-opcua and the module decode network input on tokio
# worker threads, whose stacks are 2 MiB, so a recursion that would overflow there must crash
# here too (on the default 8 MiB main stack, hostile nesting would need 4x the input).
ulimit -s 2048

# The first line that says why a libFuzzer run failed, and the one after it.
reason() {
  grep -a -m1 -A1 -E '^thread .* panicked|^==[0-9]+== ?ERROR' "$1" | sed 's/^/   /' | cut -c1-300 || true
}

failed=()
for t in "${targets[@]}"; do
  bin=$bin_dir/$t
  if [[ ! -x $bin ]]; then
    echo "!! unknown fuzz target '$t' (see: cargo fuzz list)"
    failed+=("$t: unknown target")
    continue
  fi
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t" "fuzz/seeds/$t"
  log=$log_dir/$t.log
  : >"$log"

  # Regressions: libFuzzer runs each file given by path once.
  shopt -s nullglob
  regressions=("fuzz/regressions/$t"/*)
  shopt -u nullglob
  for r in "${regressions[@]}"; do
    if ! "$bin" -rss_limit_mb=2048 -timeout=20 "$r" >"$log.one" 2>&1; then
      echo "!! $t: regression $r fails"
      reason "$log.one"
      failed+=("$t: regression $r")
    fi
    cat "$log.one" >>"$log"
  done
  rm -f "$log.one"
  if [[ ${#regressions[@]} -gt 0 ]]; then
    echo "== $t: replayed ${#regressions[@]} regression input(s)"
  fi

  extra=()
  if [[ -f fuzz/dicts/$t.dict ]]; then
    extra+=("-dict=fuzz/dicts/$t.dict")
  fi
  case $t in
    # OPC UA binary input may be as long as one chunk (64 KiB), not libFuzzer's default 4 KiB.
    chunk_* | message | variant | data_value | diagnostic_info | extension_object | variant_to_json)
      extra+=("-max_len=65536") ;;
  esac
  echo "== $t: fuzzing for ${secs} s"
  run=$log.fuzz
  # FUZZ_RUNS=N: a fixed number of runs from a fixed seed instead of SECONDS, so that a CI
  # run (empty working corpus) is repeatable.
  if [[ -n ${FUZZ_RUNS:-} ]]; then
    budget=(-runs="$FUZZ_RUNS" -seed=1)
  else
    budget=(-max_total_time="$secs")
  fi
  if "$bin" "fuzz/corpus/$t" "fuzz/seeds/$t" \
    "${budget[@]}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="fuzz/artifacts/$t/" "${extra[@]}" >"$run" 2>&1; then
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$run" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$run" | tail -1)
    cov=$(grep -oE 'cov: [0-9]+' "$run" | tail -1)
    echo "   ok: ${execs:-?} execs, ${rate:-?} exec/s, ${cov:-cov: ?}, corpus $(find "fuzz/corpus/$t" -type f | wc -l) files"
  else
    artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$run" | tail -1)
    echo "!! $t: CRASH, input: ${artifact:-see $log}"
    reason "$run"
    echo "   reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run $t ${artifact:-<artifact>}"
    failed+=("$t: crash ${artifact:-(see $log)}")
  fi
  cat "$run" >>"$log"
  rm -f "$run"
done

if [[ ${#failed[@]} -gt 0 ]]; then
  echo "== fuzzing FAILED:"
  printf '   %s\n' "${failed[@]}"
  exit 1
fi
echo "== fuzzing: ${#targets[@]} target(s) clean"
