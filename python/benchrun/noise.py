"""The host's measured noise (`benchrun host noise`): runs the calibration workloads that ship
with benchrun (benchrun-calibrate: a CPU-bound loop, a memory-bound pointer chase, a system-call
loop; each many short repetitions) in the sandbox on the benchmark CPUs, and stores per host:

  * per workload: n repetitions, median_s (seconds per repetition), cv (stddev / mean, ddof=1),
    spread ((median - min) / median: how far the best repetition is below the typical one), and
    mdc: the minimum detectable relative change at 95 % confidence and 80 % power for 10, 30
    and 100 repetitions per side (benchrun.power);
  * score: the overall noise, the root mean square of the workloads' CVs (a pooled relative
    variance: one noisy resource shows in it, unlike in a median).

The figure lives in ``<state dir>/noise.json`` (state_dir(): $BENCHRUN_HOST_STATE, else
/var/lib/benchrun/host as root, else $XDG_STATE_HOME/benchrun/host or
~/.local/state/benchrun/host), written atomically. Campaigns and jobs with
repetitions="auto" read it (repetitions_for_detect)."""

from __future__ import annotations

import json
import math
import os
import socket
import statistics
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional, Sequence

from benchrun.errors import BenchrunError, ConfigError
from benchrun.host.settings import format_cpus

SCHEMA = 1
WORKLOADS = ("cpu", "mem", "syscall")
MDC_REPETITIONS = (10, 30, 100)
MIN_REPETITIONS = 5  # per workload: fewer cannot give a meaningful CV
CALIBRATE = "benchrun-calibrate"
_IN_IMAGE = "/benchrun-calibrate"


class CalibrationError(BenchrunError):
    """The calibration workload failed or printed something that is not its output format."""


# --- where the figure lives ---------------------------------------------------------------------


def state_dir(environ: Optional[Mapping[str, str]] = None, euid: Optional[int] = None) -> str:
    """The per-host state directory (see the module docstring); not created here."""
    env = os.environ if environ is None else environ
    if env.get("BENCHRUN_HOST_STATE"):
        return env["BENCHRUN_HOST_STATE"]
    if (os.geteuid() if euid is None else euid) == 0:
        return "/var/lib/benchrun/host"
    base = env.get("XDG_STATE_HOME") or os.path.join(
        env.get("HOME") or os.path.expanduser("~"), ".local", "state"
    )
    return os.path.join(base, "benchrun", "host")


def noise_path(environ: Optional[Mapping[str, str]] = None) -> str:
    return os.path.join(state_dir(environ), "noise.json")


def save(doc: Mapping[str, Any], path: Optional[str] = None) -> str:
    """Writes the figure atomically (temp file, fsync, rename); returns the path."""
    check_document(doc)
    path = path or noise_path()
    d = os.path.dirname(path) or "."
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".noise.", suffix=".json", dir=d)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def load(path: Optional[str] = None) -> dict[str, Any]:
    """The stored figure; ConfigError (saying what to run) when there is none or it is broken."""
    path = path or noise_path()
    try:
        with open(path) as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise ConfigError(
            f"no noise figure for this host ({path}): run `benchrun host noise` first"
        ) from None
    except (OSError, ValueError) as e:
        raise ConfigError(
            f"noise figure '{path}': unreadable ({e}); run `benchrun host noise` again"
        ) from None
    try:
        check_document(doc)
    except ConfigError as e:
        raise ConfigError(f"noise figure '{path}': {e}; run `benchrun host noise` again") from None
    return doc


def _number(doc: Mapping[str, Any], key: str, where: str, minimum: float = 0.0) -> float:
    v = doc.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ConfigError(f"{where}.{key}: expected a number, got {v!r:.40}")
    if v < minimum:
        raise ConfigError(f"{where}.{key}: {v} is below {minimum}")
    return float(v)


def check_document(doc: Any) -> None:
    """ConfigError unless ``doc`` follows the noise.json schema (version SCHEMA)."""
    if not isinstance(doc, Mapping):
        raise ConfigError("expected a JSON object")
    if doc.get("schema") != SCHEMA:
        raise ConfigError(f"schema {doc.get('schema')!r}: this benchrun reads schema {SCHEMA}")
    for key in ("measured_at", "duration_s", "score"):
        _number(doc, key, "noise")
    for key in ("host", "cpus"):
        if not isinstance(doc.get(key), str):
            raise ConfigError(f"noise.{key}: expected a string")
    workloads = doc.get("workloads")
    if not isinstance(workloads, Mapping) or not workloads:
        raise ConfigError("noise.workloads: expected an object with at least one workload")
    for name, w in workloads.items():
        where = f"noise.workloads.{name}"
        if not isinstance(w, Mapping):
            raise ConfigError(f"{where}: expected an object")
        for key in ("cv", "spread", "median_s"):
            _number(w, key, where)
        n = w.get("n")
        if isinstance(n, bool) or not isinstance(n, int) or n < 2:
            raise ConfigError(f"{where}.n: expected a whole number >= 2")
        mdc = w.get("mdc")
        if not isinstance(mdc, Mapping) or not mdc:
            raise ConfigError(f"{where}.mdc: expected an object")
        for k in mdc:
            if not str(k).isdigit():
                raise ConfigError(f"{where}.mdc: key {k!r} is not a repetition count")
            _number(mdc, k, f"{where}.mdc")


# --- the calibration binary's output ------------------------------------------------------------


def parse_calibration(text: str) -> dict[str, list[float]]:
    """{mode: [seconds per repetition, in run order]} from benchrun-calibrate's output (format in
    cpp/tools/calibrate.c). CalibrationError on anything else, or on a mode whose `end` count
    does not match its repetitions (the output was cut)."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "benchrun-calibrate 1":
        head = lines[0][:60] if lines else "(empty)"
        raise CalibrationError(f"calibration output: expected 'benchrun-calibrate 1', got {head!r}")
    reps: dict[str, list[float]] = {}
    ended: set[str] = set()
    for no, line in enumerate(lines[1:], start=2):
        parts = line.split()
        try:
            kind, mode = parts[0], parts[1]
            if kind == "mode" and len(parts) == 4 and parts[2] == "work" and int(parts[3]) > 0:
                if mode in reps:
                    raise ValueError("mode repeated")
                reps[mode] = []
            elif kind == "rep" and len(parts) == 3 and mode in reps and mode not in ended:
                ns = int(parts[2])
                if ns <= 0:
                    raise ValueError("non-positive duration")
                reps[mode].append(ns / 1e9)
            elif kind == "end" and len(parts) == 3 and mode in reps and mode not in ended:
                if int(parts[2]) != len(reps[mode]):
                    raise ValueError(f"end count {parts[2]} but {len(reps[mode])} repetitions")
                ended.add(mode)
            else:
                raise ValueError("unexpected record")
        except (IndexError, ValueError) as e:
            raise CalibrationError(f"calibration output line {no}: {line[:80]!r}: {e}") from None
    unfinished = sorted(set(reps) - ended)
    if unfinished:
        raise CalibrationError(f"calibration output: mode(s) {', '.join(unfinished)} cut short")
    if not reps:
        raise CalibrationError("calibration output: no workload ran")
    return reps


# --- the figures --------------------------------------------------------------------------------


def summarize(samples: Sequence[float], mdc_at: Iterable[int] = MDC_REPETITIONS) -> dict[str, Any]:
    """One workload's figures (see the module docstring) from its repetitions' durations."""
    from benchrun.power import minimum_detectable_change

    n = len(samples)
    if n < MIN_REPETITIONS:
        raise CalibrationError(
            f"{n} repetitions: at least {MIN_REPETITIONS} are needed (use a longer --duration)"
        )
    mean = statistics.fmean(samples)
    median = statistics.median(samples)
    cv = statistics.stdev(samples) / mean
    return {
        "n": n,
        "median_s": median,
        "cv": cv,
        "spread": (median - min(samples)) / median,
        "mdc": {str(k): minimum_detectable_change(k, cv) for k in mdc_at},
    }


def score(workloads: Mapping[str, Mapping[str, Any]]) -> float:
    """The overall noise: root mean square of the workloads' CVs."""
    cvs = [float(w["cv"]) for w in workloads.values()]
    return math.sqrt(sum(c * c for c in cvs) / len(cvs))


def figures(
    samples: Mapping[str, Sequence[float]], *, cpus: str, duration_s: float, host: str = ""
) -> dict[str, Any]:
    """The noise.json document from parsed calibration samples."""
    workloads = {mode: summarize(s) for mode, s in samples.items()}
    return {
        "schema": SCHEMA,
        "measured_at": time.time(),
        "host": host or socket.gethostname(),
        "cpus": cpus,
        "duration_s": float(duration_s),
        "score": score(workloads),
        "workloads": workloads,
    }


# --- running the calibration --------------------------------------------------------------------


def calibrate_binary() -> str:
    """The static calibration binary installed with this package ($BENCHRUN_CALIBRATE overrides
    it, e.g. for a development build)."""
    path = os.environ.get("BENCHRUN_CALIBRATE") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), CALIBRATE
    )
    if not os.path.isfile(path):
        raise ConfigError(
            f"the calibration workload is missing ({path}): reinstall benchrun, or set "
            "BENCHRUN_CALIBRATE to a benchrun-calibrate binary"
        )
    return path


def parse_cpu_list(text: str) -> list[int]:
    """ "0-3,6" -> [0, 1, 2, 3, 6] (the kernel's cpu list format); ConfigError if malformed."""
    out: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part:
                a, b = (int(x) for x in part.split("-", 1))
                if a > b:
                    raise ValueError
                out.update(range(a, b + 1))
            else:
                out.add(int(part))
        except ValueError:
            raise ConfigError(f"cpus {text!r}: expected a list like 0-3,6") from None
    if not out or min(out) < 0:
        raise ConfigError(f"cpus {text!r}: expected a list like 0-3,6")
    return sorted(out)


format_cpu_list = format_cpus  # the kernel's list format, as benchrun.host writes it


@dataclass(frozen=True)
class NoiseRun:
    """What measure() did: the document, and the raw samples for whoever wants them."""

    doc: dict[str, Any]
    samples: dict[str, list[float]]


def measure(
    *,
    duration: float = 6.0,
    cpus: Optional[Sequence[int]] = None,
    backend: str = "sandbox",
    store: Optional[str] = None,
    workloads: Sequence[str] = WORKLOADS,
    rep_ms: float = 5.0,
    mem_mib: int = 64,
) -> NoiseRun:
    """Runs the calibration workloads for ``duration`` seconds in all (shared equally) on
    ``cpus`` (default: the CPUs this process may use) and returns the figures (not saved)."""
    from benchrun import layout, runner

    if not (isinstance(duration, (int, float)) and math.isfinite(duration) and duration > 0):
        raise ConfigError(f"duration {duration!r}: expected seconds > 0")
    bad = sorted(set(workloads) - set(WORKLOADS))
    if bad or not workloads:
        raise ConfigError(f"workloads {list(workloads)}: choose from {', '.join(WORKLOADS)}")
    allowed = os.sched_getaffinity(0)
    chosen = sorted(allowed) if cpus is None else sorted(set(cpus))
    outside = sorted(set(chosen) - allowed)
    if outside:
        raise ConfigError(
            f"cpus {format_cpu_list(chosen)}: CPU(s) {format_cpu_list(outside)} are not available "
            f"to benchrun (it may use {format_cpu_list(allowed)})"
        )
    with open(calibrate_binary(), "rb") as f:
        binary = f.read()
    argv = [_IN_IMAGE, "--duration", f"{duration:g}", "--rep-ms", f"{rep_ms:g}"]
    argv += ["--mem-mib", str(mem_mib), *workloads]
    with tempfile.TemporaryDirectory(prefix="benchrun-noise-") as tmp:
        ref = layout.write_image(
            tmp,
            {_IN_IMAGE: (0o755, binary)},
            cmd=argv,
            tag="calibrate",
            created_by="benchrun host noise",
        )
        memory = max(64 << 20, (mem_mib << 20) * 2)
        spec = runner.make_spec(
            ref,
            store=store,
            backend=backend,
            memory=memory,
            timeout=duration * 4 + 60,
            cpuset_cpus=chosen,
        )
        result = runner.execute(spec)
    if result.exit_code != 0 or result.signal or result.timed_out or result.oom_killed:
        why = (
            "timed out"
            if result.timed_out
            else "OOM-killed"
            if result.oom_killed
            else f"killed by signal {result.signal}"
            if result.signal
            else f"exit {result.exit_code}"
        )
        tail = result.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        raise CalibrationError(f"calibration workload failed ({why}): {tail[0][:200]}")
    samples = parse_calibration(result.stdout.decode(errors="replace"))
    doc = figures(samples, cpus=format_cpu_list(chosen), duration_s=duration)
    return NoiseRun(doc=doc, samples=samples)


# --- repetitions="auto" -------------------------------------------------------------------------


def repetitions_for_detect(
    detect: float, doc: Optional[Mapping[str, Any]] = None, *, minimum: int = 2
) -> int:
    """Repetitions per variant to detect a relative change ``detect`` (0.02 = 2 %) at 95 %
    confidence and 80 % power, given the host's stored noise score (load() when ``doc`` is
    None: ConfigError saying to run `benchrun host noise` when there is none)."""
    from benchrun.power import repetitions_for

    if isinstance(detect, bool) or not isinstance(detect, (int, float)) or not 0 < detect < 1:
        raise ConfigError(f"detect {detect!r}: expected a relative change between 0 and 1 (0.02)")
    if doc is None:
        doc = load()
    else:
        check_document(doc)
    return max(minimum, repetitions_for(float(detect), float(doc["score"])))


def age_s(doc: Mapping[str, Any], now: Optional[float] = None) -> float:
    """Seconds since the figure was measured."""
    return (time.time() if now is None else now) - float(doc["measured_at"])


__all__ = [
    "CalibrationError",
    "NoiseRun",
    "SCHEMA",
    "WORKLOADS",
    "age_s",
    "calibrate_binary",
    "check_document",
    "figures",
    "format_cpu_list",
    "load",
    "measure",
    "noise_path",
    "parse_calibration",
    "parse_cpu_list",
    "repetitions_for_detect",
    "save",
    "score",
    "state_dir",
    "summarize",
]
