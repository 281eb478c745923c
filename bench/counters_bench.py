"""Counter overhead (issue 13): a CPU-bound loop (bench/cpuloop.c, static, timing itself) with the
default performance counters and with `--counters none`, interleaved (the order flips every
round), on the same pinned CPU. Reports the overhead of counting in % of wall time (the run's
wall_time metric) and of the loop's own timing, as medians and as the median of the per-round
paired differences. Target: <= 1 %. Never a pass/fail test.

Without a hardware PMU (this machine) only the software counters are opened; the hardware ones
are absent (one notice) and cost nothing. The figure is then the software counters' cost.

Run as root from the project venv:
    python bench/counters_bench.py [--rounds 15] [--loops 300000000] [--backend sandbox|vm]
    python bench/counters_bench.py --pingpong 100000   # the worst case: context switches
Writes bench/out/counters_bench.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "py"))

import benchrun  # noqa: E402
from benchrun.stats import bootstrap_ci  # noqa: E402
from support.ocilayout import Layer, busybox_layer, write_layout  # noqa: E402


def build_image(work: Path) -> str:
    exe = work / "cpuloop"
    subprocess.run(["cc", "-O2", "-static", "-o", str(exe), str(HERE / "cpuloop.c")], check=True)
    pp = work / "pingpong"
    subprocess.run(["cc", "-O2", "-static", "-o", str(pp), str(HERE / "pingpong.c")], check=True)
    layer = (
        Layer("gzip")
        .file("cpuloop", exe.read_bytes(), mode=0o755)
        .file("pingpong", pp.read_bytes(), mode=0o755)
    )
    return write_layout(
        work / "layout", [busybox_layer(), layer], config={"Env": ["PATH=/bin"]}
    ).ref


def pct(a: float, b: float) -> float:
    return (a / b - 1) * 100


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--loops", type=int, default=300_000_000)
    ap.add_argument(
        "--on",
        default=None,
        metavar="LIST",
        help="the counters of the 'on' runs (a --counters list; default: the default set)",
    )
    ap.add_argument(
        "--pingpong",
        type=int,
        default=0,
        metavar="N",
        help="instead of the loop: N pipe round trips between two processes (~2N context "
        "switches), the counters' worst case",
    )
    ap.add_argument("--backend", default="sandbox")
    ap.add_argument(
        "--cpu",
        type=int,
        default=max(os.sched_getaffinity(0)),
        help="the CPU every run is pinned to (default: the highest this process may use)",
    )
    args = ap.parse_args()
    out_dir = HERE / "out"
    out_dir.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="counters-bench-") as tmp:
        work = Path(tmp)
        ref = build_image(work)
        store = work / "store"
        benchrun.pull(ref, store=store)
        modes = {"on": args.on, "off": "none"}  # None: the default set
        samples: dict[str, list[dict]] = {m: [] for m in modes}
        notices: set[str] = set()
        opened: list[str] = []

        def run(mode: str) -> None:
            r = benchrun.run(
                ref,
                (
                    ["/pingpong", str(args.pingpong)]
                    if args.pingpong
                    else ["/cpuloop", str(args.loops)]
                ),
                store=store,
                backend=args.backend,
                counters=modes[mode],
                cpuset_cpus=[args.cpu],
                cpu_wait=600,
                timeout=600,
            )
            assert r.ok, (r.stderr, r.notices)
            samples[mode].append(
                {
                    "wall": r.wall_time,
                    "self": r.wall_time if args.pingpong else float(r.stdout.decode()),
                    "cpu": r.cpu_user + r.cpu_system,
                    "task_clock": r.metrics["task_clock"].value
                    if "task_clock" in r.metrics
                    else None,
                    "context_switches": (
                        r.metrics["context_switches"].value
                        if "context_switches" in r.metrics
                        else None
                    ),
                }
            )
            if mode == "on":
                notices.update(n for n in r.notices if n.startswith("counters"))
                opened[:] = sorted(
                    k
                    for k, m in r.metrics.items()
                    if m.unit in ("count", "ns", "ratio") and k not in ("wall_time",)
                )

        run("on")  # warm-up: page cache, rootfs cache
        samples["on"].clear()
        for i in range(args.rounds):
            for mode in ("on", "off") if i % 2 == 0 else ("off", "on"):
                run(mode)

    res: dict = {
        "machine": {
            "node": platform.node(),
            "kernel": platform.release(),
            "cpus": os.cpu_count(),
            "pmu": os.path.exists("/sys/bus/event_source/devices/cpu"),
        },
        "backend": args.backend,
        "loops": args.loops,
        "pingpong": args.pingpong,
        "on": args.on or "default",
        "rounds": args.rounds,
        "cpu": args.cpu,
        "counters_measured": opened,
        "notices": sorted(notices),
        "samples": samples,
    }
    for key in ("wall", "self", "cpu"):
        on = [s[key] for s in samples["on"]]
        off = [s[key] for s in samples["off"]]
        paired = [pct(a, b) for a, b in zip(on, off)]
        lo, hi = bootstrap_ci(paired)  # of the mean per-round difference
        res[key] = {
            "median_on": statistics.median(on),
            "median_off": statistics.median(off),
            "overhead_pct_of_medians": pct(statistics.median(on), statistics.median(off)),
            "overhead_pct_paired_median": statistics.median(paired),
            "overhead_pct_paired_mean": statistics.mean(paired),
            "overhead_pct_paired_mean_ci95": [lo, hi],
            "cv_on": statistics.stdev(on) / statistics.mean(on),
            "cv_off": statistics.stdev(off) / statistics.mean(off),
        }
    res["load_avg_end"] = os.getloadavg()
    (out_dir / "counters_bench.json").write_text(json.dumps(res, indent=1))
    print(
        f"backend {args.backend}, {args.rounds} interleaved rounds, "
        f"{f'pingpong {args.pingpong}' if args.pingpong else f'loop {args.loops}'}, "
        f"CPU {args.cpu}, PMU {'yes' if res['machine']['pmu'] else 'no'}, "
        f"load average at the end {res['load_avg_end'][0]:.1f}"
    )
    print(f"counters measured: {', '.join(opened)}")
    for key, what in (
        ("wall", "wall_time (run)"),
        ("self", "loop's own time"),
        ("cpu", "cpu user+system"),
    ):
        f = res[key]
        ci = f["overhead_pct_paired_mean_ci95"]
        print(
            f"{what:16s} median on {f['median_on']:.4f} s, off {f['median_off']:.4f} s: "
            f"overhead of medians {f['overhead_pct_of_medians']:+.2f} %, paired median "
            f"{f['overhead_pct_paired_median']:+.2f} %, paired mean "
            f"{f['overhead_pct_paired_mean']:+.2f} % [95 % CI {ci[0]:+.2f}, {ci[1]:+.2f}]; "
            f"CV on {f['cv_on']*100:.2f} %, off {f['cv_off']*100:.2f} %"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
