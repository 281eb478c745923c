"""MicroVM benchmarks (issue 4), each against a peer in the same run; never a pass/fail test.

1. boot-to-result: a warm `benchrun.run(backend="vm")` of `echo hi` (kernel, initramfs and ext4
   cached), measured around the library call, vs a bare `qemu-system-x86_64 -M microvm` booting the
   same kernel with the same kernel command line and a minimal initramfs (static busybox as /init:
   echo, then reboot -f, which ends QEMU under -no-reboot). Interleaved rounds; medians; ratio.
   benchrun's phases (prepare, boot, run, collect+shutdown) break its time down. Target <= 1.3x.
2. rootfs: image -> ext4. benchrun: pull + unpack from an OCI layout into a fresh store, then the
   ext4 build (Result.vm["rootfs_time"] of the first run with an empty ext4 cache); peer: `umoci
   unpack` of the same layout + `mkfs.ext4 -d` of the tree with the same options. Target <= 0.5x;
   the cached lookup (rootfs_time of a warm run) <= 10 ms.

Run as root from the project venv:  python bench/vm_bench.py [--rounds N]
Both backends use TCG here (no vmx/svm): the ratio, not the absolute time, is the figure.
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

SHARED_CACHE = Path(os.environ.get("BENCHRUN_TEST_CACHE", "/var/tmp/benchrun-test-cache")) / "vm"


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def python_layer(limit_bytes: int = 40 << 20) -> Layer:
    """A medium layer: the host's Python standard library sources (thousands of small files)."""
    layer = Layer("gzip")
    root = Path("/usr/lib/python3.11")
    total = 0
    for p in sorted(root.rglob("*.py")):
        if total > limit_bytes or "test" in p.parts:
            continue
        rel = "usr/lib/python3.11/" + str(p.relative_to(root))
        data = p.read_bytes()
        layer.file(rel, data)
        total += len(data)
    return layer


def kernel() -> Path:
    """The Debian kernel benchrun provisioned into the shared cache (the bare peer boots it too)."""
    found = sorted((SHARED_CACHE / "kernels").glob("*/vmlinuz"))
    if not found:
        raise SystemExit("no provisioned kernel: run one `benchrun run --backend vm` first")
    return found[-1]


def bare_initramfs(work: Path) -> Path:
    root = work / "bare-root"
    (root / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy("/bin/busybox", root / "bin" / "busybox")
    init = root / "init"
    init.write_text("#!/bin/busybox sh\n/bin/busybox echo hi\n/bin/busybox reboot -f\n")
    init.chmod(0o755)
    out = work / "bare.cpio"
    with open(out, "wb") as f:
        files = subprocess.run(["find", "."], cwd=root, capture_output=True, check=True).stdout
        subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=root, input=files, stdout=f,
                       check=True)
    return out


def bare_boot(vmlinuz: Path, initrd: Path, tsc_khz: int, work: Path) -> float:
    cmdline = ("console=ttyS0 quiet loglevel=3 panic=-1 reboot=t tsc=reliable no_timer_check "
               f"i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd 8250.nr_uarts=1 "
               f"random.trust_cpu=on rdinit=/init tsc_early_khz={tsc_khz}")
    log = work / "bare-console.log"
    t0 = time.perf_counter()
    subprocess.run(["qemu-system-x86_64", "-M", "microvm,accel=tcg,x-option-roms=off", "-cpu",
                    "max", "-smp", "1", "-m", "1024M", "-nodefaults", "-no-user-config",
                    "-display", "none", "-no-reboot", "-chardev", f"file,id=c,path={log}",
                    "-serial", "chardev:c", "-kernel", str(vmlinuz), "-initrd", str(initrd),
                    "-append", cmdline], check=True, timeout=120)
    elapsed = time.perf_counter() - t0
    if "hi" not in log.read_text(errors="replace"):
        raise SystemExit("bare boot did not print hi: " + log.read_text(errors="replace")[-500:])
    return elapsed


def tsc_khz() -> int:
    # The same measurement benchrun makes (vm/config.cpp), done here in Python: 20 ms window.
    t0, c0 = time.clock_gettime_ns(time.CLOCK_MONOTONIC_RAW), _rdtsc()
    time.sleep(0.05)
    t1, c1 = time.clock_gettime_ns(time.CLOCK_MONOTONIC_RAW), _rdtsc()
    return int((c1 - c0) * 1e6 / (t1 - t0))


def _rdtsc() -> int:
    # Python cannot read the TSC: a tiny C helper compiled on the fly does (process start-up
    # cancels out over the 50 ms window to well under 1%).
    return int(subprocess.run([str(_rdtsc_exe())], capture_output=True, check=True).stdout)


_RDTSC: list[Path] = []


def _rdtsc_exe() -> Path:
    if not _RDTSC:
        d = Path(tempfile.mkdtemp(prefix="rdtsc-"))
        src = d / "r.c"
        src.write_text('#include <stdio.h>\n#include <x86intrin.h>\n'
                       'int main(void){printf("%llu\\n",(unsigned long long)__rdtsc());return 0;}\n')
        subprocess.run(["cc", "-O2", "-o", str(d / "r"), str(src)], check=True)
        _RDTSC.append(d / "r")
    return _RDTSC[0]


def boot_to_result(ref: str, store: Path, work: Path, rounds: int) -> dict:
    vmlinuz = kernel()
    initrd = bare_initramfs(work)
    khz = tsc_khz()
    benchrun.run(ref, ["echo", "hi"], backend="vm", store=store, timeout=120)  # warm the caches
    ours, bare, phases = [], [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        r = benchrun.run(ref, ["echo", "hi"], backend="vm", store=store, timeout=120)
        ours.append(time.perf_counter() - t0)
        assert r.ok and r.stdout == b"hi\n", r
        phases.append({"prepare": r.phases["prepare"], "boot": r.phases["start"],
                       "run": r.phases["run"], "collect+shutdown": r.phases["collect"],
                       "rootfs (cache hit)": r.vm["rootfs_time"]})
        bare.append(bare_boot(vmlinuz, initrd, khz, work))
    return {
        "benchrun_median_s": round(median(ours), 3),
        "bare_qemu_median_s": round(median(bare), 3),
        "ratio": round(median(ours) / median(bare), 2),
        "phases_median_s": {k: round(median([p[k] for p in phases]), 4) for k in phases[0]},
        "rounds": rounds,
    }


def rootfs_build(layout: Path, ref: str, work: Path, vm_cache: Path) -> dict:
    # benchrun: fresh store, pull+unpack, then ext4 (empty ext4 cache, kernels shared).
    store = work / "store-rootfs"
    t0 = time.perf_counter()
    benchrun.pull(ref, store=store)
    pull_s = time.perf_counter() - t0
    r = benchrun.run(ref, ["true"], backend="vm", store=store, timeout=120)
    assert r.ok and r.vm and not r.vm["rootfs_cached"]
    ext4_s = r.vm["rootfs_time"]
    warm = benchrun.run(ref, ["true"], backend="vm", store=store, timeout=120)
    cached_s = warm.vm["rootfs_time"]
    # peer: umoci unpack + mkfs.ext4 -d with the same options.
    bundle = work / "bundle"
    t0 = time.perf_counter()
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:latest", str(bundle)], check=True,
                   capture_output=True)
    t1 = time.perf_counter()
    tree = bundle / "rootfs"
    size_mb = max(64, int(subprocess.run(["du", "-sm", str(tree)], capture_output=True, text=True,
                                         check=True).stdout.split()[0]) * 2 + 256)
    img = work / "peer.ext4"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(tree), "-E",
                    "lazy_itable_init=0,lazy_journal_init=0,root_owner=0:0", "-O", "^has_journal",
                    "-b", "4096", "-m", "0", str(img), f"{size_mb}M"], check=True)
    t2 = time.perf_counter()
    ours = pull_s + ext4_s
    peer = t2 - t0
    return {
        "benchrun_pull_unpack_s": round(pull_s, 3),
        "benchrun_ext4_s": round(ext4_s, 3),
        "benchrun_total_s": round(ours, 3),
        "umoci_unpack_s": round(t1 - t0, 3),
        "mkfs_ext4_d_s": round(t2 - t1, 3),
        "peer_total_s": round(peer, 3),
        "ratio": round(ours / peer, 2),
        "cached_lookup_ms": round(cached_s * 1000, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vm-bench-"))
    vm_cache = work / "vm-cache"
    vm_cache.mkdir()
    # Share the downloaded kernel; everything else (initramfs, ext4) starts cold in this cache.
    if (SHARED_CACHE / "kernels").exists():
        (vm_cache / "kernels").symlink_to(SHARED_CACHE / "kernels")
    os.environ["BENCHRUN_VM_CACHE"] = str(vm_cache)
    try:
        small = write_layout(work / "busybox", [busybox_layer()], config={"Env": ["PATH=/bin"]})
        medium_layout = work / "python"
        medium = write_layout(medium_layout, [busybox_layer(), python_layer()],
                              config={"Env": ["PATH=/bin"]})
        out = {
            "rootfs_busybox": rootfs_build(work / "busybox", small.ref, work / "rb", vm_cache),
            "rootfs_python_stdlib": rootfs_build(medium_layout, medium.ref, work / "rp", vm_cache),
        }
        store = work / "store-boot"
        benchrun.pull(small.ref, store=store)
        out["boot_to_result"] = boot_to_result(small.ref, store, work, args.rounds)
        print(json.dumps(out, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
