"""Sandbox benchmarks (issue 3), each against a peer in the same run; never a pass/fail test.

1. start-up: a warm run of `true` in a cached image, `benchrun.run()` (namespaces + overlay +
   cgroup + seccomp, measured around the library call) vs `bwrap --unshare-all` over the same
   unpacked rootfs (measured around the bwrap process). Also the CLI (`benchrun run`, which adds
   Python start-up) for reference. Target: benchrun <= 2x bwrap.
2. fidelity: a CPU-bound loop (bench/cpuloop.c, static) timing itself, inside the sandbox vs bare on
   the host, interleaved. Target: mean overhead <= 1%, CV no worse than 1.2x bare.

Run as root from the project venv:  python bench/sandbox_bench.py [--rounds N] [--loops N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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


def build_image(work: Path) -> tuple[str, Path]:
    exe = work / "cpuloop"
    subprocess.run(["cc", "-O2", "-static", "-o", str(exe), str(HERE / "cpuloop.c")], check=True)
    # proc/dev/sys mount points: bwrap --ro-bind cannot create them in a read-only root.
    layer = Layer("gzip").dir("proc").dir("dev").dir("sys").file("cpuloop", exe.read_bytes(),
                                                                  mode=0o755)
    info = write_layout(work / "layout", [busybox_layer(), layer], config={"Env": ["PATH=/bin"]})
    return info.ref, exe


def stats(xs: list[float]) -> dict:
    m = statistics.mean(xs)
    return {"n": len(xs), "mean": m, "median": statistics.median(xs), "min": min(xs),
            "max": max(xs), "cv": statistics.stdev(xs) / m if len(xs) > 1 and m else 0.0}


def startup(ref: str, store: Path, rootfs: Path, rounds: int) -> dict:
    bwrap = shutil.which("bwrap")
    cmd_bwrap = [bwrap, "--unshare-all", "--die-with-parent", "--ro-bind", str(rootfs), "/",
                 "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "/bin/true"]
    lib, nodisk, bw, cli, phases = [], [], [], [], []
    for _ in range(3):  # warm all
        benchrun.run(ref, ["/bin/true"], store=store)
        benchrun.run(ref, ["/bin/true"], store=store, disk="unlimited")
        subprocess.run(cmd_bwrap, check=True)
    for i in range(rounds):
        # The default run (with its disk limit: an ext4 loop filesystem for the writable layer)
        # and the same with --disk unlimited (the upper dir on the store's filesystem), rotated.
        order = [("lib", "nodisk", "bwrap"), ("bwrap", "lib", "nodisk"),
                 ("nodisk", "bwrap", "lib")][i % 3]
        for who in order:
            t = time.perf_counter()
            if who in ("lib", "nodisk"):
                kw = {"disk": "unlimited"} if who == "nodisk" else {}
                r = benchrun.run(ref, ["/bin/true"], store=store, **kw)
                (lib if who == "lib" else nodisk).append(time.perf_counter() - t)
                assert r.exit_code == 0
                if who == "lib":
                    phases.append(r.phases)
            else:
                subprocess.run(cmd_bwrap, check=True)
                bw.append(time.perf_counter() - t)
    for _ in range(max(3, rounds // 4)):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "benchrun.cli", "run", "--store", str(store), ref,
                        "/bin/true"], check=True)
        cli.append(time.perf_counter() - t)
    phase_med = {k: statistics.median(p[k] for p in phases) for k in phases[0]}
    return {"benchrun_run": stats(lib), "benchrun_run_disk_unlimited": stats(nodisk),
            "bwrap": stats(bw), "benchrun_cli": stats(cli),
            "benchrun_phases_median": phase_med,
            "ratio_median": statistics.median(lib) / statistics.median(bw),
            "ratio_disk_unlimited_median": statistics.median(nodisk) / statistics.median(bw)}


def fidelity(ref: str, store: Path, exe: Path, rounds: int, loops: int) -> dict:
    inside, bare = [], []
    for i in range(rounds):
        order = ("sandbox", "bare") if i % 2 == 0 else ("bare", "sandbox")
        for who in order:
            if who == "sandbox":
                r = benchrun.run(ref, ["/cpuloop", str(loops)], store=store, vcpus=1)
                inside.append(float(r.stdout))
            else:
                out = subprocess.run(["taskset", "-c", "0", str(exe), str(loops)], check=True,
                                     capture_output=True, text=True).stdout
                bare.append(float(out))
    s_in, s_bare = stats(inside), stats(bare)
    return {"sandbox": s_in, "bare": s_bare, "overhead_mean": s_in["mean"] / s_bare["mean"] - 1,
            "cv_ratio": s_in["cv"] / s_bare["cv"] if s_bare["cv"] else None}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--fidelity-rounds", type=int, default=20)
    ap.add_argument("--loops", type=int, default=300_000_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="benchrun-sbench-") as tmp:
        work = Path(tmp)
        ref, exe = build_image(work)
        store = work / "store"
        img = benchrun.pull(ref, store=store)
        result = {"machine": {"nproc": os.cpu_count(), "kernel": os.uname().release},
                  "startup": startup(ref, store, img.rootfs, args.rounds),
                  "fidelity": (fidelity(ref, store, exe, args.fidelity_rounds, args.loops)
                               if args.fidelity_rounds else None)}
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    (out / "sandbox_bench.json").write_text(json.dumps(result, indent=2))
    s, f = result["startup"], result["fidelity"]
    print(f"start-up (warm `true`): benchrun.run {s['benchrun_run']['median']*1e3:.1f} ms, "
          f"bwrap {s['bwrap']['median']*1e3:.1f} ms, ratio {s['ratio_median']:.2f} "
          f"(CLI incl. Python start-up {s['benchrun_cli']['median']*1e3:.0f} ms)")
    print(f"  --disk unlimited: {s['benchrun_run_disk_unlimited']['median']*1e3:.1f} ms, "
          f"ratio {s['ratio_disk_unlimited_median']:.2f}")
    print("  benchrun phases (median ms): " + ", ".join(
        f"{k} {v*1e3:.1f}" for k, v in s["benchrun_phases_median"].items()))
    if f is None:
        return 0
    print(f"fidelity: sandbox mean {f['sandbox']['mean']:.4f}s cv {f['sandbox']['cv']:.4f}; bare mean "
          f"{f['bare']['mean']:.4f}s cv {f['bare']['cv']:.4f}; overhead {f['overhead_mean']*100:+.2f}%, "
          f"cv ratio {f['cv_ratio'] if f['cv_ratio'] is None else round(f['cv_ratio'], 2)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
