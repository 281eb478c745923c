"""The host settings that affect measurement (`benchrun host check`): for each its current value,
the recommended value, why (one line), and whether `benchrun host tune` can set it here.

Every path is read under a root directory laid out like / (``sys/``, ``proc/``, ``dev/``), "/" by
default, so tests point it at a fake tree. A setting the host does not have (no cpufreq in a VM,
no SMT control, ...) is reported with ``current=None`` ("unavailable"), never guessed. The order
of catalogue() is the order `tune` applies changes in (and `reset` undoes them in reverse): SMT
first (it takes CPUs offline), turbo before the minimum frequency (intel_pstate lowers the maximum
when turbo goes off), the per-CPU settings, then the host-wide ones.
"""

from __future__ import annotations

import functools
import os
import struct
from dataclasses import dataclass
from typing import Iterable, Iterator, Optional

from benchrun.errors import ConfigError

CPU = "sys/devices/system/cpu"
THP = "sys/kernel/mm/transparent_hugepage"
KERNEL = "proc/sys/kernel"
CLOCKSOURCE = "sys/devices/system/clocksource/clocksource0"
CMDLINE_WHY = "keeps the scheduler, timer ticks and RCU callbacks off the benchmark CPUs"
GOVERNOR_WHY = "other governors change the frequency with the load: the benchmark's speed with it"
CMDLINE_NOTE = "kernel command line: set it in the boot loader and reboot"


@dataclass(frozen=True)
class Setting:
    """One setting of one target (a CPU, an IRQ, or "" for host-wide ones). ``current`` is None
    when the host does not have it; ``recommended`` None when there is nothing to recommend
    (facts such as "is this a VM"). ``current`` of a settable setting is the value to write back
    to restore it. ``ok`` overrides the equality test (e.g. CPU sets)."""

    name: str
    target: str
    path: str  # relative to the root; "" when derived from several files
    current: Optional[str]
    recommended: Optional[str]
    why: str
    settable: bool
    note: str = ""  # why it is not settable or unavailable, or a caveat
    ok: Optional[bool] = None

    @property
    def available(self) -> bool:
        return self.current is not None

    @property
    def matches(self) -> bool:
        if self.current is None or self.recommended is None:
            return True
        return self.ok if self.ok is not None else self.current == self.recommended

    @property
    def differs(self) -> bool:
        """Differs from the recommendation and `tune` can change it."""
        return self.settable and not self.matches

    @property
    def status(self) -> str:
        if self.current is None:
            return "unavailable"
        if self.recommended is None:
            return "info"
        if self.matches:
            return "ok"
        return "differs" if self.settable else "not settable"

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "target": self.target,
            "path": "/" + self.path if self.path else None,
            "current": self.current,
            "recommended": self.recommended,
            "status": self.status,
            "settable": self.settable,
            "why": self.why,
            "note": self.note,
        }


class Root:
    """Reads and writes files under a directory laid out like / (tests inject fake trees)."""

    def __init__(self, path: "str | os.PathLike[str]" = "/") -> None:
        self.path = os.path.abspath(os.fspath(path))

    def abs(self, rel: str) -> str:
        return os.path.join(self.path, rel)

    def read(self, rel: str) -> Optional[str]:
        """The file's text, stripped; None when it is absent or unreadable."""
        try:
            with open(self.abs(rel), "rb") as f:
                return f.read().decode("utf-8", "replace").strip()
        except OSError:
            return None

    def read_bytes(self, rel: str, size: int) -> Optional[bytes]:
        try:
            with open(self.abs(rel), "rb") as f:
                return f.read(size)
        except OSError:
            return None

    def write(self, rel: str, value: str) -> None:
        """Writes ``value`` as a sysfs/procfs write does: one write(2), no file creation."""
        fd = os.open(self.abs(rel), os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)

    def exists(self, rel: str) -> bool:
        return os.path.exists(self.abs(rel))

    def listdir(self, rel: str) -> list[str]:
        try:
            return os.listdir(self.abs(rel))
        except OSError:
            return []


def as_root(root: "Root | str | os.PathLike[str]") -> Root:
    return root if isinstance(root, Root) else Root(root)


# --- CPU lists ----------------------------------------------------------------------------------


def parse_cpus(text: str, what: str = "CPU list") -> frozenset[int]:
    """ "0-3,5" -> {0, 1, 2, 3, 5} (the kernel's cpulist format); ConfigError when malformed."""
    out: set[int] = set()
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            a = int(lo)
            b = int(hi) if sep else a
        except ValueError:
            raise ConfigError(f"{what} '{text}': expected CPU numbers such as 1-3,5") from None
        if a < 0 or b < a or b > 65535:
            raise ConfigError(f"{what} '{text}': bad range '{part}'")
        out.update(range(a, b + 1))
    return frozenset(out)


def format_cpus(cpus: Iterable[int]) -> str:
    """{0, 1, 2, 5} -> "0-2,5"."""
    s = sorted(set(cpus))
    out: list[str] = []
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and s[j + 1] == s[j] + 1:
            j += 1
        out.append(str(s[i]) if i == j else f"{s[i]}-{s[j]}")
        i = j + 1
    return ",".join(out)


def _mask_cpus(text: str) -> Optional[frozenset[int]]:
    """A hex CPU mask ("00000000,00000003") as a set; None when malformed."""
    try:
        mask = int(text.replace(",", ""), 16)
    except ValueError:
        return None
    return frozenset(i for i in range(mask.bit_length()) if mask >> i & 1)


def _mask(cpus: Iterable[int]) -> str:
    return f"{sum(1 << c for c in set(cpus)):x}"


def _try_cpus(text: Optional[str]) -> Optional[frozenset[int]]:
    if text is None:
        return None
    try:
        return parse_cpus(text)
    except ConfigError:
        return None


# --- which CPUs -------------------------------------------------------------------------------


def online_cpus(root: Root) -> frozenset[int]:
    cpus = _try_cpus(root.read(f"{CPU}/online"))
    if cpus:
        return cpus
    found = {int(n[3:]) for n in root.listdir(CPU) if n.startswith("cpu") and n[3:].isdigit()}
    return frozenset(found)


def smt_secondaries(root: Root, cpus: Iterable[int]) -> frozenset[int]:
    """The CPUs that go offline when SMT is turned off: all but the first thread of each core."""
    out: set[int] = set()
    for c in cpus:
        siblings = _try_cpus(root.read(f"{CPU}/cpu{c}/topology/thread_siblings_list"))
        if siblings and c != min(siblings):
            out.add(c)
    return frozenset(out)


@dataclass(frozen=True)
class CpuPlan:
    """The benchmark CPUs and the housekeeping ones (every other online CPU: IRQs go there)."""

    cpus: tuple[int, ...]
    housekeeping: tuple[int, ...]
    smt_off: bool  # SMT is to be turned off (it is on, controllable, and not kept)


def _smt_control(root: Root) -> Optional[str]:
    return root.read(f"{CPU}/smt/control")


def _smt_off_possible(root: Root, online: frozenset[int]) -> tuple[bool, str]:
    """(can SMT be turned off here, why not)."""
    left = online - smt_secondaries(root, online)
    if len(left) < 2:
        return False, (
            f"turning SMT off would leave {len(left)} online CPU(s): a housekeeping CPU and a "
            "benchmark CPU are needed"
        )
    return True, ""


def plan_cpus(
    root: Root, cpus: Optional[Iterable[int]] = None, *, keep_smt: bool = False
) -> CpuPlan:
    """The benchmark CPUs (``cpus``, default every online CPU but the lowest-numbered, which
    stays for housekeeping) once SMT is off; ConfigError when ``cpus`` cannot be used."""
    online = online_cpus(root)
    smt_off = not keep_smt and _smt_control(root) == "on" and _smt_off_possible(root, online)[0]
    usable = online - smt_secondaries(root, online) if smt_off else online
    if cpus is None:
        if len(usable) < 2:
            raise ConfigError(
                f"{len(usable)} CPU(s) online: benchmark CPUs need one more CPU for housekeeping"
            )
        bench = usable - {min(usable)}
    else:
        bench = frozenset(cpus)
        if not bench:
            raise ConfigError("--cpus: no CPU given")
        offline = bench - online
        if offline:
            raise ConfigError(
                f"--cpus {format_cpus(bench)}: CPU(s) {format_cpus(offline)} not online "
                f"(online: {format_cpus(online)})"
            )
        gone = bench - usable
        if gone:
            raise ConfigError(
                f"--cpus {format_cpus(bench)}: CPU(s) {format_cpus(gone)} go offline when SMT is "
                f"turned off (use CPUs of {format_cpus(usable)}, or keep SMT on)"
            )
    house = usable - bench
    if not house:
        raise ConfigError(
            f"--cpus {format_cpus(bench)}: leaves no CPU for housekeeping (online: "
            f"{format_cpus(usable)})"
        )
    return CpuPlan(tuple(sorted(bench)), tuple(sorted(house)), smt_off)


# --- facts that cannot change while benchrun runs -----------------------------------------------


@functools.lru_cache(maxsize=8)
def _vm_cached(path: str) -> Optional[str]:
    root = Root(path)
    flags = ""
    for line in (root.read("proc/cpuinfo") or "").splitlines():
        if line.startswith("flags"):
            flags = line
            break
    hv = " hypervisor" in f" {flags.partition(':')[2]} "
    dmi = " ".join(
        filter(None, (root.read(f"sys/class/dmi/id/{f}") for f in ("sys_vendor", "product_name")))
    )
    vm_words = ("QEMU", "KVM", "VMware", "VirtualBox", "Xen", "Amazon EC2", "Google", "Virtual")
    if hv or any(w.lower() in dmi.lower() for w in vm_words):
        return dmi or "hypervisor flag in /proc/cpuinfo"
    return None


def vm(root: Root) -> Optional[str]:
    """What says the host is a VM (the DMI vendor/product, or the cpuinfo hypervisor flag), or
    None on bare metal. Read once per root and process."""
    return _vm_cached(root.path)


# --- the catalogue ------------------------------------------------------------------------------


def selected(text: Optional[str]) -> Optional[str]:
    """ "always [madvise] never" -> "madvise" (sysfs selector files)."""
    if text is None:
        return None
    if "[" in text and "]" in text:
        return text[text.index("[") + 1 : text.index("]")]
    return text


def _sysctl(root: Root, name: str, key: str, rec: str, why: str) -> Setting:
    path = f"{KERNEL}/{key}"
    cur = root.read(path)
    note = "" if cur is not None else f"/{path} is absent (kernel without it)"
    return Setting(name, "", path, cur, rec, why, cur is not None, note)


def _smt(root: Root, online: frozenset[int], keep_smt: bool) -> Setting:
    path = f"{CPU}/smt/control"
    cur = _smt_control(root)
    why = "sibling threads share a core's execution units: a neighbour slows the benchmark"
    if cur is None:
        return Setting("smt", "", path, None, "off", why, False, "no SMT control in this kernel")
    if cur in ("notsupported", "notimplemented"):
        return Setting("smt", "", path, cur, None, why, False, "no SMT on this CPU")
    if cur == "forceoff":
        return Setting("smt", "", path, cur, "off", why, False, "forced off at boot", ok=True)
    possible, reason = _smt_off_possible(root, online)
    if keep_smt:
        possible, reason = False, "kept on (tune --keep-smt)"
    return Setting("smt", "", path, cur, "off", why, possible, reason)


def _turbo(root: Root) -> Iterator[Setting]:
    why = "turbo frequency depends on temperature and on the other cores' load"
    path = f"{CPU}/intel_pstate/no_turbo"
    cur = root.read(path)
    if cur is not None:
        yield Setting("no_turbo", "", path, cur, "1", why, True, "intel_pstate")
    path = f"{CPU}/cpufreq/boost"
    cur = root.read(path)
    if cur is not None:
        yield Setting("boost", "", path, cur, "0", why, True, "acpi-cpufreq / amd-pstate")


def _cpufreq(root: Root, cpus: tuple[int, ...], is_vm: Optional[str]) -> Iterator[Setting]:
    have = [c for c in cpus if root.exists(f"{CPU}/cpu{c}/cpufreq")]
    if not have:
        note = (
            "no cpufreq in this VM: the hypervisor sets the frequency"
            if is_vm
            else "no cpufreq driver loaded"
        )
        yield Setting("governor", "", "", None, "performance", GOVERNOR_WHY, False, note)
        return
    for c in have:
        base = f"{CPU}/cpu{c}/cpufreq"
        target = f"cpu{c}"
        cur = root.read(f"{base}/scaling_governor")
        governors = (root.read(f"{base}/scaling_available_governors") or "performance").split()
        settable = cur is not None and "performance" in governors
        yield Setting(
            "governor",
            target,
            f"{base}/scaling_governor",
            cur,
            "performance",
            GOVERNOR_WHY,
            settable,
            "" if settable else f"no 'performance' governor (have: {' '.join(governors)})",
        )
        epp = root.read(f"{base}/energy_performance_preference")
        if epp is not None:
            prefs = root.read(f"{base}/energy_performance_available_preferences")
            ok_pref = prefs is None or "performance" in prefs.split()
            yield Setting(
                "epp",
                target,
                f"{base}/energy_performance_preference",
                epp,
                "performance",
                "the hardware's energy/performance bias moves the frequency",
                ok_pref,
                "" if ok_pref else "no 'performance' preference",
            )
        boost = root.read(f"{base}/boost")
        if boost is not None:
            yield Setting(
                "boost",
                target,
                f"{base}/boost",
                boost,
                "0",
                "boost frequency depends on temperature and on the other cores' load",
                True,
                "amd-pstate per-policy boost",
            )
        lo = root.read(f"{base}/scaling_min_freq")
        hi = root.read(f"{base}/scaling_max_freq")
        if lo is not None:
            yield Setting(
                "min_freq",
                target,
                f"{base}/scaling_min_freq",
                lo,
                hi,
                "a minimum below the maximum lets the frequency drop between runs (kHz)",
                hi is not None,
                "" if hi is not None else "no scaling_max_freq",
            )


def _cpuidle(root: Root, cpus: tuple[int, ...], is_vm: Optional[str]) -> Iterator[Setting]:
    why = "waking from a deep C-state takes up to hundreds of microseconds"
    found = False
    for c in cpus:
        base = f"{CPU}/cpu{c}/cpuidle"
        for state in sorted(root.listdir(base), key=lambda s: (len(s), s)):
            if not state.startswith("state"):
                continue
            latency = root.read(f"{base}/{state}/latency")
            disable = root.read(f"{base}/{state}/disable")
            if disable is None or latency in (None, "0"):  # state0 = POLL: not a C-state
                continue
            found = True
            name = root.read(f"{base}/{state}/name") or state
            yield Setting(
                "cpuidle",
                f"cpu{c} {state} ({name}, {latency} us)",
                f"{base}/{state}/disable",
                disable,
                "1",
                why,
                not is_vm,
                "a VM's idle states are the guest's: disabling them makes idle vCPUs spin "
                "without changing the physical CPU's C-states"
                if is_vm
                else "",
            )
    if not found:
        yield Setting("cpuidle", "", "", None, "1", why, False, "no cpuidle states to disable")


def _cpu_dma_latency(root: Root) -> Setting:
    path = "dev/cpu_dma_latency"
    note = (
        "held only while a process keeps the device open: tune disables the deep cpuidle "
        "states instead (they stay until reset)"
    )
    why = "a latency limit of 0 keeps every CPU out of deep C-states"
    if not root.exists(path):
        return Setting("cpu_dma_latency", "", path, None, None, why, False, "no such device")
    data = root.read_bytes(path, 4)
    cur = f"{struct.unpack('<i', data)[0]} us" if data and len(data) == 4 else "present"
    return Setting("cpu_dma_latency", "", path, cur, None, why, False, note)


def _thp(root: Root, key: str) -> Setting:
    path = f"{THP}/{key}"
    cur = selected(root.read(path))
    return Setting(
        f"thp_{key}",
        "",
        path,
        cur,
        "never",
        "khugepaged and huge-page faults change memory access times from run to run",
        cur is not None,
        "" if cur is not None else "no transparent hugepages in this kernel",
    )


def _clocksource(root: Root) -> Setting:
    path = f"{CLOCKSOURCE}/current_clocksource"
    cur = root.read(path)
    available = (root.read(f"{CLOCKSOURCE}/available_clocksource") or "").split()
    rec = "tsc" if "tsc" in available else None
    return Setting(
        "clocksource",
        "",
        path,
        cur,
        rec,
        "a slow clocksource (hpet, acpi_pm) makes every clock read cost microseconds",
        rec is not None,
        f"available: {' '.join(available)}" if available else "",
    )


def irq_failures(journal: Optional[dict]) -> dict[str, str]:
    """{path: error} of the IRQ affinity writes a tune journal says the kernel refused."""
    if not journal:
        return {}
    return {str(f.get("path")): str(f.get("error")) for f in journal.get("failed", ())}


def _irqs(root: Root, plan: CpuPlan, refused: dict[str, str]) -> Iterator[Setting]:
    bench = frozenset(plan.cpus)
    house = format_cpus(plan.housekeeping)
    why = "an interrupt handled on a benchmark CPU preempts the benchmark"
    path = "proc/irq/default_smp_affinity"
    cur = root.read(path)
    if cur is not None:
        cpus = _mask_cpus(cur)
        yield Setting(
            "irq_default_affinity",
            "",
            path,
            cur,
            _mask(plan.housekeeping),
            why + " (new IRQs)",
            True,
            "hex CPU mask",
            ok=cpus is not None and not cpus & bench,
        )
    irqs = sorted((n for n in root.listdir("proc/irq") if n.isdigit()), key=int)
    for irq in irqs:
        path = f"proc/irq/{irq}/smp_affinity_list"
        cur = root.read(path)
        if cur is None:
            continue
        cpus = _try_cpus(cur)
        refusal = refused.get("/" + path)
        yield Setting(
            "irq_affinity",
            f"irq {irq}",
            path,
            cur,
            house,
            why,
            refusal is None,
            f"the kernel refused the change: {refusal}" if refusal else "",
            ok=cpus is not None and not cpus & bench,
        )


def _irqbalance(root: Root) -> Setting:
    running = ""
    for pid in root.listdir("proc"):
        if pid.isdigit() and root.read(f"proc/{pid}/comm") == "irqbalance":
            running = pid
            break
    return Setting(
        "irqbalance",
        "",
        "",
        f"running (pid {running})" if running else "not running",
        "not running",
        "it moves IRQs back onto the benchmark CPUs every few seconds",
        False,
        "stop it (systemctl stop irqbalance), or ban the benchmark CPUs "
        "(IRQBALANCE_BANNED_CPULIST)",
    )


def _cmdline(root: Root, plan: CpuPlan) -> Iterator[Setting]:
    text = root.read("proc/cmdline")
    bench = frozenset(plan.cpus)
    params: dict[str, str] = {}
    for word in (text or "").split():
        if word == "--":
            break
        key, _, value = word.partition("=")
        params[key] = value
    for key in ("isolcpus", "nohz_full", "rcu_nocbs"):
        given = params.get(key)
        cpus: set[int] = set()
        for token in (given or "").split(","):  # isolcpus may hold flags: domain,managed_irq,1-3
            cpus |= _try_cpus(token) or set()
        yield Setting(
            key,
            "",
            "proc/cmdline",
            None if text is None else (given if given is not None else "(not set)"),
            format_cpus(plan.cpus),
            CMDLINE_WHY,
            False,
            CMDLINE_NOTE,
            ok=bench <= cpus,
        )


def _swap(root: Root) -> Setting:
    text = root.read("proc/swaps")
    cur = None
    if text is not None:
        lines = text.splitlines()[1:]
        size = sum(int(f[2]) for f in (ln.split() for ln in lines) if len(f) > 3 and f[2].isdigit())
        cur = "off" if not lines else f"{len(lines)} device(s), {size} kB"
    return Setting(
        "swap",
        "",
        "proc/swaps",
        cur,
        "off",
        "a page swapped out costs a disk read in the middle of a run",
        False,
        "swapoff can fail or invoke the OOM killer under memory pressure: an administrator's "
        "decision",
    )


def _vm_setting(root: Root, is_vm: Optional[str]) -> Setting:
    return Setting(
        "vm",
        "",
        "",
        f"VM ({is_vm})" if is_vm else "bare metal",
        "bare metal",
        "a VM's frequency, C-states and SMT belong to the hypervisor, and its neighbours add noise",
        False,
        "run benchmarks on bare metal for the lowest noise",
    )


def catalogue(
    root: "Root | str | os.PathLike[str]" = "/",
    cpus: Optional[Iterable[int]] = None,
    *,
    keep_smt: bool = False,
    journal: Optional[dict] = None,
    informational: bool = True,
) -> tuple[CpuPlan, list[Setting]]:
    """(the CPU plan, every setting) in the order `tune` applies them. ``cpus``: the benchmark
    CPUs (default: plan_cpus()'s). ``journal``: the current tune journal, which says which IRQs
    the kernel refused to move. ``informational=False`` skips what `tune` cannot change (the
    kernel command line, swap, irqbalance, ...): what attest() needs, cheaply."""
    r = as_root(root)
    online = online_cpus(r)
    plan = plan_cpus(r, cpus, keep_smt=keep_smt)
    is_vm = vm(r)
    out: list[Setting] = [_smt(r, online, keep_smt)]
    out += _turbo(r)
    out += _cpufreq(r, plan.cpus, is_vm)
    out += _cpuidle(r, plan.cpus, is_vm)
    if informational:
        out.append(_cpu_dma_latency(r))
    out += [
        _sysctl(
            r,
            "aslr",
            "randomize_va_space",
            "0",
            "address layout changes move code and " "data alignment from run to run",
        ),
        _thp(r, "enabled"),
        _thp(r, "defrag"),
        _sysctl(
            r,
            "perf_event_max_sample_rate",
            "perf_event_max_sample_rate",
            "1",
            "profiling interrupts on the benchmark CPUs",
        ),
        _sysctl(
            r,
            "nmi_watchdog",
            "nmi_watchdog",
            "0",
            "the NMI watchdog interrupts every CPU periodically and holds a PMU counter",
        ),
        _sysctl(
            r,
            "numa_balancing",
            "numa_balancing",
            "0",
            "automatic NUMA balancing unmaps pages to sample accesses: page faults mid-run",
        ),
        _clocksource(r),
    ]
    out += _irqs(r, plan, irq_failures(journal))
    if informational:
        out.append(_irqbalance(r))
        out += _cmdline(r, plan)
        out += [_swap(r), _vm_setting(r, is_vm)]
    return plan, out


__all__ = [
    "CpuPlan",
    "Root",
    "Setting",
    "as_root",
    "catalogue",
    "format_cpus",
    "online_cpus",
    "parse_cpus",
    "plan_cpus",
    "vm",
]
