#!/usr/bin/env bash
# fuzz.sh: build every libFuzzer target (tests/fuzz/*_fuzz.cpp) with clang and run each for a
# bounded time; any crash, sanitizer report, leak, timeout or out-of-memory fails the script.
#   scripts/fuzz.sh [seconds per target=60] [target ...]     e.g. scripts/fuzz.sh 20 layer_apply_fuzz
# Seeds: tests/fuzz/corpus/<target>/ (kept in the repo, written by tests/corpus/generate.py);
# dictionaries: tests/fuzz/<name>.dict. What a run learns grows in build/fuzz/corpus/<target>/
# (not committed); crashes land in build/fuzz/artifacts/<target>/ (reproduce: the target binary
# with the file as argument). FUZZ_BUILD_JOBS (default 2) bounds the build's parallelism; the build
# goes through ccache when it is installed (scripts/ccache.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
shift || true
jobs="${FUZZ_BUILD_JOBS:-2}"

all=()
for src in tests/fuzz/*_fuzz.cpp; do all+=("$(basename "$src" .cpp)"); done
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

# shellcheck disable=SC1091
source scripts/ccache.sh
CC=clang CXX=clang++ cmake -S . -B build/fuzz -G Ninja -DBENCHRUN_FUZZ=ON \
  -DBENCHRUN_BUILD_PYTHON=OFF -DBENCHRUN_BUILD_TESTS=OFF "${BENCHRUN_LAUNCHER[@]}" >/dev/null
cmake --build build/fuzz --target "${targets[@]}" -j "$jobs"

# Per-target input size bound: tar-based targets need room for a few 512-byte headers.
max_len() {
  case "$1" in
    layer_apply_fuzz | docker_archive_fuzz) echo 65536 ;;
    manifest_fuzz | config_fuzz) echo 16384 ;;
    *) echo 4096 ;;
  esac
}

failed=()
for t in "${targets[@]}"; do
  # Absolute paths: layer_apply_fuzz changes its working directory.
  corpus="$PWD/build/fuzz/corpus/$t"
  artifacts="$PWD/build/fuzz/artifacts/$t/"
  mkdir -p "$corpus" "$artifacts"
  dict=()
  [ -f "tests/fuzz/${t%_fuzz}.dict" ] && dict=(-dict="$PWD/tests/fuzz/${t%_fuzz}.dict")
  echo "== fuzz $t (${seconds}s)"
  # The first directory receives new inputs; the seeds are only read.
  if ! "./build/fuzz/$t" "$corpus" "$PWD/tests/fuzz/corpus/$t" "${dict[@]}" \
      -max_total_time="$seconds" -max_len="$(max_len "$t")" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$artifacts" >"build/fuzz/$t.log" 2>&1; then
    failed+=("$t")
    tail -n 60 "build/fuzz/$t.log"
  fi
  grep -E "^stat::number_of_executed_units|^stat::new_units_added" "build/fuzz/$t.log" |
    tr '\n' ' ' || true
  echo
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (inputs in build/fuzz/artifacts/, logs in build/fuzz/*.log)"
  exit 1
fi
echo "fuzz: ${#targets[@]} targets, no crash in ${seconds}s each"
