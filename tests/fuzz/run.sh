#!/usr/bin/env bash
# Runs each cargo-fuzz target of rtc for a bounded time and prints, per
# target, the executions and the crashes found. A separate command, not part
# of CI: `tests/fuzz/run.sh [TARGET...]`, `FUZZ_SECONDS=60 tests/fuzz/run.sh`.
#
# Needs the nightly toolchain (sanitizers); installs cargo-fuzz if missing.
# The fuzz crate is a workspace of its own, built into tests/fuzz/target; the
# corpus grows in tests/fuzz/corpus/TARGET, crashing inputs land in
# tests/fuzz/artifacts/TARGET (both ignored by git). Exits non-zero if any
# target crashed: turn each crash into a test in tests/tests/fuzz_regressions.rs.
set -euo pipefail
cd "$(dirname "$0")"

seconds="${FUZZ_SECONDS:-20}"
if [ "$#" -gt 0 ]; then targets=("$@"); else targets=(decode_value c_api scenario); fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi
if ! rustup toolchain list | grep -q '^nightly'; then
  echo "cargo-fuzz needs the nightly toolchain: rustup toolchain install nightly" >&2
  exit 2
fi

echo "==> building the fuzz targets (nightly, AddressSanitizer)"
cargo +nightly fuzz build --fuzz-dir .

count_artifacts() { find "artifacts/$1" -type f 2>/dev/null | wc -l; }

failed=0
summary=()
for target in "${targets[@]}"; do
  echo "==> fuzzing $target for ${seconds}s"
  before=$(count_artifacts "$target")
  log="$(mktemp)"
  status=0
  # -timeout: an input running 10 s counts as a crash (a hang); RSS limit as libFuzzer's default.
  cargo +nightly fuzz run --fuzz-dir . "$target" -- \
    -max_total_time="$seconds" -timeout=10 -print_final_stats=1 >"$log" 2>&1 || status=$?
  # libFuzzer's final stats; on a crash, fall back to its last progress line.
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n1 || true)
  if [ -z "$execs" ]; then
    execs=$(grep -o '^#[0-9]*' "$log" | tr -d '#' | tail -n1 || true)
  fi
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n1 || true)
  crashes=$(( $(count_artifacts "$target") - before ))
  if [ "$status" -ne 0 ] && [ "$crashes" -eq 0 ]; then
    crashes=1 # libFuzzer failed without writing an artifact (e.g. a build or setup error)
  fi
  line="FUZZ $target: seconds=$seconds executions=${execs:-?} exec_per_sec=${rate:-?} crashes=$crashes"
  summary+=("$line")
  echo "$line"
  if [ "$crashes" -gt 0 ]; then
    failed=1
    grep -E '^(==[0-9]+==ERROR|thread .* panicked|SUMMARY|artifact_prefix|Test unit written)' "$log" | head -n 20 || true
    tail -n 30 "$log"
    echo "reproduce: cargo +nightly fuzz run --fuzz-dir tests/fuzz $target tests/fuzz/artifacts/$target/<file>"
  fi
  rm -f "$log"
done

echo
printf '%s\n' "${summary[@]}"
exit "$failed"
