"""host_noise.py: `benchrun host noise`'s figures on this machine, in three conditions.

  python bench/host_noise.py [--duration S] [--rounds N] [--cpu C]     # as root, ~N x 3 x S

Conditions, interleaved per round (order flipped each round):
  all      the calibration workloads on every CPU benchrun may use (the default of the command)
  one      pinned to CPU C (default: the highest-numbered: CPU 0 takes most interrupts)
  loaded   pinned to CPU C while another process spins on every other CPU (a busy housekeeping
           CPU: what a benchmark CPU sees from its neighbours without isolation)

Prints per condition and workload the median over rounds of n, CV, spread and MDC@30, and the
score; writes every document to bench/out/host_noise.json. Nothing is stored in the host state.
Figures and reading: docs/performance.md, "Host noise (issue 12)".
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path

from benchrun import noise


def _spin(cpu: int, stop: "multiprocessing.synchronize.Event") -> None:
    os.sched_setaffinity(0, {cpu})
    x = 1
    while not stop.is_set():
        for _ in range(100_000):
            x = (x * 1103515245 + 12345) & 0xFFFFFFFF


def measure(condition: str, cpu: int, duration: float, store: str) -> dict:
    allowed = sorted(os.sched_getaffinity(0))
    if condition == "all":
        return noise.measure(duration=duration, store=store).doc
    stop = multiprocessing.Event()
    spinners = []
    if condition == "loaded":
        for other in allowed:
            if other != cpu:
                p = multiprocessing.Process(target=_spin, args=(other, stop), daemon=True)
                p.start()
                spinners.append(p)
        time.sleep(0.2)
    try:
        return noise.measure(duration=duration, cpus=[cpu], store=store).doc
    finally:
        stop.set()
        for p in spinners:
            p.join(5)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=6.0, help="seconds per measurement")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cpu", type=int, default=max(os.sched_getaffinity(0)))
    ap.add_argument("--store", default=str(Path("bench/out/store").resolve()))
    args = ap.parse_args()
    conditions = ["all", "one", "loaded"]
    docs: dict[str, list[dict]] = {c: [] for c in conditions}
    for r in range(args.rounds):
        order = conditions if r % 2 == 0 else conditions[::-1]
        for c in order:
            docs[c].append(measure(c, args.cpu, args.duration, args.store))
            print(f"round {r + 1} {c}: score {docs[c][-1]['score']:.4f}", file=sys.stderr)
    print(
        f"Host noise: {args.rounds} rounds x {args.duration:g}s, CPUs "
        f"{noise.format_cpu_list(os.sched_getaffinity(0))}, pinned CPU {args.cpu}; "
        "medians over rounds"
    )
    print(
        f"{'condition':<8} {'workload':<8} {'n':>5} {'median':>9} {'CV':>7} {'spread':>7} "
        f"{'MDC@10':>7} {'MDC@30':>7} {'MDC@100':>7}"
    )
    for c in conditions:
        for w in docs[c][0]["workloads"]:

            def med(key: str, sub: str = "") -> float:
                vals = [d["workloads"][w][key] for d in docs[c]]
                return statistics.median(v[sub] if sub else v for v in vals)

            print(
                f"{c:<8} {w:<8} {med('n'):>5.0f} {med('median_s') * 1e3:>7.3f}ms "
                f"{med('cv'):>7.2%} {med('spread'):>7.2%} {med('mdc', '10'):>7.2%} "
                f"{med('mdc', '30'):>7.2%} {med('mdc', '100'):>7.2%}"
            )
        scores = [d["score"] for d in docs[c]]
        print(
            f"{c:<8} {'score':<8} median {statistics.median(scores):.2%} "
            f"(rounds: {' '.join(f'{s:.2%}' for s in scores)})"
        )
    out = Path("bench/out")
    out.mkdir(parents=True, exist_ok=True)
    (out / "host_noise.json").write_text(json.dumps(docs, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
