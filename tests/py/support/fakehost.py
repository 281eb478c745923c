"""Fake sysfs/procfs trees for benchrun.host's tests, and a Root that writes to them as the kernel
does: a selector file ("always [madvise] never") moves its brackets, other files read back what
was written plus a newline, smt/control takes sibling threads offline, intel_pstate's no_turbo
lowers scaling_max_freq to the base frequency, and an IRQ directory holding a file "refuse"
refuses (EIO) affinity changes, as the kernel does for per-CPU interrupts."""

from __future__ import annotations

import errno
import hashlib
import os
import struct
from pathlib import Path
from typing import Optional

from benchrun.host.settings import CPU, Root, format_cpus, parse_cpus


class FakeKernel(Root):
    def write(self, rel: str, value: str) -> None:
        path = Path(self.abs(rel))
        if not path.is_file():
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path))
        if path.name == "smp_affinity_list" and (path.parent / "refuse").exists():
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(path))
        old = path.read_text()
        if "[" in old:
            words = old.replace("[", "").replace("]", "").split()
            if value not in words:
                raise OSError(errno.EINVAL, os.strerror(errno.EINVAL), str(path))
            new = " ".join(f"[{w}]" if w == value else w for w in words) + "\n"
        else:
            new = value + "\n"
        super().write(rel, new)
        if rel == f"{CPU}/smt/control":
            self._smt(value)
        if rel == f"{CPU}/intel_pstate/no_turbo":
            self._turbo(value == "1")

    def _smt(self, value: str) -> None:
        present = parse_cpus(self.read(f"{CPU}/present") or "")
        off = set()
        for c in present:
            sib = parse_cpus(self.read(f"{CPU}/cpu{c}/topology/thread_siblings_list") or str(c))
            if c != min(sib):
                off.add(c)
        online = present - off if value == "off" else present
        Root.write(self, f"{CPU}/online", format_cpus(online) + "\n")
        Root.write(self, f"{CPU}/smt/active", ("0" if value == "off" else "1") + "\n")

    def _turbo(self, off: bool) -> None:
        for c in parse_cpus(self.read(f"{CPU}/present") or ""):
            base = f"{CPU}/cpu{c}/cpufreq"
            if self.exists(f"{base}/scaling_max_freq"):
                hi = self.read(f"{base}/{'base_frequency' if off else 'cpuinfo_max_freq'}")
                Root.write(self, f"{base}/scaling_max_freq", f"{hi}\n")


def _w(root: Path, rel: str, text: str) -> None:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


def build(
    root: Path,
    *,
    cpus: int = 4,
    smt_threads: int = 1,
    driver: Optional[str] = "intel_pstate",
    vm: bool = False,
    irqs: tuple[int, ...] = (0, 1, 8, 9, 24, 25),
    refused_irqs: tuple[int, ...] = (0,),
) -> Path:
    """A fake / with ``cpus`` CPUs (``smt_threads`` per core: CPU c and c + cpus/threads are
    siblings), a frequency driver (intel_pstate, acpi-cpufreq, amd-pstate or None), cpuidle
    states, THP, the kernel sysctls, IRQs, /proc/cmdline, /proc/swaps and cpuinfo."""
    allc = format_cpus(range(cpus))
    _w(root, f"{CPU}/present", allc + "\n")
    _w(root, f"{CPU}/online", allc + "\n")
    if smt_threads > 1:
        _w(root, f"{CPU}/smt/control", "on\n")
        _w(root, f"{CPU}/smt/active", "1\n")
    else:
        _w(root, f"{CPU}/smt/control", "notsupported\n")
        _w(root, f"{CPU}/smt/active", "0\n")
    cores = cpus // smt_threads
    for c in range(cpus):
        sib = format_cpus(c % cores + k * cores for k in range(smt_threads))
        _w(root, f"{CPU}/cpu{c}/topology/thread_siblings_list", sib + "\n")
        idle = f"{CPU}/cpu{c}/cpuidle"
        for i, (name, lat) in enumerate((("POLL", 0), ("C1", 2), ("C6", 133))):
            _w(root, f"{idle}/state{i}/name", name + "\n")
            _w(root, f"{idle}/state{i}/latency", f"{lat}\n")
            _w(root, f"{idle}/state{i}/disable", "0\n")
        if driver is None:
            continue
        f = f"{CPU}/cpu{c}/cpufreq"
        _w(root, f"{f}/scaling_driver", driver + "\n")
        _w(root, f"{f}/cpuinfo_max_freq", "4500000\n")
        _w(root, f"{f}/base_frequency", "3000000\n")
        _w(root, f"{f}/scaling_max_freq", "4500000\n")
        _w(root, f"{f}/scaling_min_freq", "800000\n")
        if driver == "acpi-cpufreq":
            _w(root, f"{f}/scaling_governor", "ondemand\n")
            _w(
                root,
                f"{f}/scaling_available_governors",
                "conservative ondemand userspace " "powersave performance schedutil\n",
            )
        else:
            _w(root, f"{f}/scaling_governor", "powersave\n")
            _w(root, f"{f}/scaling_available_governors", "performance powersave\n")
            _w(root, f"{f}/energy_performance_preference", "balance_performance\n")
            _w(
                root,
                f"{f}/energy_performance_available_preferences",
                "default performance balance_performance balance_power power\n",
            )
        if driver == "amd-pstate":
            _w(root, f"{f}/boost", "1\n")
    if driver == "intel_pstate":
        _w(root, f"{CPU}/intel_pstate/no_turbo", "0\n")
        _w(root, f"{CPU}/intel_pstate/status", "active\n")
    elif driver == "acpi-cpufreq":
        _w(root, f"{CPU}/cpufreq/boost", "1\n")
    elif driver == "amd-pstate":
        _w(root, f"{CPU}/amd_pstate/status", "active\n")
    k = "proc/sys/kernel"
    for key, value in (
        ("randomize_va_space", "2"),
        ("perf_event_max_sample_rate", "100000"),
        ("nmi_watchdog", "1"),
        ("numa_balancing", "1"),
    ):
        _w(root, f"{k}/{key}", value + "\n")
    thp = "sys/kernel/mm/transparent_hugepage"
    _w(root, f"{thp}/enabled", "always [madvise] never\n")
    _w(root, f"{thp}/defrag", "always defer defer+madvise [madvise] never\n")
    cs = "sys/devices/system/clocksource/clocksource0"
    _w(root, f"{cs}/current_clocksource", "hpet\n")
    _w(root, f"{cs}/available_clocksource", "tsc hpet acpi_pm \n")
    _w(root, "proc/irq/default_smp_affinity", f"{(1 << cpus) - 1:x}\n")
    for irq in irqs:
        _w(root, f"proc/irq/{irq}/smp_affinity_list", allc + "\n")
        if irq in refused_irqs:
            _w(root, f"proc/irq/{irq}/refuse", "")
    _w(root, "proc/cmdline", "BOOT_IMAGE=/vmlinuz root=/dev/sda1 quiet\n")
    _w(root, "proc/swaps", "Filename\tType\tSize\tUsed\tPriority\n/swap\tfile\t1048572\t0\t-2\n")
    _w(root, "proc/1/comm", "systemd\n")
    flags = "fpu vme de pse tsc msr" + (" hypervisor" if vm else "")
    _w(root, "proc/cpuinfo", f"processor\t: 0\nmodel name\t: Fake CPU\nflags\t\t: {flags}\n")
    (root / "dev").mkdir(exist_ok=True)
    (root / "dev/cpu_dma_latency").write_bytes(struct.pack("<i", 2000000000))
    return root


def snapshot(root: Path) -> dict[str, str]:
    """{relative path: sha256 of its bytes} of every file (the journal's state dir excluded)."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            p = Path(dirpath) / name
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out
