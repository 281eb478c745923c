"""Instruction counting (`--instructions`, issue 13 part 2): determinism, slowdown, sensitivity.
Never a pass/fail test; figures and how to read them: docs/performance.md "Instruction counts".

1. determinism: two static CPU-bound programs, --rounds times each with --instructions, on a
   quiet machine and again with every other CPU busy (a `sh -c 'while :; do :; done'` per CPU,
   on the host): `nop1 N` (a loop, nothing else) and bench/cpuloop.c (the same kind of loop, but
   it reads the clock twice to time itself). The spread (max-min)/median of `instructions` next
   to the coefficient of variation of `wall_time` of the same runs.
2. slowdown: cpuloop without and with --instructions (and --instructions=cache), interleaved:
   median wall_time ratio.
3. sensitivity: a loop with 1 nop per iteration vs 3 nops, N iterations: the difference benchrun
   reports vs the known 2N.

Run as root from the project venv:  python bench/instructions_bench.py [--rounds 10] [--loops N]
(about a minute on 2 CPUs).
Writes bench/out/instructions.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "py"))

import benchrun  # noqa: E402
from support.ocilayout import Layer, busybox_layer, write_layout  # noqa: E402

NOP_LOOP = r"""
#include <stdlib.h>
int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 0;
  for (long i = 0; i < n; i++) asm volatile(NOPS ::: "memory");
  return 0;
}
"""


def build_image(work: Path) -> str:
    layer = Layer("gzip")
    exe = work / "cpuloop"
    subprocess.run(["cc", "-O2", "-static", "-o", str(exe), str(HERE / "cpuloop.c")], check=True)
    layer.file("cpuloop", exe.read_bytes(), mode=0o755)
    src = work / "nops.c"
    src.write_text(NOP_LOOP)
    for name, nops in (("nop1", "nop"), ("nop3", "nop; nop; nop")):
        out = work / name
        subprocess.run(
            ["cc", "-O1", "-static", f'-DNOPS="{nops}"', "-o", str(out), str(src)], check=True
        )
        layer.file(name, out.read_bytes(), mode=0o755)
    info = write_layout(work / "layout", [busybox_layer(), layer], config={"Env": ["PATH=/:/bin"]})
    return info.ref


def run(ref: str, store: Path, argv: list[str], instructions: str = "") -> benchrun.Result:
    r = benchrun.run(ref, argv, store=store, timeout=600, instructions=instructions or False)
    if r.exit_code != 0:
        raise SystemExit(f"{argv}: exit {r.exit_code}: {r.stderr[-500:]!r}")
    return r


def spread(values: list[float]) -> float:
    return (max(values) - min(values)) / statistics.median(values)


def cv(values: list[float]) -> float:
    return statistics.stdev(values) / statistics.mean(values)


def determinism(ref: str, store: Path, rounds: int, argv: list[str], loaded: bool) -> dict:
    hogs = []
    if loaded:
        for _ in range(max(1, (os.cpu_count() or 2) - 1)):
            hogs.append(subprocess.Popen(["sh", "-c", "while :; do :; done"]))
        time.sleep(0.5)
    try:
        results = [run(ref, store, argv, "count") for _ in range(rounds)]
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    ins = [r.metrics["instructions"][0] for r in results]
    wall = [r.metrics["wall_time"][0] for r in results]
    return {
        "argv": argv,
        "loaded": loaded,
        "instructions": ins,
        "wall_time": wall,
        "instructions_spread": spread(ins),
        "wall_time_cv": cv(wall),
        "wall_time_spread": spread(wall),
    }


def slowdown(ref: str, store: Path, rounds: int, loops: int) -> dict:
    times: dict[str, list[float]] = {"plain": [], "count": [], "cache": []}
    for i in range(rounds):
        order = list(times) if i % 2 == 0 else list(reversed(times))
        for mode in order:
            r = run(ref, store, ["cpuloop", str(loops)], "" if mode == "plain" else mode)
            times[mode].append(r.metrics["wall_time"][0])
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "wall_time": times,
        "median": med,
        "slowdown_count": med["count"] / med["plain"],
        "slowdown_cache": med["cache"] / med["plain"],
    }


def sensitivity(ref: str, store: Path, n: int) -> dict:
    one = run(ref, store, ["nop1", str(n)], "count").metrics["instructions"][0]
    three = run(ref, store, ["nop3", str(n)], "count").metrics["instructions"][0]
    return {"n": n, "nop1": one, "nop3": three, "difference": three - one, "expected": 2 * n}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument(
        "--loops", type=int, default=5_000_000, help="iterations of nop1 and cpuloop (determinism)"
    )
    ap.add_argument("--slowdown-rounds", type=int, default=5)
    ap.add_argument("--slowdown-loops", type=int, default=50_000_000, help="cpuloop iterations")
    ap.add_argument("--nops", type=int, default=1_000_000, help="sensitivity loop iterations")
    args = ap.parse_args()
    out_dir = HERE / "out"
    out_dir.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="instr-bench-") as tmp:
        work = Path(tmp)
        ref = build_image(work)
        store = work / "store"
        run(ref, store, ["true"])  # pull + unpack once
        doc = {
            "machine": {"cpus": os.cpu_count(), "kernel": os.uname().release},
            "loops": args.loops,
            "slowdown_loops": args.slowdown_loops,
            "determinism": [
                determinism(ref, store, args.rounds, argv, loaded)
                for argv in (["nop1", str(args.loops)], ["cpuloop", str(args.loops)])
                for loaded in (False, True)
            ],
            "slowdown": slowdown(ref, store, args.slowdown_rounds, args.slowdown_loops),
            "sensitivity": sensitivity(ref, store, args.nops),
        }
    (out_dir / "instructions.json").write_text(json.dumps(doc, indent=1))
    print(
        "| workload | machine | runs | instructions (median) | spread (max-min)/median "
        "| max-min | wall time CV |"
    )
    print("|---|---|---|---|---|---|---|")
    for d in doc["determinism"]:
        ins = d["instructions"]
        print(
            f"| `{' '.join(d['argv'])}` | {'other CPUs busy' if d['loaded'] else 'quiet'} | "
            f"{len(ins)} | {statistics.median(ins):,.0f} | {d['instructions_spread'] * 100:.5f} % "
            f"| {max(ins) - min(ins):,.0f} | {d['wall_time_cv'] * 100:.1f} % |"
        )
    s = doc["slowdown"]
    print(
        f"\nslowdown (median wall time, cpuloop {args.slowdown_loops:,}): plain {s['median']['plain']:.3f} s, "
        f"--instructions {s['median']['count']:.3f} s ({s['slowdown_count']:.1f}x), "
        f"--instructions=cache {s['median']['cache']:.3f} s ({s['slowdown_cache']:.1f}x)"
    )
    t = doc["sensitivity"]
    print(
        f"sensitivity: nop3 - nop1 = {t['difference']:,.0f} instructions for "
        f"{t['n']:,} iterations (expected {t['expected']:,})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
