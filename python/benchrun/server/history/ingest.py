"""What goes into the history: a job's `spec.history` (branch, commit, where its numbers come
from) checked at submission, the (benchmark, measure) samples of a completed job, and uploaded
BMF results checked and bounded before anything is stored.

A job's samples come from its iterations: with "metrics": "bmf" each iteration's stdout is a BMF
document (one sample per iteration and benchmark/measure); with "metrics": "run" (the default)
the iterations' run metrics the agent measured (wall_time, cpu_user, peak_memory, ... with units)
under the benchmark name. Failed iterations (non-zero exit) give no sample."""

from __future__ import annotations

import math
import re
from typing import Any, Mapping, Optional

from benchrun import metrics as _metrics
from benchrun.errors import ConfigError

MAX_NAME = 256  # branch, commit, benchmark, measure
MAX_POINTS = 1000  # (benchmark, measure) pairs per upload or job
MAX_SAMPLES = 10_000  # samples per point
SOURCES = ("run", "bmf")
RUN_MEASURES = ("wall_time", "cpu_user", "cpu_system", "peak_memory")
_NAME = re.compile(r"^[^\x00-\x1f\x7f]+$")

Samples = dict[tuple[str, str], tuple[Optional[str], list[float]]]  # (bench, measure) -> unit, xs


def name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME:
        raise ConfigError(f"{where}: expected a non-empty string of at most {MAX_NAME} characters")
    if not _NAME.match(value):
        raise ConfigError(f"{where}: control characters are not allowed")
    return value.strip()


def parse_history_spec(doc: Any, where: str = "job.spec.history") -> dict[str, Any]:
    """{"branch", "commit", "benchmark"?, "metrics": "run"|"bmf", "measures"?: [names]}."""
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: expected an object")
    unknown = set(doc) - {"branch", "commit", "benchmark", "metrics", "measures"}
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {sorted(unknown)}")
    out: dict[str, Any] = {
        "branch": name(doc.get("branch"), f"{where}.branch"),
        "commit": name(doc.get("commit"), f"{where}.commit"),
        "metrics": doc.get("metrics", "run"),
    }
    if out["metrics"] not in SOURCES:
        raise ConfigError(f"{where}.metrics: expected one of {', '.join(SOURCES)}")
    if doc.get("benchmark") is not None:
        out["benchmark"] = name(doc["benchmark"], f"{where}.benchmark")
    if doc.get("measures") is not None:
        ms = doc["measures"]
        if not isinstance(ms, list) or not 0 < len(ms) <= 64:
            raise ConfigError(f"{where}.measures: expected a list of 1-64 measure names")
        out["measures"] = [name(m, f"{where}.measures[{i}]") for i, m in enumerate(ms)]
    return out


def default_benchmark(image: Optional[str]) -> str:
    """The image's repository name (without registry, tag or digest)."""
    ref = (image or "benchmark").split("@", 1)[0]
    last = ref.rsplit("/", 1)[-1]
    return (last.split(":", 1)[0] or "benchmark")[:MAX_NAME]


def job_samples(
    results: Optional[list[dict[str, Any]]],
    iterations: Optional[list[dict[str, Any]]],
    history: Mapping[str, Any],
    image: Optional[str],
) -> Samples:
    """The (benchmark, measure) samples of a job's iterations (see the module docstring)."""
    out: Samples = {}
    results = results or []
    wanted = history.get("measures")
    if history.get("metrics", "run") == "bmf":
        for it in results:
            if it.get("exit_code") != 0 or not it.get("stdout"):
                continue
            try:
                found = _metrics.parse_bmf(it["stdout"])
            except ConfigError:
                continue  # an iteration whose stdout is not BMF gives no sample
            for m in found:
                if wanted and m.measure not in wanted:
                    continue
                key = (m.benchmark[:MAX_NAME], m.measure[:MAX_NAME])
                if key not in out and len(out) >= MAX_POINTS:
                    continue
                out.setdefault(key, (None, []))[1].append(m.value)
        return out
    bench = history.get("benchmark") or default_benchmark(image)
    for it, meas in zip(results, iterations or []):
        if it.get("exit_code") != 0:
            continue
        for measure, entry in (meas.get("metrics") or {}).items():
            if (wanted and measure not in wanted) or (not wanted and measure not in RUN_MEASURES):
                continue
            if not isinstance(entry, dict):
                continue
            value = entry.get("value")
            if isinstance(value, (int, float)) and math.isfinite(value):
                out.setdefault((bench, measure), (entry.get("unit") or None, []))[1].append(
                    float(value)
                )
    return out


Bounds = dict[tuple[str, str], tuple[Optional[float], Optional[float]]]


def upload_samples(results: Any, where: str = "results") -> tuple[Samples, Bounds]:
    """Uploaded BMF: one document, or a list of documents (one per repetition, each a sample).
    Strictly validated (benchrun.metrics.parse_bmf) and bounded. The bounds are the document's
    lower_value/upper_value when there is one document (else the samples' min and max)."""
    docs = results if isinstance(results, list) else [results]
    if not docs or len(docs) > MAX_SAMPLES:
        raise ConfigError(f"{where}: expected a BMF object or a list of 1-{MAX_SAMPLES} of them")
    out: Samples = {}
    bounds: Bounds = {}
    for i, doc in enumerate(docs):
        if not isinstance(doc, dict):
            raise ConfigError(f"{where}[{i}]: expected a BMF object")
        try:
            found = _metrics.parse_bmf(doc)
        except ConfigError as e:
            raise ConfigError(f"{where}[{i}]: {e}") from None
        for m in found:
            key = (name(m.benchmark, f"{where} benchmark"), name(m.measure, f"{where} measure"))
            if key not in out and len(out) >= MAX_POINTS:
                raise ConfigError(f"{where}: more than {MAX_POINTS} benchmark/measure pairs")
            out.setdefault(key, (None, []))[1].append(m.value)
            if len(docs) == 1:
                bounds[key] = (m.lower, m.upper)
    return out, bounds
