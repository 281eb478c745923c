"""The run options as a user gives them: one table, every layer derives from it.

Each Option says how a value arrives (a keyword of ``benchrun.run()``/``make_spec()``, a key of a
campaign variant, a CLI flag of ``benchrun run``) and how it becomes the value of the native
``benchrun._core.RunSpec`` attribute it sets. The rules (minimum memory, absolute paths, which
backend an option belongs to, ...) and the defaults live once, in C++ (``cpp/include/benchrun/run/
spec.hpp``, checked by ``RunSpec.validate()``); this table only parses what a user types
("512m", "1.5", "K=V"). A new option is one line in spec.hpp, one line here, and its use.

The parsers (parse_size, parse_memory, parse_env, parse_env_file, select_cpus) are public: the CLI,
campaigns and the agent use them too. Nothing here imports the native module until a spec is
built, so the CLI can build its parser cheaply.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Union

from benchrun.errors import ConfigError

EnvArg = Union[Mapping[str, str], Iterable[str], None]
ArgvArg = Union[str, Sequence[str], None]

_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)?) ?([kmgtp])?(?:i?b)?$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
# The native spec's value for "no limit" (memory, pids_limit, disk); None means "the default".
UNLIMITED = (1 << 64) - 1


# --- parsers ---------------------------------------------------------------------------------

# When a run pulls its image (Docker's --pull): "missing" uses the store's copy if this store
# pulled it before from the same repository; "always" asks the registry first (a manifest HEAD
# with the run's credentials when the image is cached, so access is re-checked every time);
# "never" only uses the store.
PULL_POLICIES = ("always", "missing", "never")


def parse_pull(value: Any) -> str:
    """A pull policy: one of PULL_POLICIES (the spelling of ``docker run --pull``)."""
    if isinstance(value, str) and value in PULL_POLICIES:
        return value
    raise ConfigError(f"pull {value!r}: expected one of {', '.join(PULL_POLICIES)}")


def parse_size(value: Union[int, str], what: str = "size") -> int:
    """Bytes from an int or a docker-style size: ``"512m"``, ``"1g"``, ``"1.5GiB"``, ``"100"``.
    Units are binary as in docker (k = 1024, optional trailing ``b``/``ib``); a bare number is
    bytes."""
    if isinstance(value, bool):
        raise ConfigError(f"{what} {value!r}: expected bytes or a size like 512m")
    if isinstance(value, int):
        n = value
    elif isinstance(value, str):
        m = _SIZE_RE.match(value.strip())
        if not m:
            raise ConfigError(f"{what} '{value}': expected a size like 512m, 1g or 1073741824")
        n = int(float(m.group(1)) * _SIZE_UNITS[(m.group(2) or "").lower()])
    else:
        raise ConfigError(f"{what} {value!r}: expected bytes or a size like 512m")
    if n < 0:
        raise ConfigError(f"{what} {value!r}: must not be negative")
    return n


def parse_memory(value: Union[int, str], what: str = "memory") -> int:
    """A memory size in bytes (see parse_size). The minimum (6m, so ``--memory 512`` meant as
    megabytes fails loudly) is checked by RunSpec.validate()."""
    return parse_size(value, what)


def parse_limit(parse: Callable[[Any, str], int]) -> Callable[[Any, str], int]:
    """A limit parsed by ``parse``, or ``"unlimited"`` (UNLIMITED): no limit at all. Not given
    (None) is the default limit (see docs/security.md)."""

    def parse_or_unlimited(value: Any, what: str) -> int:
        if isinstance(value, str) and value.strip().lower() == "unlimited":
            return UNLIMITED
        return parse(value, what)

    return parse_or_unlimited


def _check_env_key(key: str, where: str) -> None:
    if not key:
        raise ConfigError(f"environment variable {where}: empty name")
    if "=" in key or "\0" in key:
        raise ConfigError(f"environment variable {where}: name contains '=' or NUL")


def parse_env(env: EnvArg, caller_env: Optional[Mapping[str, str]] = None) -> tuple[str, ...]:
    """``K=V`` strings from a dict or from a list of ``K=V`` / ``K`` entries.

    A bare ``K`` takes the caller's value (``caller_env``, default os.environ) and is left out if
    the caller has none, as ``docker run -e K`` does; nothing else of the caller's environment is
    passed. Later entries win over earlier ones; the first position of a name is kept.
    """
    if env is None:
        return ()
    caller = os.environ if caller_env is None else caller_env
    merged: dict[str, str] = {}
    if isinstance(env, Mapping):
        for k, v in env.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise ConfigError(f"environment {k!r}={v!r}: names and values must be str")
            _check_env_key(k, repr(k))
            if "\0" in v:
                raise ConfigError(f"environment variable '{k}': value contains NUL")
            merged[k] = v
    elif isinstance(env, (str, bytes)):
        raise ConfigError("env: expected a dict or a list of 'K=V' strings, not a single string")
    else:
        for item in env:
            if not isinstance(item, str):
                raise ConfigError(f"environment entry {item!r}: expected a 'K=V' string")
            key, eq, value = item.partition("=")
            _check_env_key(key, repr(item))
            if "\0" in value:
                raise ConfigError(f"environment variable '{key}': value contains NUL")
            if eq:
                merged[key] = value
            elif key in caller:
                merged[key] = caller[key]
    return tuple(f"{k}={v}" for k, v in merged.items())


def parse_env_file(
    path: Union[str, "os.PathLike[str]"], caller_env: Optional[Mapping[str, str]] = None
) -> list[str]:
    """The entries of a docker ``--env-file``: one ``K=V`` or ``K`` per line; lines starting with
    ``#`` and blank lines are skipped; no quoting (the value is the rest of the line, verbatim).
    Raises ConfigError if the file cannot be read. Bare ``K`` resolves like in parse_env."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ConfigError(f"read env file '{os.fspath(path)}': {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"env file '{os.fspath(path)}': not valid UTF-8") from None
    caller = os.environ if caller_env is None else caller_env
    entries: list[str] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, eq, value = line.partition("=")
        key = key.lstrip()  # docker trims leading whitespace of the name only
        if not key or " " in key or "\t" in key or "\0" in key or "\0" in value:
            raise ConfigError(
                f"env file '{os.fspath(path)}' line {n}: invalid variable name '{key}'"
            )
        if eq:
            entries.append(f"{key}={value}")
        elif key in caller:
            entries.append(f"{key}={caller[key]}")
    return entries


def select_cpus(vcpus: Optional[int], available: Optional[Iterable[int]] = None) -> tuple[int, ...]:
    """The ``vcpus`` lowest-numbered CPUs this process may use (``os.sched_getaffinity(0)``)."""
    if vcpus is None:
        return ()
    n = whole(vcpus, "vcpus")
    cpus = sorted(os.sched_getaffinity(0) if available is None else available)
    if n > len(cpus):
        raise ConfigError(
            f"vcpus {n}: only {len(cpus)} CPUs are available to benchrun "
            f"({','.join(str(c) for c in cpus)})"
        )
    return tuple(cpus[:n])


def _cpu_count(value: Any, what: str) -> int:
    """A CPU count: at least 1, at most the CPUs this process may use (the run's allocation, in
    the core, then takes free ones of the partition)."""
    n = whole(value, what)
    cpus = sorted(os.sched_getaffinity(0))
    if n > len(cpus):
        raise ConfigError(
            f"{what} {n}: only {len(cpus)} CPUs are available to benchrun "
            f"({','.join(str(c) for c in cpus)})"
        )
    return n


def _cpu_list(value: Any, what: str) -> list[int]:
    """A CPU list: kernel list text ("0-2,5") or an iterable of CPU numbers."""
    from benchrun import _core

    if isinstance(value, str):
        out = list(_core.parse_cpu_list(value, what))
        if not out:
            raise ConfigError(f"{what} '{value}': no CPU given")
        return out
    cpus = []
    for c in value:
        if isinstance(c, bool) or not isinstance(c, int) or c < 0:
            raise ConfigError(f"{what} {c!r}: expected a CPU number >= 0")
        cpus.append(c)
    return cpus


def argv(value: ArgvArg, what: str) -> Optional[tuple[str, ...]]:
    """None stays None ("not given"); a str is split like a shell would (docker SDK does too);
    "" gives () ("given, empty")."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return tuple(shlex.split(value))
        except ValueError as e:
            raise ConfigError(f"{what} '{value}': {e}") from None
    if isinstance(value, bytes):
        raise ConfigError(f"{what}: expected str or a list of str, not bytes")
    out = tuple(value)
    for a in out:
        if not isinstance(a, str):
            raise ConfigError(f"{what} {list(out)!r}: every argument must be a str")
    return out


def whole(value: Any, what: str) -> int:
    """A whole number >= 1 (from an int, or from CLI text)."""
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            raise ConfigError(f"{what} '{value}': expected a whole number") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{what} {value!r}: expected a whole number")
    if value < 1:
        raise ConfigError(f"{what} {value}: must be at least 1")
    return value


def number(value: Any, what: str) -> float:
    """A number (from an int/float, or from CLI text); its range is RunSpec.validate()'s."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ConfigError(f"{what} '{value}': expected a number") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{what} {value!r}: expected a number")
    return float(value)


def seconds(value: Any, what: str) -> float:
    """A number of seconds > 0 (0 is the native spec's "none", so a given 0 is refused here)."""
    f = number(value, what)
    if f == 0:
        raise ConfigError(f"{what} {value}: must be a positive number of seconds")
    return f


def _text(value: Any, what: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # a uid
    if not isinstance(value, str):
        raise ConfigError(f"{what} {value!r}: expected a str")
    return value


def _paths(value: Any, what: str) -> list[str]:
    if isinstance(value, (str, bytes)):
        raise ConfigError(f"{what}: expected a list of paths, not a single string")
    out = []
    for p in value:
        if not isinstance(p, str):
            raise ConfigError(f"{what} {p!r}: expected a str path")
        if p not in out:
            out.append(p)
    return out


def _host_file(value: Any, what: str) -> str:
    if not isinstance(value, (str, os.PathLike)):
        raise ConfigError(f"{what} {value!r}: expected a file path")
    p = os.fspath(value)
    if not isinstance(p, str) or not os.path.isfile(p):
        raise ConfigError(f"{what} {p!r}: no such file")
    return os.path.abspath(p)


INSTRUCTION_MODES = ("count", "cache", "sections")


def _instructions(value: Any, what: str) -> str:
    """Instruction counting: True or "count", "cache", "sections"; False or "" = off (the modes
    are docs/instructions.md's; RunSpec.validate() checks them)."""
    if value is True:
        return "count"
    if value is False:
        return ""
    if not isinstance(value, str):
        raise ConfigError(
            f"{what} {value!r}: expected True or one of {', '.join(INSTRUCTION_MODES)}"
        )
    return value


def _network(value: Any, what: str) -> bool:
    if value != "none":
        raise ConfigError(f"{what} {value!r}: only 'none' is supported (loopback only)")
    return False


def _switch(value: Any, what: str) -> bool:
    """A yes/no option: True/False, or on/off (a bare CLI flag is on)."""
    if isinstance(value, bool):
        return value
    if value in ("on", "yes", "true", "1"):
        return True
    if value in ("off", "no", "false", "0"):
        return False
    raise ConfigError(f"{what} {value!r}: expected on or off")


def parse_counters(value: Any, what: str = "counters") -> list[str]:
    """Performance counters (docs/counters.md): perf's names, comma-separated text or a list
    ("task-clock,instructions:u", ["default", "cache-misses"]); "none" or [] = none. Which names
    exist is RunSpec.validate()'s check (an unknown one fails listing the known ones)."""
    if isinstance(value, str):
        names = [n.strip() for n in value.split(",") if n.strip()]
        if not names:
            raise ConfigError(f"{what} '{value}': expected counter names or 'none'")
    elif isinstance(value, (list, tuple)):
        names = list(value)
        for n in names:
            if not isinstance(n, str) or not n:
                raise ConfigError(f"{what} {n!r}: expected a counter name")
    else:
        raise ConfigError(f"{what} {value!r}: expected a list of counter names or 'none'")
    return [] if names == ["none"] else names


# --- the table --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """One run option. ``parse(value, name)`` turns what a user gave (a Python value, or the text
    of a CLI flag) into the value of ``_core.RunSpec.<core>``."""

    name: str
    parse: Callable[[Any, str], Any]
    help: str
    flags: tuple[str, ...] = ()  # CLI flags of `benchrun run`; () = not a flag
    metavar: Optional[str] = None
    repeat: bool = False  # a CLI flag given once per value (a list)
    core: str = ""  # the _core.RunSpec attribute; "" = name
    choices: tuple[str, ...] = ()  # shown in --help; the check is RunSpec.validate()'s
    const: Optional[str] = None  # a CLI flag whose value is optional: its value when given bare

    @property
    def attr(self) -> str:
        return self.core or self.name


OPTIONS: tuple[Option, ...] = (
    Option(
        "backend",
        _text,
        "where to run: sandbox (namespaces, the default) or vm (a QEMU "
        "microVM); benchrun.backends() lists them",
        ("--backend",),
        "NAME",
    ),
    Option("command", argv, "replaces the image's Cmd (a str is split like a shell would)"),
    Option(
        "entrypoint",
        argv,
        "replace the image's entrypoint (and clear its Cmd); '' = none",
        ("--entrypoint",),
        "CMD",
    ),
    Option(
        "env",
        lambda v, what: parse_env(v),
        "set an environment variable (K alone: take benchrun's own value "
        "of K); nothing else of the caller's environment reaches the workload",
        ("-e", "--env"),
        "K[=V]",
        repeat=True,
    ),
    Option(
        "workdir",
        _text,
        "working directory inside the image (default: the image's, else /)",
        ("-w", "--workdir"),
        "DIR",
    ),
    Option(
        "user",
        _text,
        "name, uid, name:group or uid:gid, resolved in the image",
        ("-u", "--user"),
        "USER[:GROUP]",
    ),
    Option(
        "memory",
        parse_limit(parse_memory),
        "memory limit, no swap (512m, 1g; binary units; min 6m; default 3/4 of the host's RAM; "
        "unlimited: none)",
        ("-m", "--memory"),
        "SIZE",
    ),
    Option(
        "pids_limit",
        parse_limit(whole),
        "maximum number of processes/threads (default 1024; unlimited: none)",
        ("--pids-limit", "--pids"),
        "N",
    ),
    Option(
        "disk",
        parse_limit(parse_size),
        "size of the writable layer (the image's files plus what the run writes outside /tmp; "
        "default 10g; min 16m; unlimited: none)",
        ("--disk",),
        "SIZE",
    ),
    Option(
        "vcpus",
        lambda v, what: _cpu_count(v, what),
        "run on N CPUs of its own: free ones of the CPU partition (all CPUs without one), "
        "locked for this run alone; vm: N vCPUs, each pinned to one",
        ("--vcpus",),
        "N",
        core="cpu_count",
    ),
    Option(
        "cpuset_cpus",
        lambda v, what: _cpu_list(v, what),
        "run on exactly these CPUs (0-2,5), locked for this run alone; they must be in the CPU "
        "partition when there is one",
        ("--cpuset-cpus",),
        "LIST",
        core="cpus",
    ),
    Option(
        "cpu_wait",
        number,
        "seconds to wait for CPUs another run holds (default 0: fail at once, naming it)",
        ("--cpu-wait",),
        "S",
    ),
    Option(
        "cpu_quota",
        number,
        "CPU time quota in CPUs' worth (1.5 = one and a half CPUs), " "as docker's --cpus",
        ("--cpus",),
        "N",
    ),
    Option(
        "network",
        _network,
        "network mode; only none (loopback only) is supported",
        ("--network",),
        "MODE",
        choices=("none",),
    ),
    Option(
        "timeout",
        seconds,
        "wall-clock limit in seconds; then the whole run is killed " "(exit 124)",
        ("--timeout",),
        "SECONDS",
    ),
    Option(
        "outputs",
        _paths,
        "file in the image's filesystem to collect after the run "
        "(repeatable; in the --json document)",
        ("--output",),
        "PATH",
        repeat=True,
    ),
    Option(
        "max_output_bytes",
        parse_size,
        "cap on each of stdout and stderr (default 64m)",
        ("--max-output",),
        "SIZE",
    ),
    Option(
        "accel",
        _text,
        "vm: KVM when the CPU has vmx/svm and /dev/kvm works (auto), or " "force one",
        ("--accel",),
        "ACCEL",
        choices=("auto", "kvm", "tcg"),
    ),
    Option(
        "kernel",
        _host_file,
        "vm: the guest kernel (default: Debian's cloud kernel, " "fetched once into the store)",
        ("--kernel",),
        "BZIMAGE",
    ),
    Option(
        "vm_memory",
        parse_memory,
        "vm: the guest's RAM (default: --memory + 256m, or 1g)",
        ("--vm-memory",),
        "SIZE",
    ),
    Option(
        "instructions",
        _instructions,
        "count the workload's instructions under Valgrind (deterministic; 4-50x slower): "
        "count (the default), cache (also simulated cache misses and estimated cycles) or "
        "sections (only what CALLGRIND_START_INSTRUMENTATION brackets); docs/instructions.md",
        ("--instructions",),
        "MODE",
        choices=INSTRUCTION_MODES,
        const="count",
    ),
    Option(
        "counters",
        parse_counters,
        "performance counters over the workload, comma-separated perf names (default: the "
        "software counters and instructions, cycles, branches, branch-misses in user and kernel "
        "mode; all; none); see docs/counters.md",
        ("--counters",),
        "LIST",
    ),
    Option(
        "runtime",
        _text,
        "oci: the OCI runtime (a path, or a name looked up in the system's bin directories)",
        ("--runtime",),
        "PATH",
    ),
    Option(
        "runsc_platform",
        _text,
        "runsc: gVisor's platform (auto: systrap where this runsc has it, else ptrace)",
        ("--runsc-platform",),
        "PLATFORM",
        choices=("auto", "systrap", "ptrace", "kvm"),
    ),
    Option(
        "init",
        _switch,
        "a minimal init as PID 1 that forwards signals to the workload's process group, reaps "
        "orphans and turns --timeout into SIGTERM, --stop-timeout, then a kill; docs/cli.md",
        ("--init",),
        "on|off",
        choices=("on", "off"),
        const="on",
    ),
    Option(
        "stop_timeout",
        seconds,
        "with --init: seconds from --timeout's SIGTERM to the kill (default 10, as docker's)",
        ("--stop-timeout",),
        "SECONDS",
    ),
)

BY_NAME: dict[str, Option] = {o.name: o for o in OPTIONS}

# The options a Bencher job spec can carry (`benchrun submit`, campaigns through a job server).
JOB_OPTIONS = ("backend", "entrypoint", "env", "vcpus", "memory", "timeout", "outputs")


def core_spec(options: Mapping[str, Any]) -> Any:
    """A validated ``_core.RunSpec`` from option values (names of OPTIONS; None = not given,
    i.e. the native default). ConfigError names the option; TypeError for an unknown name."""
    from benchrun import _core  # the native module: only when a spec is really built

    unknown = sorted(set(options) - set(BY_NAME))
    if unknown:
        raise TypeError(f"unexpected run option(s): {', '.join(unknown)}")
    spec = _core.RunSpec()
    for name, value in options.items():
        if value is None:
            continue
        opt = BY_NAME[name]
        parsed = opt.parse(value, name)
        try:
            setattr(spec, opt.attr, parsed)
        except TypeError:
            raise ConfigError(f"{name} {value!r}: not a valid value") from None
    spec.validate()
    return spec


def backends() -> list[str]:
    """The registered backends' names (the one list; the CLI, agent, plugin and jobs use it)."""
    from benchrun import _core

    return list(_core.backends())


def backend_unavailable(name: str) -> str:
    """Why backend ``name`` cannot run on this host (its OCI runtime is not installed, too old,
    or refuses this host), or "" when it can. ConfigError for an unknown name."""
    from benchrun import _core

    return str(_core.backend_unavailable(name))


__all__ = [
    "OPTIONS",
    "UNLIMITED",
    "Option",
    "backend_unavailable",
    "backends",
    "core_spec",
    "parse_env",
    "parse_env_file",
    "parse_limit",
    "parse_memory",
    "parse_counters",
    "parse_size",
    "select_cpus",
]
