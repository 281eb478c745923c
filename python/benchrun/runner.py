"""benchrun.run(): validate a run, pull the image if needed, run it in a backend, return a Result.

The flow is the one STYLE rule 7 asks for: caller options (benchrun.options: the one table) ->
make_spec() (every check, no work) -> a frozen RunSpec holding a validated native RunSpec ->
execute() (pull if missing, load the image once, then benchrun._core.run) -> a frozen Result.
The Docker process semantics (entrypoint/cmd/env/workdir/user) live in the C++ runner; this module
passes the caller's choices through unchanged (None = "not given").

The Result's JSON document (Result.to_json(), Result.write_json(), `benchrun run --json`), schema 3:

    {
      "schema": 3,
      "backend": "sandbox",              # the backend that ran the workload
      "image_digest": "sha256:...",      # manifest digest of the image that ran
      "ok": true,                        # exit_code == 0 and not signalled/timed out/OOM-killed
      "exit_code": 0,                    # -1 when killed by a signal
      "signal": 0,                       # the signal that killed the workload, 0 if none
      "timed_out": false, "oom_killed": false,
      "stdout": "...", "stderr": "...",  # the exact bytes as text, or null when base64 below
      "stdout_base64": null,             # the bytes as base64, or null when text above: text
      "stderr_base64": null,             #   when valid UTF-8 whose JSON escaping at most doubles
                                         #   it, else base64; never both (benchrun.blobjson)
      "stdout_truncated": false, "stderr_truncated": false,
      "outputs": {"/tmp/out.json": "..."},  # collected files that are text, like stdout
      "outputs_base64": {},                 # path -> base64 for the others (each file in one)
      "missing_outputs": {"/tmp/x": "reason"},
      "metrics": {                       # every measured quantity: name -> value + unit
        "wall_time": {"value": 0.01, "unit": "s"},    # the workload alone (exec to exit)
        "cpu_user": {"value": 0.0, "unit": "s"},      # the whole run's cgroup
        "cpu_system": {"value": 0.0, "unit": "s"},
        "peak_memory": {"value": 123456, "unit": "bytes"},
        ...                              # backend "vm" adds boot_time, guest_boot_time,
      },                                 #   rootfs_time, vmm_cpu (s), vmm_peak_memory (bytes)
      "wall_time": 0.01, "cpu_user": 0.0, "cpu_system": 0.0, "peak_memory": 123456,
                                         # the same four, as in schema 1
      "start_time": 1.7e9, "end_time": 1.7e9,  # unix seconds, workload start/end
      "phases": {"pull": 0.0, "prepare": 0.0, "start": 0.0, "run": 0.0, "collect": 0.0},
      "notices": [],                     # what this run could not provide, a line each
      "limits": {"memory": 1073741824,   # the limits that applied (bytes; pids and nofile a
                 "pids": 1024,           #   count); null: unlimited. tmpfs: the size of /tmp
                 "disk": 10737418240,    #   and of /dev/shm each (half of memory); disk: the
                 "tmpfs": 536870912,     #   writable layer (vm: the root disk's free space);
                 "nofile": 1024},        #   vm: memory is the guest's RAM unless one was given
      "interrupted": false,              # stopped by execute(should_stop=...) or Ctrl-C
      "facts": {}                        # how the backend ran it; "vm": kernel_release, accel,
                                         #   vcpus, memory_mib, rootfs_cached; sandbox and vm:
                                         #   "host_state" (benchrun.host.attest: tuned, differs,
                                         #   cpus, journal, noise)
    }

For the vm backend, wall_time, cpu_user/cpu_system and peak_memory are measured inside the guest
(the workload's cgroup there); the VMM's own cost on the host is vmm_cpu/vmm_peak_memory. "start"
is QEMU start to the guest init's hello (the boot), "collect" includes the VM's shutdown.

Result.from_json() reads it back exactly (bytes included), and also reads schema 2 documents (which
held non-UTF-8 bytes twice: lossy text and base64; base64 wins) and schema 1 documents (their four
figures become metrics, their "vm" object facts and metrics). Readers must ignore keys
they do not know; a change that breaks readers bumps "schema".
"""

from __future__ import annotations

import inspect
import os
import time
from dataclasses import dataclass, field, replace
from typing import IO, Any, Callable, Mapping, NamedTuple, Optional

from benchrun import _core
from benchrun import blobjson as _blobjson
from benchrun import image as _image
from benchrun import options as _options
from benchrun import run_secrets as _secrets
from benchrun.errors import ConfigError, ImageError
from benchrun.options import ArgvArg
from benchrun.store import resolve_store

SCHEMA = 3
READABLE_SCHEMAS = (1, 2, 3)
DEFAULT_MAX_OUTPUT_BYTES = 64 << 20
PHASES = ("pull", "prepare", "start", "run", "collect")
# The metrics every backend produces, also Result attributes (as in schema 1).
STANDARD_METRICS = (
    ("wall_time", "s"),
    ("cpu_user", "s"),
    ("cpu_system", "s"),
    ("peak_memory", "bytes"),
)


# Every backend runs on this host (the sandbox, QEMU, an OCI runtime), so every result carries
# facts["host_state"] (benchrun.host.attest): the host's measurement state (tuned or not, the
# settings that differ, benchmark CPUs, noise figure).


class Metric(NamedTuple):
    """One measured quantity of a run."""

    value: float
    unit: str


@dataclass(frozen=True)
class Result:
    """What one run produced. ``metrics`` holds every measured quantity (``wall_time`` is the
    workload alone; setup is in ``phases``); the four every backend measures are attributes too."""

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
    image_digest: str
    backend: str
    start_time: float
    end_time: float
    metrics: dict[str, Metric] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)
    # What this run could not provide and why (e.g. no cgroup when run without root).
    notices: tuple[str, ...] = ()
    # How the backend ran it (backend "vm": kernel_release, accel, vcpus, memory_mib, ...).
    facts: dict[str, Any] = field(default_factory=dict)
    # execute(should_stop=...) returned True and the run was killed (e.g. a canceled job).
    interrupted: bool = False
    # The limits that applied: memory, tmpfs, disk (bytes), pids, nofile; None = unlimited.
    limits: dict[str, Optional[int]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """The workload exited 0 on its own: not signalled, timed out or OOM-killed."""
        return self.exit_code == 0 and not (self.signal or self.timed_out or self.oom_killed)

    def metric(self, name: str, default: float = 0.0) -> float:
        """The value of one metric (``default`` when this run did not measure it)."""
        m = self.metrics.get(name)
        return m.value if m is not None else default

    @property
    def wall_time(self) -> float:
        """Seconds, the workload alone (exec to exit)."""
        return self.metric("wall_time")

    @property
    def cpu_user(self) -> float:
        return self.metric("cpu_user")

    @property
    def cpu_system(self) -> float:
        return self.metric("cpu_system")

    @property
    def peak_memory(self) -> int:
        """Bytes."""
        return int(self.metric("peak_memory"))

    @property
    def vm(self) -> Optional[dict[str, Any]]:
        """Backend "vm": its facts and the VM's own metrics in one dict (as in schema 1; the
        host's state, facts["host_state"], is not the VM's)."""
        if self.backend != "vm":
            return None
        out: dict[str, Any] = {k: v for k, v in self.facts.items() if k != "host_state"}
        for k in ("boot_time", "guest_boot_time", "rootfs_time", "vmm_cpu"):
            out[k] = self.metric(k)
        out["vmm_peak_memory"] = int(self.metric("vmm_peak_memory"))
        return out

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
            image_digest=str(d["image_digest"]),
            backend=str(d["backend"]),
            start_time=float(d["start_time"]),
            end_time=float(d["end_time"]),
            metrics={str(k): Metric(float(v), str(u)) for k, (v, u) in d["metrics"].items()},
            phases=phases,
            notices=tuple(str(n) for n in d.get("notices", ())),
            facts=dict(d.get("facts", {})),
            interrupted=bool(d.get("interrupted", False)),
            limits=_limits(d.get("limits")),
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON-ready document described in this module's docstring (schema 3). Each stream
        and file is either text or base64, never both (see benchrun.blobjson)."""
        return self._doc(_blobjson.encode)

    def write_json(self, fp: IO[bytes], *, indent: Optional[int] = 2, prefix: str = "") -> None:
        """Writes to_json()'s document to the binary ``fp`` without building it in memory: the
        streams and files are encoded in chunks, so writing costs little beyond the Result
        itself. ``prefix`` goes after each newline (to nest the document in another one)."""
        _blobjson.dump(self._doc(_blobjson.blob_fields), fp, indent=indent, prefix=prefix)

    def _doc(self, fields: Callable[[bytes], tuple[Any, Any]]) -> dict[str, Any]:
        stdout, stdout_b64 = fields(self.stdout)
        stderr, stderr_b64 = fields(self.stderr)
        outputs: dict[str, Any] = {}
        outputs_b64: dict[str, Any] = {}
        for path, data in self.outputs.items():
            text, b64 = fields(data)
            if b64 is None:
                outputs[path] = text
            else:
                outputs_b64[path] = b64
        return {
            "schema": SCHEMA,
            "backend": self.backend,
            "image_digest": self.image_digest,
            "ok": self.ok,
            "exit_code": self.exit_code,
            "signal": self.signal,
            "timed_out": self.timed_out,
            "oom_killed": self.oom_killed,
            "stdout": stdout,
            "stdout_base64": stdout_b64,
            "stdout_truncated": self.stdout_truncated,
            "stderr": stderr,
            "stderr_base64": stderr_b64,
            "stderr_truncated": self.stderr_truncated,
            "outputs": outputs,
            "outputs_base64": outputs_b64,
            "missing_outputs": dict(self.missing_outputs),
            "metrics": {k: {"value": m.value, "unit": m.unit} for k, m in self.metrics.items()},
            "wall_time": self.wall_time,
            "cpu_user": self.cpu_user,
            "cpu_system": self.cpu_system,
            "peak_memory": self.peak_memory,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "phases": dict(self.phases),
            "notices": list(self.notices),
            "facts": dict(self.facts),
            "interrupted": self.interrupted,
            "limits": dict(self.limits),
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> "Result":
        """Reads a to_json() document (schema 3, 2 or 1) back; the bytes come out exactly as they
        went in."""
        schema = doc.get("schema")
        if schema not in READABLE_SCHEMAS:
            raise ConfigError(
                f"result document schema {schema!r}: this benchrun reads "
                f"{', '.join(map(str, READABLE_SCHEMAS))}"
            )

        data = _blobjson.decode
        if schema == 1:
            metrics = {name: Metric(float(doc[name]), unit) for name, unit in STANDARD_METRICS}
            vm = doc.get("vm") or {}
            facts = {
                k: v
                for k, v in vm.items()
                if k in ("kernel_release", "accel", "vcpus", "memory_mib", "rootfs_cached")
            }
            for k in ("boot_time", "guest_boot_time", "rootfs_time", "vmm_cpu"):
                if k in vm:
                    metrics[k] = Metric(float(vm[k]), "s")
            if "vmm_peak_memory" in vm:
                metrics["vmm_peak_memory"] = Metric(float(vm["vmm_peak_memory"]), "bytes")
        else:
            metrics = {
                k: Metric(float(m["value"]), str(m["unit"])) for k, m in doc["metrics"].items()
            }
            facts = dict(doc.get("facts") or {})
        outputs_b64 = doc.get("outputs_base64") or {}
        return cls(
            exit_code=int(doc["exit_code"]),
            signal=int(doc["signal"]),
            stdout=data(doc["stdout"], doc.get("stdout_base64")),
            stderr=data(doc["stderr"], doc.get("stderr_base64")),
            stdout_truncated=bool(doc["stdout_truncated"]),
            stderr_truncated=bool(doc["stderr_truncated"]),
            # Schema 3 lists a file in one of the two; schema 2 in outputs (lossy text) and, when
            # not UTF-8, in outputs_base64 too.
            outputs={
                **{p: data(t, None) for p, t in doc["outputs"].items()},
                **{p: data(None, b) for p, b in outputs_b64.items()},
            },
            missing_outputs=dict(doc["missing_outputs"]),
            timed_out=bool(doc["timed_out"]),
            oom_killed=bool(doc["oom_killed"]),
            image_digest=str(doc["image_digest"]),
            backend=str(doc["backend"]),
            start_time=float(doc["start_time"]),
            end_time=float(doc["end_time"]),
            metrics=metrics,
            phases={k: float(v) for k, v in doc["phases"].items()},
            notices=tuple(doc.get("notices", ())),
            facts=facts,
            interrupted=bool(doc.get("interrupted", False)),
            limits=_limits(doc.get("limits")),
        )


def _limits(d: Optional[Mapping[str, Any]]) -> dict[str, Optional[int]]:
    return {str(k): None if v is None else int(v) for k, v in (d or {}).items()}


@dataclass(frozen=True)
class RunSpec:
    """A validated run: what make_spec() returns and execute() consumes. ``options`` are the
    caller's option values as given (names of benchrun.options.OPTIONS); ``core`` is the
    validated native spec built from them."""

    image: str
    store: str
    pull: str  # a pull policy: always | missing | never (benchrun.options.PULL_POLICIES)
    options: Mapping[str, Any]
    core: Any  # benchrun._core.RunSpec
    pull_kwargs: dict[str, Any] = field(default_factory=dict)
    # (name, content) of run(secrets=...): not an option (never in ``options``), never shown.
    secrets: _secrets.Secrets = field(default=(), repr=False, compare=False)

    @property
    def backend(self) -> str:
        return str(self.core.backend)

    @property
    def max_output_bytes(self) -> int:
        return int(self.core.max_output_bytes)

    def with_options(self, **changes: Any) -> "RunSpec":
        """The same run with some options changed (checked again)."""
        options = {**self.options, **changes}
        options = {k: v for k, v in options.items() if v is not None}
        return replace(self, options=options, core=_options.core_spec(options))


# What run(**pull_kwargs) may pass on to benchrun.pull (read once, from pull's own signature).
_PULL_PARAMS = frozenset(inspect.signature(_image.pull).parameters) - {"ref", "store"}


def make_spec(
    image: str,
    command: ArgvArg = None,
    *,
    store: Optional[str | os.PathLike[str]] = None,
    pull: str = "missing",
    secrets: _secrets.SecretsArg = None,
    **kwargs: Any,
) -> RunSpec:
    """Checks every option of run() and returns the RunSpec; does no work (no pull, no run).
    ``kwargs`` are run options (benchrun.options.OPTIONS) and benchrun.pull's keywords."""
    if not isinstance(image, str) or not image:
        raise ConfigError(f"image {image!r}: expected a reference such as busybox or oci:PATH:TAG")
    pull_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in _PULL_PARAMS}
    unknown = sorted(set(kwargs) - set(_options.BY_NAME))
    if unknown:
        raise TypeError(f"run() got unexpected keyword argument(s): {', '.join(unknown)}")
    given = {k: v for k, v in kwargs.items() if v is not None}
    if command is not None:
        given["command"] = command
    core = _options.core_spec(given)
    secret_pairs = _secrets.parse_secrets(secrets)
    if secret_pairs and core.backend == "vm":  # the core refuses it too (vm_backend.cpp)
        raise ConfigError(
            "secrets: the vm backend does not deliver secrets yet (use --backend sandbox; see "
            'docs/security.md "Secrets")'
        )
    return RunSpec(
        image=image,
        store=resolve_store(store),
        pull=_options.parse_pull(pull),
        options=given,
        core=core,
        pull_kwargs=pull_kwargs,
        secrets=secret_pairs,
    )


def load_image(spec: RunSpec) -> tuple[Any, float]:
    """(the image loaded for running, seconds spent pulling), per spec.pull: ``missing`` loads it
    from the store and pulls only when it is not there (or not unpacked, or by a digest this store
    never pulled from that repository); ``never`` only loads; ``always`` pulls first, which for a
    cached image is one manifest request with the run's credentials. Load once, run many:
    execute() takes the loaded image."""
    if spec.pull != "always":
        try:
            return _core.load_run_image(store=spec.store, reference=spec.image), 0.0
        except ImageError as e:  # not in the store (ImageNotFound), or not unpacked
            if spec.pull == "never":
                raise type(e)(f"{e} (pull policy 'never': nothing was pulled)") from None
    t0 = time.perf_counter()
    pulled = _image.pull(spec.image, store=spec.store, **spec.pull_kwargs)
    loaded = _core.load_run_image(store=spec.store, reference=pulled.digest)
    return loaded, time.perf_counter() - t0


def execute(
    spec: RunSpec,
    should_stop: Optional[Callable[[], bool]] = None,
    *,
    image: Any = None,
    pull_s: float = 0.0,
) -> Result:
    """Runs a validated spec: pull and load the image if needed (or run ``image``, a loaded
    image from load_image(), as often as wanted), then the backend. Releases the GIL while it
    runs. ``should_stop`` is polled about every 100 ms while the workload runs (from the running
    thread); when it returns True the run is killed and cleaned up, and the Result has
    ``interrupted`` set."""
    if image is None:
        image, pull_s = load_image(spec)
    d = _core.run(
        image=image,
        spec=spec.core,
        store=spec.store,
        init_binary=guest_init() if spec.backend == "vm" else "",
        # Kernels, initramfs and ext4 images are keyed by content, so stores can share them.
        vm_cache=os.environ.get("BENCHRUN_VM_CACHE", ""),
        should_stop=should_stop,
        # The runs' parent cgroup, which is also the CPU partition (benchrun.host.partition).
        cgroup_parent=cgroup_parent(),
        cpu_lock_dir=cpu_lock_dir(),
        valgrind_launcher=valgrind_launcher() if spec.core.instructions else "",
        pid1_binary=pid1_binary() if spec.core.init else "",
        secrets=list(spec.secrets),
    )
    result = _secrets.redact(Result._from_core(d, pull_s), spec.secrets)
    from benchrun.host import host_state  # cached per process: about a microsecond a run

    result.facts["host_state"] = host_state()
    return result


def cgroup_parent() -> str:
    """The runs' parent cgroup (and CPU partition): $BENCHRUN_CGROUP_PARENT, default benchrun."""
    return os.environ.get("BENCHRUN_CGROUP_PARENT", "") or "benchrun"


def cpu_lock_dir() -> str:
    """The per-CPU lock files of the CPU allocation: host-wide for root (/run/benchrun/cpus), per
    user otherwise (a user cannot create files in /run)."""
    if os.geteuid() == 0:
        return "/run/benchrun/cpus"
    base = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/benchrun-{os.geteuid()}"
    return os.path.join(base, "benchrun", "cpus")


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


def valgrind_launcher() -> str:
    """The static launcher of --instructions installed with this package ($BENCHRUN_VGLAUNCH
    overrides it); the core checks it exists (ValgrindNotFound)."""
    return os.environ.get("BENCHRUN_VGLAUNCH") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "benchrun-vglaunch"
    )


def pid1_binary() -> str:
    """The static init of --init installed with this package ($BENCHRUN_PID1 overrides it); the
    core checks it exists (ConfigError)."""
    return os.environ.get("BENCHRUN_PID1") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "benchrun-pid1"
    )


def run(
    image: str,
    command: ArgvArg = None,
    *,
    store: Optional[str | os.PathLike[str]] = None,
    pull: str = "missing",
    secrets: _secrets.SecretsArg = None,
    **options: Any,
) -> Result:
    """Run ``image`` (a reference, ``oci:PATH[:TAG]``, ``docker-archive:PATH`` or digest) and return
        its Result. Every option is checked before anything happens (ConfigError).

        Options (benchrun.options.OPTIONS, the same as `benchrun run`'s flags):
    {options}

        Process, as ``docker run``: ``entrypoint`` replaces the image's Entrypoint and clears its Cmd
        (``""`` or ``[]`` = none); ``command`` replaces Cmd; ``env`` (dict, or list of ``K=V`` / bare
        ``K`` = the caller's value) overrides the image's Env; ``workdir`` and ``user`` override the
        image's. A timed-out run is killed (``timed_out`` set, partial output kept); a missing output
        file is listed in ``missing_outputs``; capped streams set ``stdout_truncated`` /
        ``stderr_truncated``.

        ``pull``: ``"missing"`` (default) pulls the image if the store lacks it (a name@digest is
        taken from the store only if this store pulled that digest from the same repository),
        ``"always"`` checks with the registry before every run (a manifest HEAD when cached),
        ``"never"`` uses the store only (benchrun.pull's keywords, e.g. ``platform`` or
        credentials, pass through); the time spent is ``phases["pull"]`` (0 when loaded from the
        store). ``secrets``: ``{NAME: bytes | host path}``, each the file ``/run/secrets/NAME``
        (mode 0400, the run's user) on a tmpfs inside the run, kept out of the Result (values in
        stdout, stderr and outputs are redacted as ``***``, with a notice); docs/security.md.
        Raises ConfigError, ImageNotFound (pull="never"), SandboxError, VmError,
        ProtocolError, and pull's errors.
    """
    return execute(make_spec(image, command, store=store, pull=pull, secrets=secrets, **options))


def _signature_and_doc() -> None:
    """run()'s and make_spec()'s signatures and run()'s doc list every option of the table."""
    params = [
        inspect.Parameter("image", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=str),
        inspect.Parameter("command", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None),
        inspect.Parameter("store", inspect.Parameter.KEYWORD_ONLY, default=None),
        inspect.Parameter("pull", inspect.Parameter.KEYWORD_ONLY, default="missing"),
        inspect.Parameter("secrets", inspect.Parameter.KEYWORD_ONLY, default=None),
    ]
    params += [
        inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY, default=None)
        for o in _options.OPTIONS
        if o.name != "command"
    ]
    params.append(inspect.Parameter("pull_kwargs", inspect.Parameter.VAR_KEYWORD))
    for fn in (run, make_spec):
        fn.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    lines = [f"      ``{o.name}``: {o.help}" for o in _options.OPTIONS]
    run.__doc__ = (run.__doc__ or "").replace("{options}", "\n".join(lines))


_signature_and_doc()


__all__ = [
    "DEFAULT_MAX_OUTPUT_BYTES",
    "SCHEMA",
    "Metric",
    "Result",
    "RunSpec",
    "execute",
    "load_image",
    "make_spec",
    "run",
]
