#!/usr/bin/env bash
# The test command (README): installs dependencies, then
#   1. a warning-free (-Werror) gcc build and the whole ctest suite;
#   2. a clang build with AddressSanitizer + UndefinedBehaviorSanitizer and
#      the libFuzzer targets, the whole suite again plus short fuzz runs;
#   3. the Debian packages: built, linted, installed, run and upgraded from the
#      previous release (scripts/pkg-test.sh; root only, it changes the machine;
#      TH_PKG_TEST=0 skips it).
# Exits non-zero on any failure.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
./scripts/deps.sh
jobs=$(nproc)

echo "== build: gcc, -Werror"
cmake -S . -B build/ci -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTH_WERROR=ON >/dev/null
cmake --build build/ci -j"$jobs"
echo "== test: gcc build"
(cd build/ci && ctest --output-on-failure -j"$jobs" --timeout 600)

echo "== build: clang, ASan+UBSan, fuzz targets"
CC=clang cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug -DTH_WERROR=ON -DTH_SANITIZE=ON \
  -DTH_FUZZ=ON -DTH_FUZZ_SECONDS="${TH_FUZZ_SECONDS:-30}" >/dev/null
cmake --build build/asan -j"$jobs"
echo "== test: ASan+UBSan build and fuzzing"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
(cd build/asan && ctest --output-on-failure -j"$jobs" --timeout 900)

if [ "${TH_PKG_TEST:-1}" != 0 ]; then
  echo "== packages: build, lintian, install, run, upgrade"
  ./scripts/pkg-test.sh
fi
