"""The cost of CPU allocation per run (issue 12): sandbox runs of `true`, interleaved, without CPUs
asked for vs with `vcpus=1` (a per-CPU flock lease, the partition read, the runner thread moved to
the housekeeping CPUs and back, the run's cpuset written). Compares the "prepare" phase, which
holds all of it, and the whole execute() time: medians and the difference.

Run as root from the project venv:  python bench/cpu_alloc_bench.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "py"))

import benchrun  # noqa: E402
from benchrun.runner import execute, make_spec  # noqa: E402
from support.ocilayout import busybox_layer, write_layout  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=40)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        info = write_layout(Path(tmp) / "img", [busybox_layer()])
        store = Path(tmp) / "store"
        benchrun.pull(info.ref, store=store)
        spec = {
            "plain": make_spec(info.ref, ["true"], store=store),
            "vcpus=1": make_spec(info.ref, ["true"], store=store, vcpus=1),
        }
        prepare: dict[str, list[float]] = {k: [] for k in spec}
        phases: dict[str, dict[str, list[float]]] = {k: {} for k in spec}
        total: dict[str, list[float]] = {k: [] for k in spec}
        for k, s in spec.items():  # warm-up
            execute(s)
        for _ in range(args.runs):
            for k, s in spec.items():
                t = time.perf_counter()
                r = execute(s)
                total[k].append(time.perf_counter() - t)
                assert r.ok
                prepare[k].append(r.phases["prepare"])
                for ph, v in r.phases.items():
                    phases[k].setdefault(ph, []).append(v)
        for k in spec:
            print(
                f"{k:8s} prepare median {statistics.median(prepare[k]) * 1e3:7.2f} ms   "
                f"execute median {statistics.median(total[k]) * 1e3:7.2f} ms"
            )
        for k in spec:
            print(
                f"{k:8s} phases (median ms): "
                + "  ".join(f"{ph} {statistics.median(v) * 1e3:.2f}" for ph, v in phases[k].items())
            )
        d_prep = statistics.median(prepare["vcpus=1"]) - statistics.median(prepare["plain"])
        d_tot = statistics.median(total["vcpus=1"]) - statistics.median(total["plain"])
        print(
            f"difference: prepare {d_prep * 1e3:+.2f} ms, execute {d_tot * 1e3:+.2f} ms "
            f"({args.runs} runs each, interleaved)"
        )


if __name__ == "__main__":
    main()
