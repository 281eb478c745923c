#!/usr/bin/env bash
# fuzz.sh: build the protocol decoder's libFuzzer target with clang and run it for a bounded time.
#   scripts/fuzz.sh [seconds=60] [extra libFuzzer flags...]
# The corpus grows in build/fuzz/corpus/proto_decoder across runs; crashes land in build/fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
shift || true
jobs="${FUZZ_BUILD_JOBS:-2}"

CC=clang CXX=clang++ cmake -S . -B build/fuzz -G Ninja -DBENCHRUN_FUZZ=ON \
  -DBENCHRUN_BUILD_PYTHON=OFF -DBENCHRUN_BUILD_TESTS=OFF >/dev/null
cmake --build build/fuzz --target proto_decoder_fuzz -j "$jobs"

corpus=build/fuzz/corpus/proto_decoder
seeds=build/fuzz/seeds/proto_decoder
mkdir -p "$corpus" "$seeds"
# Seeds: one valid frame of each type and a whole conversation, written from docs/protocol.md
# (input = split byte, type byte, stream; see the target). Without them the fuzzer needs minutes
# to assemble a valid run_config; the dictionary gets it past the header check.
python3 - "$seeds" <<'PY'
import os, struct, sys
def u32(v): return struct.pack("<I", v)
def u64(v): return struct.pack("<Q", v)
def s(b): return u32(len(b)) + b
def strs(*items): return u32(len(items)) + b"".join(s(i) for i in items)
def frame(t, p): return struct.pack("<IHHII", 0x31505242, 1, t, 0, len(p)) + p
frames = {
    1: struct.pack("<H", 1) + s(b"0.1.0") + s(b"6.1.0") + u64(123456),
    2: strs(b"/bin/sh", b"-c", b"echo hi") + strs(b"PATH=/usr/bin:/bin", b"HOME=/root") + s(b"/")
       + u32(1000) + u32(1000) + u32(2) + u32(1000) + u32(27) + s(b"benchrun")
       + u32(1) + u32(7) + u64(1024) + u64(4096) + u64(5000) + u64(1 << 30) + u64(64)
       + strs(b"/out/result.json") + u64(1 << 26) + u64(1 << 26) + u32(64) + s(b"/dev/vda")
       + s(bytes.fromhex("0600000000000000") * 2),
    3: b"hello\n",
    4: b"warning\n",
    5: s(b"/out/result.json") + u64(10) + u64(0) + s(b"0123456789"),
    6: s(b"/out/missing") + s(b"no such file"),
    7: struct.pack("<ii", 0, 0) + bytes([0, 0, 1, 0]) + u64(1000) + u64(500) + u64(200) + u64(1 << 20),
    8: s(b"exec") + struct.pack("<i", 2) + s(b"exec '/bin/sh': No such file or directory") + bytes([1]),
    9: b"",
}
for t, p in frames.items():
    with open(os.path.join(sys.argv[1], "type%d" % t), "wb") as f:
        f.write(bytes([255, t - 1]) + frame(t, p))
conversation = b"".join(frame(t, frames[t]) for t in (1, 3, 4, 5, 6, 7, 9))
with open(os.path.join(sys.argv[1], "conversation"), "wb") as f:
    f.write(bytes([16, 0]) + conversation)
PY

./build/fuzz/proto_decoder_fuzz "$corpus" "$seeds" -dict=tests/fuzz/proto_decoder.dict \
  -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 \
  -artifact_prefix=build/fuzz/ "$@"
