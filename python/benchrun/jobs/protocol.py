"""Bencher's runner <-> server WebSocket protocol (docs/jobs.md; upstream: bencherdev/bencher
lib/bencher_json/src/runner/{websocket,job}.rs). Every frame is one JSON text message with an
"event" tag. This module builds and validates messages: both ends parse what they receive here, so a
malformed or hostile message is a ProtocolError naming the field, never a KeyError deep inside.

Runner -> server: ready{poll_timeout?, runner?}, running, heartbeat, completed{job, results},
failed{job, results, error}, canceled{job}. benchrun extensions on completed/failed: timings?,
host_state?, claim?, iterations?, testbed?.
Server -> runner: ack{job?}, job{uuid, spec, config, oci_token, timeout, created}, no_job, cancel,
update{version, url, checksum}.
"""

from __future__ import annotations

import re
import uuid as _uuid
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence, Union

from benchrun.errors import ProtocolError
from benchrun.jobs import safejson
from benchrun.jobs import status as _status

RUNNER_EVENTS = ("ready", "running", "heartbeat", "completed", "failed", "canceled")
SERVER_EVENTS = ("ack", "job", "no_job", "cancel", "update")
TERMINAL_EVENTS = ("completed", "failed", "canceled")

# Job status numbers and names, as upstream: defined in benchrun.jobs.status (which the CLI can
# import without this module), part of the protocol's namespace here.
PENDING, CLAIMED, RUNNING = _status.PENDING, _status.CLAIMED, _status.RUNNING
COMPLETED, PROCESSED = _status.COMPLETED, _status.PROCESSED
FAILED, CANCELED = _status.FAILED, _status.CANCELED
STATUS_NAMES, TERMINAL_STATUSES = _status.STATUS_NAMES, _status.TERMINAL_STATUSES

# Upstream collection limits (lib/bencher_json/src/lib.rs).
MAX_ENTRYPOINT = 64
MAX_CMD = 64
MAX_FILE_PATHS = 255
MAX_ENV = 255
POLL_TIMEOUT_RANGE = (1, 900)

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def _uuid_str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ProtocolError(f"{where}: expected a UUID string, got {type(value).__name__}")
    try:
        return str(_uuid.UUID(value))
    except ValueError:
        raise ProtocolError(f"{where}: {value[:64]!r} is not a UUID") from None


def _int(value: Any, where: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ProtocolError(f"{where}: expected an integer in [{lo}, {hi}], got {value!r:.64}")
    return value


def _str_list(value: Any, where: str, limit: int) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ProtocolError(f"{where}: expected a list of strings")
    if len(value) > limit:
        raise ProtocolError(f"{where}: {len(value)} items, at most {limit}")
    if any("\0" in v for v in value):
        raise ProtocolError(f"{where}: NUL byte in an item")
    return list(value)


def loads(text: str | bytes, max_bytes: int) -> dict[str, Any]:
    """One frame -> a JSON object with a string "event"."""
    if len(text) > max_bytes:
        raise ProtocolError(f"message of {len(text)} bytes exceeds the limit of {max_bytes}")
    doc = safejson.loads(text)  # depth <= 64, finite 64-bit numbers (UnsafeJson otherwise)
    if not isinstance(doc, dict) or not isinstance(doc.get("event"), str):
        raise ProtocolError("message is not a JSON object with an 'event' string")
    return doc


def dumps(msg: Mapping[str, Any]) -> str:
    return safejson.dumps(msg, separators=(",", ":"), ensure_ascii=False)


# --- runner -> server ---------------------------------------------------------------------------


def ready(poll_timeout: Optional[int] = None, runner: Optional[Mapping[str, Any]] = None) -> dict:
    msg: dict[str, Any] = {"event": "ready"}
    if poll_timeout is not None:
        msg["poll_timeout"] = _int(poll_timeout, "poll_timeout", *POLL_TIMEOUT_RANGE)
    if runner is not None:
        msg["runner"] = dict(runner)
    return msg


def running() -> dict:
    return {"event": "running"}


def heartbeat() -> dict:
    return {"event": "heartbeat"}


def _with_timings(msg: dict, timings: Optional[Mapping[str, float]]) -> dict:
    """benchrun's optional extension: {"timings": {"pull": s, "prepare": s}}, the setup time the
    runner spent outside the workload (never billed as run time). Upstream's serde ignores unknown
    fields, and parse_runner_message passes unknown top-level keys through."""
    if timings is not None:
        msg["timings"] = {k: round(float(v), 6) for k, v in timings.items()}
    return msg


def _with_host_state(msg: dict, host_state: Optional[Mapping[str, Any]]) -> dict:
    """benchrun's optional extension: {"host_state": {...}}, the attestation of the host the last
    iteration ran on (benchrun.host.attestation: tuned, differs, cpus, journal, noise). Like
    `timings`, upstream ignores it."""
    if host_state is not None:
        msg["host_state"] = dict(host_state)
    return msg


def _with_measurements(
    msg: dict,
    iterations: Optional[Sequence[Mapping[str, Any]]],
    testbed: Optional[Mapping[str, Any]],
) -> dict:
    """benchrun's optional extensions: {"iterations": [{"metrics": {name: {"value", "unit"}},
    "start": unix s, "end": unix s}, ...]}, one entry per entry of `results` (the runner's own
    measurements: the same metrics map as a local Result), and {"testbed": {...}}, the facts that
    identify the host for history (benchrun.agent.testbed). Upstream ignores both."""
    if iterations is not None:
        msg["iterations"] = [dict(it) for it in iterations]
    if testbed is not None:
        msg["testbed"] = dict(testbed)
    return msg


def completed(
    job: str,
    results: list[dict],
    timings: Optional[Mapping[str, float]] = None,
    host_state: Optional[Mapping[str, Any]] = None,
    iterations: Optional[Sequence[Mapping[str, Any]]] = None,
    testbed: Optional[Mapping[str, Any]] = None,
) -> dict:
    return _with_measurements(
        _with_host_state(
            _with_timings({"event": "completed", "job": job, "results": results}, timings),
            host_state,
        ),
        iterations,
        testbed,
    )


def failed(
    job: str,
    results: list[dict],
    error: str,
    timings: Optional[Mapping[str, float]] = None,
    host_state: Optional[Mapping[str, Any]] = None,
    iterations: Optional[Sequence[Mapping[str, Any]]] = None,
    testbed: Optional[Mapping[str, Any]] = None,
) -> dict:
    return _with_measurements(
        _with_host_state(
            _with_timings(
                {"event": "failed", "job": job, "results": results, "error": error}, timings
            ),
            host_state,
        ),
        iterations,
        testbed,
    )


def canceled(job: str) -> dict:
    return {"event": "canceled", "job": job}


def with_claim(msg: dict, claim: Optional[str]) -> dict:
    """benchrun's extension: the claim (from the `job` message) a running/heartbeat/terminal
    message answers. The server refuses a result for a claim that is no longer current."""
    if claim is not None:
        msg["claim"] = claim
    return msg


def iteration_output(
    exit_code: int, stdout: str = "", stderr: str = "", output: Optional[Mapping[str, str]] = None
) -> dict:
    """JsonIterationOutput: empty stdout/stderr/output are left out, as upstream does."""
    out: dict[str, Any] = {"exit_code": int(exit_code)}
    if stdout:
        out["stdout"] = stdout
    if stderr:
        out["stderr"] = stderr
    if output:
        out["output"] = dict(output)
    return out


def _results(value: Any, where: str) -> list[dict]:
    if not isinstance(value, list):
        raise ProtocolError(f"{where}: expected a list of iteration outputs")
    for i, it in enumerate(value):
        w = f"{where}[{i}]"
        if not isinstance(it, dict):
            raise ProtocolError(f"{w}: expected an object")
        _int(it.get("exit_code"), f"{w}.exit_code", -(2**31), 2**31 - 1)
        for k in ("stdout", "stderr"):
            if k in it and not isinstance(it[k], str):
                raise ProtocolError(f"{w}.{k}: expected a string")
        out = it.get("output", {})
        if not isinstance(out, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in out.items()
        ):
            raise ProtocolError(f"{w}.output: expected an object of path -> string")
        unknown = set(it) - {"exit_code", "stdout", "stderr", "output"}
        if unknown:
            raise ProtocolError(f"{w}: unknown field(s) {sorted(unknown)}")
    return value


MAX_TIMINGS = 16
TIMING_RANGE = (0.0, 1e7)  # seconds; a job runs at most 7 days


def _timings(value: Any, where: str) -> dict[str, float]:
    """benchrun's `timings` extension: {name: seconds}, every value a finite number in range
    (UnsafeJson names the field otherwise: a value the stores could not hold is never stored)."""
    if not isinstance(value, dict) or len(value) > MAX_TIMINGS:
        raise safejson.UnsafeJson(f"{where}: expected an object of at most {MAX_TIMINGS} numbers")
    out = {}
    for k, v in value.items():
        if not isinstance(k, str) or not 0 < len(k) <= 64:
            raise safejson.UnsafeJson(f"{where}: names are 1-64 characters")
        out[k] = safejson.finite(v, f"{where}.{k[:64]}", *TIMING_RANGE)
    return out


MAX_HOST_STATE = 8 << 10  # bytes of the serialised `host_state` object


def _host_state(value: Any, where: str) -> dict[str, Any]:
    """benchrun's `host_state` extension: a JSON object of at most MAX_HOST_STATE bytes when
    serialised (the frame itself was already checked for depth and finite numbers by loads).
    UnsafeJson otherwise, as for `timings`: the channel closes naming the field."""
    if not isinstance(value, dict):
        raise safejson.UnsafeJson(f"{where}: expected an object, got {type(value).__name__}")
    size = len(dumps(value).encode())
    if size > MAX_HOST_STATE:
        raise safejson.UnsafeJson(
            f"{where}: {size} bytes when serialised, at most {MAX_HOST_STATE}"
        )
    return value


MAX_ITERATIONS = 10_000  # as config.iter
MAX_METRICS = 64  # metrics per iteration
METRIC_RANGE = (-1e18, 1e18)  # finite values a metric may take (bytes, counts, seconds)
TIME_RANGE = (0.0, 1e11)  # unix seconds
_METRIC_NAME = re.compile(r"^[A-Za-z0-9_.:/-]{1,64}$")
MAX_TESTBED = 4 << 10  # bytes of the serialised `testbed` object


def metric_name_ok(name: Any) -> bool:
    return isinstance(name, str) and bool(_METRIC_NAME.match(name))


def parse_metrics(value: Any, where: str) -> dict[str, dict[str, Any]]:
    """A metrics map {name: {"value": number, "unit": string}} (a local Result's metrics as JSON):
    at most MAX_METRICS names of [A-Za-z0-9_.:/-]{1,64}, finite values, units of at most 16
    characters. UnsafeJson naming the field otherwise."""
    if not isinstance(value, dict) or len(value) > MAX_METRICS:
        raise safejson.UnsafeJson(f"{where}: expected an object of at most {MAX_METRICS} metrics")
    out: dict[str, dict[str, Any]] = {}
    for name, m in value.items():
        if not isinstance(name, str) or not _METRIC_NAME.match(name):
            raise safejson.UnsafeJson(f"{where}: metric names are 1-64 of [A-Za-z0-9_.:/-]")
        if not isinstance(m, dict) or set(m) - {"value", "unit"}:
            raise safejson.UnsafeJson(f"{where}.{name}: expected {{value, unit}}")
        unit = m.get("unit", "")
        if not isinstance(unit, str) or len(unit) > 16:
            raise safejson.UnsafeJson(f"{where}.{name}.unit: a string of at most 16 characters")
        out[name] = {
            "value": safejson.finite(m.get("value"), f"{where}.{name}.value", *METRIC_RANGE),
            "unit": unit,
        }
    return out


def _iterations(value: Any, results: list, where: str) -> list[dict[str, Any]]:
    """benchrun's `iterations` extension, one entry per iteration of `results`."""
    if not isinstance(value, list) or len(value) > MAX_ITERATIONS:
        raise safejson.UnsafeJson(f"{where}: expected a list of at most {MAX_ITERATIONS} entries")
    if len(value) != len(results):
        raise safejson.UnsafeJson(
            f"{where}: {len(value)} entries for {len(results)} results (one per iteration)"
        )
    out = []
    for i, it in enumerate(value):
        w = f"{where}[{i}]"
        if not isinstance(it, dict) or set(it) - {"metrics", "start", "end"}:
            raise safejson.UnsafeJson(f"{w}: expected an object of metrics, start, end")
        entry: dict[str, Any] = {"metrics": parse_metrics(it.get("metrics", {}), f"{w}.metrics")}
        for k in ("start", "end"):
            if it.get(k) is not None:
                entry[k] = safejson.finite(it[k], f"{w}.{k}", *TIME_RANGE)
        out.append(entry)
    return out


def _testbed(value: Any, where: str) -> dict[str, Any]:
    """benchrun's `testbed` extension: a flat object of strings, numbers, booleans and nulls of
    at most MAX_TESTBED bytes serialised."""
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and (v is None or isinstance(v, (str, int, float, bool)))
        for k, v in value.items()
    ):
        raise safejson.UnsafeJson(f"{where}: expected a flat object of scalars")
    size = len(dumps(value).encode())
    if size > MAX_TESTBED:
        raise safejson.UnsafeJson(f"{where}: {size} bytes when serialised, at most {MAX_TESTBED}")
    return value


parse_testbed = _testbed


def parse_runner_message(text: str | bytes, max_bytes: int) -> dict[str, Any]:
    """Validates a runner's frame (server side)."""
    msg = loads(text, max_bytes)
    event = msg["event"]
    if event not in RUNNER_EVENTS:
        raise ProtocolError(f"unknown runner event {event[:64]!r}")
    if event == "ready":
        if msg.get("poll_timeout") is not None:
            _int(msg["poll_timeout"], "ready.poll_timeout", *POLL_TIMEOUT_RANGE)
        if msg.get("runner") is not None and not isinstance(msg["runner"], dict):
            raise ProtocolError("ready.runner: expected an object")
    if event in TERMINAL_EVENTS:
        msg["job"] = _uuid_str(msg.get("job"), f"{event}.job")
    if msg.get("claim") is not None:
        msg["claim"] = _uuid_str(msg["claim"], f"{event}.claim")
    if event in ("completed", "failed"):
        _results(msg.get("results"), f"{event}.results")
        if msg.get("timings") is not None:
            msg["timings"] = _timings(msg["timings"], f"{event}.timings")
        if msg.get("host_state") is not None:
            msg["host_state"] = _host_state(msg["host_state"], f"{event}.host_state")
        if msg.get("iterations") is not None:
            msg["iterations"] = _iterations(
                msg["iterations"], msg["results"], f"{event}.iterations"
            )
        if msg.get("testbed") is not None:
            msg["testbed"] = _testbed(msg["testbed"], f"{event}.testbed")
    if event == "failed" and not isinstance(msg.get("error"), str):
        raise ProtocolError("failed.error: expected a string")
    return msg


# --- server -> runner ---------------------------------------------------------------------------


def ack(job: Optional[str] = None) -> dict:
    return {"event": "ack", "job": job} if job is not None else {"event": "ack"}


def no_job() -> dict:
    return {"event": "no_job"}


def cancel() -> dict:
    return {"event": "cancel"}


@dataclass(frozen=True)
class JobConfig:
    """The `config` of a claimed job: what to run (upstream JsonJobConfig)."""

    registry: str
    project: str
    digest: str
    image: Optional[str] = None
    entrypoint: Optional[list[str]] = None
    cmd: Optional[list[str]] = None
    env: dict[str, str] = field(default_factory=dict)
    timeout: int = 60
    file_paths: list[str] = field(default_factory=list)
    # Iterations, or "auto": the agent chooses the count that detects a relative change
    # ``detect`` on its host (benchrun.noise.repetitions_for_detect, from `benchrun host noise`).
    iter: Union[int, str] = 1
    allow_failure: bool = False
    detect: Optional[float] = None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "registry": self.registry,
            "project": self.project,
            "digest": self.digest,
            "timeout": self.timeout,
        }
        if self.image is not None:
            d["image"] = self.image
        if self.entrypoint is not None:
            d["entrypoint"] = self.entrypoint
        if self.cmd is not None:
            d["cmd"] = self.cmd
        if self.env:
            d["env"] = self.env
        if self.file_paths:
            d["file_paths"] = self.file_paths
        if self.iter != 1:
            d["iter"] = self.iter
        if self.detect is not None:
            d["detect"] = self.detect
        if self.allow_failure:
            d["allow_failure"] = True
        return d


def parse_config(c: Any, where: str = "config") -> JobConfig:
    if not isinstance(c, dict):
        raise ProtocolError(f"{where}: expected an object")
    registry = c.get("registry")
    if not isinstance(registry, str) or not re.match(r"^https?://[^/\s]+/?$", registry):
        raise ProtocolError(
            f"{where}.registry: expected an http(s) URL of a registry, got {registry!r:.80}"
        )
    project = _uuid_str(c.get("project"), f"{where}.project")
    digest = c.get("digest")
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise ProtocolError(f"{where}.digest: expected sha256:<64 hex>, got {digest!r:.80}")
    env = c.get("env") or {}
    if not isinstance(env, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and k and "=" not in k and "\0" not in k + v
        for k, v in env.items()
    ):
        raise ProtocolError(f"{where}.env: expected an object of NAME -> string")
    if len(env) > MAX_ENV:
        raise ProtocolError(f"{where}.env: {len(env)} entries, at most {MAX_ENV}")
    paths = _str_list(c.get("file_paths") or [], f"{where}.file_paths", MAX_FILE_PATHS)
    if not all(p.startswith("/") for p in paths):
        raise ProtocolError(f"{where}.file_paths: paths must be absolute")
    if c.get("image") is not None and not isinstance(c["image"], str):
        raise ProtocolError(f"{where}.image: expected a string")
    allow = c.get("allow_failure", False)
    if not isinstance(allow, bool):
        raise ProtocolError(f"{where}.allow_failure: expected a boolean")
    iters: Union[int, str]
    detect = c.get("detect")
    if c.get("iter") == "auto":
        if isinstance(detect, bool) or not isinstance(detect, (int, float)) or not 0 < detect < 1:
            raise ProtocolError(
                f"{where}.detect: iter 'auto' needs the relative change to detect, between 0 "
                f"and 1 (0.02 for 2 %), got {detect!r:.40}"
            )
        iters, detect = "auto", float(detect)
    else:
        iters = _int(c.get("iter", 1), f"{where}.iter", 0, 10_000)
        if detect is not None:
            raise ProtocolError(f"{where}.detect: only used with iter 'auto'")
    return JobConfig(
        registry=registry.rstrip("/"),
        project=project,
        digest=digest,
        image=c.get("image"),
        entrypoint=_str_list(c["entrypoint"], f"{where}.entrypoint", MAX_ENTRYPOINT)
        if c.get("entrypoint") is not None
        else None,
        cmd=_str_list(c["cmd"], f"{where}.cmd", MAX_CMD) if c.get("cmd") is not None else None,
        env=dict(env),
        timeout=_int(c.get("timeout", 60), f"{where}.timeout", 1, 7 * 24 * 3600),
        file_paths=paths,
        iter=iters,
        allow_failure=allow,
        detect=detect,
    )


@dataclass(frozen=True)
class JobSpec:
    """The `spec` of a claimed job: the resources it gets (upstream JsonSpec)."""

    cpu: int = 1
    memory: int = 1 << 30
    disk: int = 10 << 30
    network: bool = False
    sandbox: Optional[
        str
    ] = None  # upstream "firecracker" | null; benchrun: "sandbox" | "vm" | null
    extra: dict[str, Any] = field(default_factory=dict)  # uuid, name, slug, ... passed through
    # benchrun extension: performance counters (run option `counters`); None: the default set.
    counters: Optional[tuple[str, ...]] = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            **self.extra,
            "cpu": self.cpu,
            "memory": self.memory,
            "disk": self.disk,
            "network": self.network,
            "sandbox": self.sandbox,
        }
        if self.counters is not None:
            out["counters"] = list(self.counters)
        return out


def parse_spec(s: Any, where: str = "spec") -> JobSpec:
    if not isinstance(s, dict):
        raise ProtocolError(f"{where}: expected an object")
    net = s.get("network", False)
    if not isinstance(net, bool):
        raise ProtocolError(f"{where}.network: expected a boolean")
    sandbox = s.get("sandbox")
    if sandbox is not None and not isinstance(sandbox, str):
        raise ProtocolError(f"{where}.sandbox: expected a string or null")
    known = {"cpu", "memory", "disk", "network", "sandbox", "counters"}
    counters = s.get("counters")
    if counters is not None:
        if not isinstance(counters, list) or not all(
            isinstance(c, str) and c and len(c) <= 64 for c in counters
        ):
            raise ProtocolError(f"{where}.counters: expected a list of counter names")
        if len(counters) > 64:
            raise ProtocolError(f"{where}.counters: at most 64 names")
    return JobSpec(
        counters=tuple(counters) if counters is not None else None,
        cpu=_int(s.get("cpu", 1), f"{where}.cpu", 1, 4096),
        memory=_int(s.get("memory", 1 << 30), f"{where}.memory", 6 << 20, 1 << 50),
        disk=_int(s.get("disk", 10 << 30), f"{where}.disk", 1 << 20, 1 << 60),
        network=net,
        sandbox=sandbox,
        extra={k: v for k, v in s.items() if k not in known},
    )


@dataclass(frozen=True)
class ClaimedJob:
    """A `job` message (upstream JsonClaimedJob)."""

    uuid: str
    spec: JobSpec
    config: JobConfig
    oci_token: str
    timeout: int
    created: Optional[str] = None
    # benchrun extension: the claim this job message is; results and heartbeats answer it.
    claim: Optional[str] = None

    def to_message(self) -> dict[str, Any]:
        msg = {
            "event": "job",
            "uuid": self.uuid,
            "spec": self.spec.to_json(),
            "config": self.config.to_json(),
            "oci_token": self.oci_token,
            "timeout": self.timeout,
        }
        if self.created is not None:
            msg["created"] = self.created
        if self.claim is not None:
            msg["claim"] = self.claim
        return msg


def parse_server_message(text: str | bytes, max_bytes: int) -> dict[str, Any]:
    """Validates a server's frame (agent side). A `job` comes back with "claimed": ClaimedJob."""
    msg = loads(text, max_bytes)
    event = msg["event"]
    if event not in SERVER_EVENTS:
        raise ProtocolError(f"unknown server event {event[:64]!r}")
    if event == "ack" and msg.get("job") is not None:
        msg["job"] = _uuid_str(msg["job"], "ack.job")
    if event == "job":
        token = msg.get("oci_token")
        if not isinstance(token, str):
            raise ProtocolError("job.oci_token: expected a string")
        msg["claimed"] = ClaimedJob(
            uuid=_uuid_str(msg.get("uuid"), "job.uuid"),
            spec=parse_spec(msg.get("spec")),
            config=parse_config(msg.get("config")),
            oci_token=token,
            timeout=_int(msg.get("timeout"), "job.timeout", 1, 7 * 24 * 3600),
            created=msg.get("created") if isinstance(msg.get("created"), str) else None,
            claim=_uuid_str(msg["claim"], "job.claim") if msg.get("claim") is not None else None,
        )
    if event == "update":
        for k in ("version", "url", "checksum"):
            if not isinstance(msg.get(k), str):
                raise ProtocolError(f"update.{k}: expected a string")
    return msg
