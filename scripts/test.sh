#!/usr/bin/env bash
# test.sh: set everything up and run all tests (GoogleTest via ctest, then pytest), the libFuzzer
# targets for a bounded time (scripts/fuzz.sh; FUZZ_SECONDS per target, default 20, 0 skips), then
# the Python linters (black --check, mypy: scripts/lint.sh). Any failure fails the script, the
# linters' and any fuzzer crash too.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/bootstrap.sh
source ./scripts/venv.sh   # creates/activates .venv and pip-installs benchrun (incremental)

echo "== C++ unit tests (ctest)"
cmake --build build/cmake --target benchrun_tests -j "$(nproc)"
(cd build/cmake && ctest --output-on-failure -j "$(nproc)" --timeout 300)

echo "== C++ unit tests under ASan + UBSan"
cmake -S . -B build/asan -G Ninja -DBENCHRUN_SANITIZE=ON -DBENCHRUN_BUILD_PYTHON=OFF \
  "${BENCHRUN_LAUNCHER[@]}" >/dev/null
cmake --build build/asan --target benchrun_tests -j "$(nproc)"
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ./build/asan/benchrun_tests --gtest_brief=1

echo "== Fuzzers (scripts/fuzz.sh, ${FUZZ_SECONDS:-20}s per target)"
if [ "${FUZZ_SECONDS:-20}" != 0 ]; then
  ./scripts/fuzz.sh "${FUZZ_SECONDS:-20}"
fi

echo "== Python tests (pytest)"
python -m pytest -q -p no:cacheprovider "$@"

./scripts/lint.sh
