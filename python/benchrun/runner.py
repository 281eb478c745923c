"""benchrun.run(): validate a run, pull the image if needed, run it in a backend, return a Result.

The flow is the one STYLE rule 7 asks for: caller options -> make_spec() (every check, no work) ->
a frozen RunSpec -> execute() (pull if missing, then benchrun._core.run) -> a frozen Result.
The Docker process semantics (entrypoint/cmd/env/workdir/user) live in the C++ runner; this module
passes the caller's choices through unchanged (None = "not given").

The Result's JSON document (Result.to_json(), `benchrun run --json`), schema 1:

    {
      "schema": 1,
      "backend": "sandbox",              # the backend that ran the workload
      "image_digest": "sha256:...",      # manifest digest of the image that ran
      "ok": true,                        # exit_code == 0 and not signalled/timed out/OOM-killed
      "exit_code": 0,                    # -1 when killed by a signal
      "signal": 0,                       # the signal that killed the workload, 0 if none
      "timed_out": false, "oom_killed": false,
      "stdout": "...", "stderr": "...",  # the bytes as UTF-8 text (invalid sequences -> U+FFFD)
      "stdout_base64": null,             # base64 of the exact bytes when they are not valid UTF-8
      "stderr_base64": null,             #   (null when the text above is exact)
      "stdout_truncated": false, "stderr_truncated": false,
      "outputs": {"/tmp/out.json": "..."},  # collected files as text, like stdout
      "outputs_base64": {},                 # path -> base64, only for files that are not UTF-8
      "missing_outputs": {"/tmp/x": "reason"},
      "wall_time": 0.01,                 # seconds, the workload alone (exec to exit)
      "cpu_user": 0.0, "cpu_system": 0.0,  # seconds, the whole run's cgroup
      "peak_memory": 123456,             # bytes
      "start_time": 1.7e9, "end_time": 1.7e9,  # unix seconds, workload start/end
      "phases": {"pull": 0.0, "prepare": 0.0, "start": 0.0, "run": 0.0, "collect": 0.0},
      "notices": [],                     # what this run could not provide, a line each
      "interrupted": false,              # stopped by execute(should_stop=...) or Ctrl-C
      "vm": null                         # backend "vm" only: {"kernel_release", "accel", "vcpus",
                                         #   "memory_mib", "boot_time", "guest_boot_time",
                                         #   "rootfs_time", "rootfs_cached", "vmm_cpu",
                                         #   "vmm_peak_memory"}
    }

For the vm backend, wall_time, cpu_user/cpu_system and peak_memory are measured inside the guest
(the workload's cgroup there); the VMM's own cost on the host is in "vm". "start" is QEMU start to
the guest init's hello (the boot), "collect" includes the VM's shutdown.

Result.from_json() reads it back exactly (bytes included). Readers must ignore keys they do not
know; a change that breaks readers bumps "schema".
"""

from __future__ import annotations

import base64
import inspect
import math
import os
import re
import shlex
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, Union

from benchrun import _core
from benchrun import image as _image
from benchrun.errors import ConfigError, ImageNotFound
from benchrun.store import resolve_store

SCHEMA = 1
DEFAULT_MAX_OUTPUT_BYTES = 64 << 20
MIN_MEMORY_BYTES = 6 << 20  # docker's minimum: below this the runtime itself cannot start
BACKENDS = ("sandbox", "vm")
ACCELS = ("auto", "kvm", "tcg")
PHASES = ("pull", "prepare", "start", "run", "collect")

EnvArg = Union[Mapping[str, str], Iterable[str], None]
ArgvArg = Union[str, Sequence[str], None]


@dataclass(frozen=True)
class Result:
    """What one run produced. ``wall_time`` is the workload alone; setup is in ``phases``."""

    exit_code: int
    signal: int
    stdout: bytes
    stderr: bytes
    stdout_truncated: bool
    stderr_truncated: bool
    outputs: dict[str, bytes]
    missing_outputs: dict[str, str]
    timed_out: bool
    oom_killed: bool
    wall_time: float
    cpu_user: float
    cpu_system: float
    peak_memory: int
    image_digest: str
    backend: str
    start_time: float
    end_time: float
    phases: dict[str, float] = field(default_factory=dict)
    # What this run could not provide and why (e.g. no cgroup when run without root).
    notices: tuple[str, ...] = ()
    # Backend "vm": the guest kernel, accelerator, boot time and the VMM's own cost on the host.
    vm: Optional[dict[str, Any]] = None
    # execute(should_stop=...) returned True and the run was killed (e.g. a canceled job).
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        """The workload exited 0 on its own: not signalled, timed out or OOM-killed."""
        return self.exit_code == 0 and not (self.signal or self.timed_out or self.oom_killed)

    @classmethod
    def _from_core(cls, d: Mapping[str, Any], pull_s: float) -> "Result":
        phases = {"pull": pull_s}
        phases.update({k: float(v) for k, v in d["phases"].items()})
        return cls(
            exit_code=int(d["exit_code"]),
            signal=int(d["signal"]),
            stdout=bytes(d["stdout"]),
            stderr=bytes(d["stderr"]),
            stdout_truncated=bool(d["stdout_truncated"]),
            stderr_truncated=bool(d["stderr_truncated"]),
            outputs={str(k): bytes(v) for k, v in d["outputs"].items()},
            missing_outputs={str(k): str(v) for k, v in d["missing_outputs"].items()},
            timed_out=bool(d["timed_out"]),
            oom_killed=bool(d["oom_killed"]),
            wall_time=float(d["wall_time"]),
            cpu_user=float(d["cpu_user"]),
            cpu_system=float(d["cpu_system"]),
            peak_memory=int(d["peak_memory"]),
            image_digest=str(d["image_digest"]),
            backend=str(d["backend"]),
            start_time=float(d["start_time"]),
            end_time=float(d["end_time"]),
            phases=phases,
            notices=tuple(str(n) for n in d.get("notices", ())),
            vm=dict(d["vm"]) if d.get("vm") is not None else None,
            interrupted=bool(d.get("interrupted", False)),
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON-ready document described in this module's docstring (schema 1)."""
        outputs_b64 = {p: _b64(v) for p, v in self.outputs.items() if not _is_utf8(v)}
        return {
            "schema": SCHEMA,
            "backend": self.backend,
            "image_digest": self.image_digest,
            "ok": self.ok,
            "exit_code": self.exit_code,
            "signal": self.signal,
            "timed_out": self.timed_out,
            "oom_killed": self.oom_killed,
            "stdout": _text(self.stdout),
            "stdout_base64": None if _is_utf8(self.stdout) else _b64(self.stdout),
            "stdout_truncated": self.stdout_truncated,
            "stderr": _text(self.stderr),
            "stderr_base64": None if _is_utf8(self.stderr) else _b64(self.stderr),
            "stderr_truncated": self.stderr_truncated,
            "outputs": {p: _text(v) for p, v in self.outputs.items()},
            "outputs_base64": outputs_b64,
            "missing_outputs": dict(self.missing_outputs),
            "wall_time": self.wall_time,
            "cpu_user": self.cpu_user,
            "cpu_system": self.cpu_system,
            "peak_memory": self.peak_memory,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "phases": dict(self.phases),
            "notices": list(self.notices),
            "vm": dict(self.vm) if self.vm is not None else None,
            "interrupted": self.interrupted,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> "Result":
        """Reads a to_json() document back; the bytes come out exactly as they went in."""
        schema = doc.get("schema")
        if schema != SCHEMA:
            raise ConfigError(f"result document schema {schema!r}: this benchrun reads {SCHEMA}")

        def data(text: str, b64: Optional[str]) -> bytes:
            return base64.b64decode(b64) if b64 is not None else text.encode("utf-8")

        outputs_b64 = doc.get("outputs_base64") or {}
        return cls(
            exit_code=int(doc["exit_code"]),
            signal=int(doc["signal"]),
            stdout=data(doc["stdout"], doc.get("stdout_base64")),
            stderr=data(doc["stderr"], doc.get("stderr_base64")),
            stdout_truncated=bool(doc["stdout_truncated"]),
            stderr_truncated=bool(doc["stderr_truncated"]),
            outputs={p: data(t, outputs_b64.get(p)) for p, t in doc["outputs"].items()},
            missing_outputs=dict(doc["missing_outputs"]),
            timed_out=bool(doc["timed_out"]),
            oom_killed=bool(doc["oom_killed"]),
            wall_time=float(doc["wall_time"]),
            cpu_user=float(doc["cpu_user"]),
            cpu_system=float(doc["cpu_system"]),
            peak_memory=int(doc["peak_memory"]),
            image_digest=str(doc["image_digest"]),
            backend=str(doc["backend"]),
            start_time=float(doc["start_time"]),
            end_time=float(doc["end_time"]),
            phases={k: float(v) for k, v in doc["phases"].items()},
            notices=tuple(doc.get("notices", ())),
            vm=dict(doc["vm"]) if doc.get("vm") is not None else None,
            interrupted=bool(doc.get("interrupted", False)),
        )


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True)
class RunSpec:
    """A validated run: what make_spec() returns and execute() consumes. Build it with make_spec()."""

    image: str
    backend: str
    command: Optional[tuple[str, ...]]
    entrypoint: Optional[tuple[str, ...]]
    env: tuple[str, ...]
    workdir: Optional[str]
    user: Optional[str]
    memory: Optional[int]
    pids_limit: Optional[int]
    cpus: tuple[int, ...]
    cpu_quota: Optional[float]
    timeout: float  # 0 = none
    outputs: tuple[str, ...]
    max_output_bytes: int
    network: str
    store: str
    pull: bool
    pull_kwargs: dict[str, Any] = field(default_factory=dict)
    # Backend "vm" only.
    accel: str = "auto"
    kernel: Optional[str] = None
    vm_memory: Optional[int] = None  # guest RAM in bytes; None: memory + 256 MiB, or 1 GiB


# --- option parsing (shared with the CLI) ---------------------------------------------------

_MEMORY_RE = re.compile(r"^(\d+(?:\.\d+)?) ?([kmgtp])?(?:i?b)?$", re.IGNORECASE)
_MEMORY_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_size(value: Union[int, str], what: str = "size") -> int:
    """Bytes from an int or a docker-style size: ``"512m"``, ``"1g"``, ``"1.5GiB"``, ``"100"``.
    Units are binary as in docker (k = 1024, optional trailing ``b``/``ib``); a bare number is
    bytes."""
    if isinstance(value, bool):
        raise ConfigError(f"{what} {value!r}: expected bytes or a size like 512m")
    if isinstance(value, int):
        n = value
    elif isinstance(value, str):
        m = _MEMORY_RE.match(value.strip())
        if not m:
            raise ConfigError(f"{what} '{value}': expected a size like 512m, 1g or 1073741824")
        n = int(float(m.group(1)) * _MEMORY_UNITS[(m.group(2) or "").lower()])
    else:
        raise ConfigError(f"{what} {value!r}: expected bytes or a size like 512m")
    if n < 0:
        raise ConfigError(f"{what} {value!r}: must not be negative")
    return n


def parse_memory(value: Union[int, str]) -> int:
    """A memory limit in bytes (see parse_size), at least 6 MiB (docker's minimum), so
    ``--memory 512`` meant as megabytes fails loudly instead of OOM-killing at once."""
    n = parse_size(value, "memory")
    if n < MIN_MEMORY_BYTES:
        raise ConfigError(f"memory {value!r}: the minimum is 6m ({MIN_MEMORY_BYTES} bytes)")
    return n


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
    path: Union[str, os.PathLike[str]], caller_env: Optional[Mapping[str, str]] = None
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
                f"env file '{os.fspath(path)}' line {n}: invalid variable name " f"'{key}'"
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
    if isinstance(vcpus, bool) or not isinstance(vcpus, int):
        raise ConfigError(f"vcpus {vcpus!r}: expected a whole number")
    if vcpus < 1:
        raise ConfigError(f"vcpus {vcpus}: must be at least 1")
    cpus = sorted(os.sched_getaffinity(0) if available is None else available)
    if vcpus > len(cpus):
        raise ConfigError(
            f"vcpus {vcpus}: only {len(cpus)} CPUs are available to benchrun "
            f"({_cpu_list(cpus)})"
        )
    return tuple(cpus[:vcpus])


def _cpu_list(cpus: Sequence[int]) -> str:
    return ",".join(str(c) for c in cpus)


def _argv(value: ArgvArg, what: str) -> Optional[tuple[str, ...]]:
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
        if "\0" in a:
            raise ConfigError(f"{what}: argument {a!r} contains NUL")
    return out


def _positive_int(value: Any, what: str) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{what} {value!r}: expected a whole number")
    if value < 1:
        raise ConfigError(f"{what} {value}: must be at least 1")
    return value


def _positive_float(value: Any, what: str) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{what} {value!r}: expected a number of seconds")
    f = float(value)
    if not math.isfinite(f) or f <= 0:
        raise ConfigError(f"{what} {value}: must be a positive number")
    return f


def _check_path(p: Any, what: str) -> str:
    if not isinstance(p, str):
        raise ConfigError(f"{what} {p!r}: expected a str path")
    if not p.startswith("/"):
        raise ConfigError(f"{what} '{p}': must be an absolute path inside the image")
    if "\0" in p:
        raise ConfigError(f"{what} {p!r}: contains NUL")
    return p


# What run(**pull_kwargs) may pass on to benchrun.pull (read once, from pull's own signature).
_PULL_PARAMS = frozenset(inspect.signature(_image.pull).parameters) - {"ref", "store"}


def make_spec(
    image: str,
    command: ArgvArg = None,
    *,
    backend: str = "sandbox",
    timeout: Optional[float] = None,
    env: EnvArg = None,
    vcpus: Optional[int] = None,
    memory: Union[int, str, None] = None,
    pids_limit: Optional[int] = None,
    outputs: Iterable[str] = (),
    entrypoint: ArgvArg = None,
    workdir: Optional[str] = None,
    user: Union[str, int, None] = None,
    cpu_quota: Optional[float] = None,
    network: str = "none",
    store: Union[str, os.PathLike[str], None] = None,
    pull: bool = True,
    max_output_bytes: Union[int, str] = DEFAULT_MAX_OUTPUT_BYTES,
    accel: str = "auto",
    kernel: Union[str, os.PathLike[str], None] = None,
    vm_memory: Union[int, str, None] = None,
    **pull_kwargs: Any,
) -> RunSpec:
    """Checks every option of run() and returns the RunSpec; does no work (no pull, no run)."""
    if backend not in BACKENDS:
        raise ConfigError(f"backend {backend!r}: unknown (choose sandbox or vm)")
    if accel not in ACCELS:
        raise ConfigError(f"accel {accel!r}: unknown (choose {', '.join(ACCELS)})")
    if backend != "vm" and (accel != "auto" or kernel is not None or vm_memory is not None):
        raise ConfigError("accel, kernel and vm_memory apply to backend 'vm' only")
    if kernel is not None:
        kernel = _check_host_file(kernel, "kernel")
    if not isinstance(image, str) or not image:
        raise ConfigError(f"image {image!r}: expected a reference such as busybox or oci:PATH:TAG")
    if network != "none":
        raise ConfigError(f"network {network!r}: only 'none' is supported (loopback only)")
    unknown = set(pull_kwargs) - _PULL_PARAMS
    if unknown:
        raise TypeError(f"run() got unexpected keyword argument(s): {', '.join(sorted(unknown))}")
    if isinstance(outputs, (str, bytes)):
        raise ConfigError("outputs: expected a list of paths, not a single string")
    out_paths = tuple(dict.fromkeys(_check_path(p, "output") for p in outputs))
    if workdir is not None:
        _check_path(workdir, "workdir")
    if isinstance(user, bool) or (user is not None and not isinstance(user, (str, int))):
        raise ConfigError(f"user {user!r}: expected a name, uid, name:group or uid:gid")
    user_s = str(user) if user is not None else None
    if user_s == "" or (user_s is not None and "\0" in user_s):
        raise ConfigError(f"user {user!r}: expected a name, uid, name:group or uid:gid")
    return RunSpec(
        image=image,
        backend=backend,
        command=_argv(command, "command"),
        entrypoint=_argv(entrypoint, "entrypoint"),
        env=parse_env(env),
        workdir=workdir,
        user=user_s,
        memory=parse_memory(memory) if memory is not None else None,
        pids_limit=_positive_int(pids_limit, "pids_limit"),
        cpus=select_cpus(vcpus),
        cpu_quota=_positive_float(cpu_quota, "cpu_quota"),
        timeout=_positive_float(timeout, "timeout") or 0.0,
        outputs=out_paths,
        max_output_bytes=parse_size(max_output_bytes, "max_output_bytes"),
        network=network,
        store=resolve_store(store),
        pull=bool(pull),
        pull_kwargs=dict(pull_kwargs),
        accel=accel,
        kernel=kernel,
        vm_memory=parse_memory(vm_memory) if vm_memory is not None else None,
    )


def ensure_image(spec: RunSpec) -> tuple[str, float]:
    """(manifest digest, seconds spent pulling): the image from the store, pulled if missing (or
    not unpacked) and spec.pull allows it. Cached images cost 0 pull seconds."""
    try:
        found = _image.inspect(spec.image, store=spec.store)
        if found.rootfs is not None or not spec.pull:
            return found.digest, 0.0
    except ImageNotFound:
        if not spec.pull:
            raise
    t0 = time.perf_counter()
    pulled = _image.pull(spec.image, store=spec.store, **spec.pull_kwargs)
    return pulled.digest, time.perf_counter() - t0


def execute(spec: RunSpec, should_stop: Optional[Callable[[], bool]] = None) -> Result:
    """Runs a validated spec: pull if needed, then the backend. Releases the GIL while it runs.
    ``should_stop`` is polled about every 100 ms while the workload runs (from the running thread);
    when it returns True the run is killed and cleaned up, and the Result has ``interrupted`` set."""
    digest, pull_s = ensure_image(spec)
    d = _core.run(
        image=digest,  # the digest, so the image that runs is the one just checked or pulled
        store=spec.store,
        entrypoint=list(spec.entrypoint) if spec.entrypoint is not None else None,
        command=list(spec.command) if spec.command is not None else None,
        env=list(spec.env),
        workdir=spec.workdir,
        user=spec.user,
        memory=spec.memory,
        pids_limit=spec.pids_limit,
        cpus=list(spec.cpus),
        cpu_quota=spec.cpu_quota,
        timeout=spec.timeout,
        outputs=list(spec.outputs),
        max_output_bytes=spec.max_output_bytes,
        network=spec.network != "none",
        backend=spec.backend,
        accel=spec.accel,
        kernel=spec.kernel or "",
        vm_memory_mib=(spec.vm_memory or 0) >> 20,
        init_binary=guest_init() if spec.backend == "vm" else "",
        # Kernels, initramfs and ext4 images are keyed by content, so stores can share them.
        vm_cache=os.environ.get("BENCHRUN_VM_CACHE", ""),
        should_stop=should_stop,
    )
    return Result._from_core(d, pull_s)


def guest_init() -> str:
    """The microVM's static guest init installed with this package ($BENCHRUN_GUEST_INIT
    overrides it, e.g. for a development build)."""
    path = os.environ.get("BENCHRUN_GUEST_INIT") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "benchrun-init"
    )
    if not os.path.isfile(path):
        raise ConfigError(
            f"the microVM guest init is missing ({path}): reinstall benchrun, or set "
            "BENCHRUN_GUEST_INIT to a benchrun-init binary"
        )
    return path


def _check_host_file(path: Union[str, os.PathLike[str]], what: str) -> str:
    p = os.fspath(path)
    if not os.path.isfile(p):
        raise ConfigError(f"{what} {p!r}: no such file")
    return os.path.abspath(p)


def run(
    image: str,
    command: ArgvArg = None,
    *,
    backend: str = "sandbox",
    timeout: Optional[float] = None,
    env: EnvArg = None,
    vcpus: Optional[int] = None,
    memory: Union[int, str, None] = None,
    pids_limit: Optional[int] = None,
    outputs: Iterable[str] = (),
    entrypoint: ArgvArg = None,
    workdir: Optional[str] = None,
    user: Union[str, int, None] = None,
    cpu_quota: Optional[float] = None,
    network: str = "none",
    store: Union[str, os.PathLike[str], None] = None,
    pull: bool = True,
    max_output_bytes: Union[int, str] = DEFAULT_MAX_OUTPUT_BYTES,
    accel: str = "auto",
    kernel: Union[str, os.PathLike[str], None] = None,
    vm_memory: Union[int, str, None] = None,
    **pull_kwargs: Any,
) -> Result:
    """Run ``image`` (a reference, ``oci:PATH[:TAG]``, ``docker-archive:PATH`` or digest) and return
    its Result. Every option is checked before anything happens (ConfigError).

    Process, as ``docker run``: ``entrypoint`` replaces the image's Entrypoint and clears its Cmd
    (``""`` or ``[]`` = none); ``command`` replaces Cmd (a str is split like a shell would);
    ``env`` (dict, or list of ``K=V`` / bare ``K`` = the caller's value) overrides the image's Env,
    and nothing else of the caller's environment reaches the workload; ``workdir`` and ``user``
    (name, uid, ``name:group``, ``uid:gid``, resolved in the image) override the image's.

    Limits: ``timeout`` seconds of wall time (then everything is killed; ``timed_out`` is set and
    the partial output kept); ``memory`` (bytes or ``"512m"``, no swap); ``pids_limit``;
    ``vcpus`` = pin to that many CPUs (the lowest-numbered ones this process may use);
    ``cpu_quota`` = CPUs' worth of time. ``network`` is ``"none"`` (loopback only).
    ``outputs`` are absolute paths in the image's filesystem read after the run; a missing one is
    listed in ``missing_outputs``. stdout/stderr are each capped at ``max_output_bytes`` (bytes
    or a size like ``"1m"``; default 64 MiB), with ``stdout_truncated``/``stderr_truncated`` set.

    Backend ``"vm"`` runs the image in a QEMU microVM with its own kernel (Debian's cloud kernel,
    fetched once into the store, or ``kernel``: a bzImage path), with the same process semantics,
    limits (``memory`` and ``pids_limit`` apply inside the guest; ``vcpus`` = vCPUs pinned to that
    many host CPUs) and Result. ``accel``: ``"auto"`` (KVM when the CPU has vmx/svm and /dev/kvm
    works, else TCG with a notice), ``"kvm"`` or ``"tcg"``; ``vm_memory``: the guest's RAM.

    ``pull``: pull the image first if the store lacks it (``pull_kwargs`` go to benchrun.pull:
    platform, credentials, ...); the time spent is ``phases["pull"]`` (0 when cached).
    Raises ConfigError, ImageNotFound (pull=False), SandboxError, VmError, ProtocolError, and
    pull's errors.
    """
    return execute(
        make_spec(
            image,
            command,
            backend=backend,
            timeout=timeout,
            env=env,
            vcpus=vcpus,
            memory=memory,
            pids_limit=pids_limit,
            outputs=outputs,
            entrypoint=entrypoint,
            workdir=workdir,
            user=user,
            cpu_quota=cpu_quota,
            network=network,
            store=store,
            pull=pull,
            max_output_bytes=max_output_bytes,
            accel=accel,
            kernel=kernel,
            vm_memory=vm_memory,
            **pull_kwargs,
        )
    )


__all__ = [
    "DEFAULT_MAX_OUTPUT_BYTES",
    "SCHEMA",
    "Result",
    "RunSpec",
    "ensure_image",
    "execute",
    "make_spec",
    "parse_env",
    "parse_env_file",
    "parse_memory",
    "parse_size",
    "run",
    "select_cpus",
]
