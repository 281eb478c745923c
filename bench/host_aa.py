"""A/A fidelity of a tuned host (issue 12); never a pass/fail test.

The same CPU-bound workload (bench/cpuloop.c, static, timing itself) runs `--rounds` times in each
of two conditions, interleaved round by round (the order alternates), while a second process keeps
the housekeeping CPU busy:

- untuned: the host as it is, the run on any CPU;
- tuned: `benchrun host tune` applied for every CPU but the housekeeping one (its settings and
  the CPU partition of those CPUs, journaled, reset after each run whatever happens), the run
  given one CPU of the partition (`vcpus=1`).

Reported per condition: mean, CV, min-to-median spread and the minimum detectable change at 95 %
confidence and 80 % power for the number of repetitions (benchrun.power), and the CV ratio.

Run as root from the project venv:  python bench/host_aa.py [--rounds 30] [--loops N]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import benchrun  # noqa: E402
from benchrun import power  # noqa: E402
from benchrun.host import reset, tune  # noqa: E402
from sandbox_bench import build_image  # noqa: E402


def load_housekeeping(cpu: int) -> subprocess.Popen:
    """A busy loop pinned to the housekeeping CPU, bounded (killed at the end, or after 30 min)."""
    code = "import os, time\nend = time.monotonic() + 1800\nwhile time.monotonic() < end: pass\n"
    return subprocess.Popen(
        [sys.executable, "-c", code], preexec_fn=lambda: os.sched_setaffinity(0, {cpu})
    )


def figures(xs: list[float]) -> dict:
    mean = statistics.fmean(xs)
    cv = statistics.stdev(xs) / mean
    med = statistics.median(xs)
    return {
        "n": len(xs),
        "mean": mean,
        "median": med,
        "cv": cv,
        "spread": (med - min(xs)) / med,
        "mdc": power.minimum_detectable_change(len(xs), cv),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--loops", type=int, default=150_000_000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    online = sorted(os.sched_getaffinity(0))
    if len(online) < 2:
        print("needs at least 2 CPUs (one for housekeeping)", file=sys.stderr)
        return 2
    housekeeping, bench_cpus = online[0], online[1:]
    with tempfile.TemporaryDirectory(prefix="benchrun-aa-") as tmp:
        work = Path(tmp)
        ref, _ = build_image(work)
        store = work / "store"
        benchrun.pull(ref, store=store)
        argv = ["/cpuloop", str(args.loops)]
        times: dict[str, list[float]] = {"untuned": [], "tuned": []}
        journal = work / "tune-journal.json"
        loader = load_housekeeping(housekeeping)
        try:
            for i in range(args.rounds):
                order = ["untuned", "tuned"] if i % 2 == 0 else ["tuned", "untuned"]
                for cond in order:
                    if cond == "tuned":
                        # Settings and the CPU partition of bench_cpus, both undone by reset.
                        tune(cpus=bench_cpus, journal=journal)
                        try:
                            r = benchrun.run(ref, argv, store=store, pull="never", vcpus=1)
                        finally:
                            reset(journal=journal)
                    else:
                        r = benchrun.run(ref, argv, store=store, pull="never")
                    if not r.ok:
                        raise SystemExit(f"{cond}: {r.exit_code} {r.stderr!r}")
                    times[cond].append(float(r.stdout.decode().strip()))
        finally:
            loader.send_signal(signal.SIGKILL)
            loader.wait()
            if journal.exists():
                reset(journal=journal)
    out = {c: figures(xs) for c, xs in times.items()}
    out["cv_ratio_untuned_over_tuned"] = out["untuned"]["cv"] / out["tuned"]["cv"]
    out["cpus"] = {"housekeeping": housekeeping, "benchmark": bench_cpus}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    for c in ("untuned", "tuned"):
        f = out[c]
        print(
            f"{c:8s} n={f['n']} mean {f['mean']*1e3:.1f} ms  CV {f['cv']*100:.2f} %  "
            f"spread {f['spread']*100:.2f} %  MDC@{f['n']} {f['mdc']*100:.2f} %"
        )
    print(f"CV untuned / tuned: {out['cv_ratio_untuned_over_tuned']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
