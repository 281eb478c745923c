"""Metrics extraction: turn a Result and a benchmark's own output into a flat list of Metric.

Sources (``extract(result, sources)``):
  "result"                the Result itself: benchmark "run", measures wall_time (s), cpu_user (s),
                          cpu_system (s), peak_memory (bytes).
  "stdout:<fmt>"          the workload's stdout parsed as <fmt> ("bmf", "gbench", "hyperfine" or
                          "auto" = detect()).
  "file:<abs path>[:<fmt>]"  the collected output file of that path (result.outputs); the format
                          defaults to detection.
  "auto"                  "result", plus stdout when it is a document of a known format that parses.
                          Best effort: a stdout that is not such a document is ignored; name the
                          source explicitly ("stdout:bmf") to get its errors.
Errors are ConfigError and name the source ("metrics source 'stdout:bmf': ...").

One Metric per (benchmark, measure) per run, so every source fits the tidy frame (one row per
run and metric) and BMF (one value per benchmark and measure):
  * BMF (Bencher Metric Format) ``{benchmark: {measure: {value, lower_value?, upper_value?}}}``:
    validated strictly — objects where objects are expected, only those three keys, finite numbers
    (NaN/Infinity refused, also as JSON literals), no duplicate keys, lower_value <= upper_value.
    Errors name the JSON path, e.g. ``BMF $["fib"]["latency"]["value"]: expected a number, got a
    string``. BMF has no units: unit is None.
  * Google Benchmark (``--benchmark_format=json``): the per-repetition rows (run_type
    "iteration") of one benchmark (run_name) are combined: value = their mean, lower/upper =
    their min/max, measures "real_time" and "cpu_time" converted to seconds (unit "s") from
    time_unit, plus "bytes_per_second" (B/s) and "items_per_second" (1/s) when reported. The
    aggregate rows (mean/median/stddev/cv) are skipped because they are recomputed from the
    repetitions; when only aggregates were reported (--benchmark_report_aggregates_only) the
    "mean" aggregate is the value, without bounds. Rows with error_occurred are skipped.
  * hyperfine (``--export-json``): one Metric per command, benchmark = the command, measure
    "time" (s): value = mean, lower/upper = min/max; "user"/"system" (s) when present. The
    individual samples (times[]) are not returned: they are repetitions inside one run, summed
    up by hyperfine itself.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

from benchrun.errors import ConfigError

FORMATS = ("bmf", "gbench", "hyperfine")
_TIME_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}


@dataclass(frozen=True)
class Metric:
    """One measured value of one benchmark; lower/upper are the bounds the source reported."""

    benchmark: str
    measure: str
    value: float
    lower: Optional[float] = None
    upper: Optional[float] = None
    unit: Optional[str] = None
    source: str = ""  # "result", "bmf", "gbench" or "hyperfine"


# --- the Result ---------------------------------------------------------------------------------


def from_result(result: Any) -> list[Metric]:
    """The Result's own measurements, whatever the backend measured (its metrics map: wall_time,
    cpu_user, cpu_system, peak_memory, and e.g. boot_time on a VM): benchmark "run"."""
    return [
        Metric("run", name, float(m.value), unit=m.unit, source="result")
        for name, m in result.metrics.items()
    ]


# --- JSON helpers -------------------------------------------------------------------------------


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name} is not allowed")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {json.dumps(k)}")
        out[k] = v
    return out


def _load(text_or_obj: Union[str, bytes, Any], what: str) -> Any:
    """Parses JSON text strictly (no NaN/Infinity, no duplicate keys); objects pass through."""
    if isinstance(text_or_obj, bytes):
        try:
            text_or_obj = text_or_obj.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ConfigError(f"{what}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if not isinstance(text_or_obj, str):
        return text_or_obj
    if not text_or_obj.strip():
        raise ConfigError(f"{what}: empty document")
    try:
        return json.loads(
            text_or_obj, parse_constant=_refuse_constant, object_pairs_hook=_unique_keys
        )
    except json.JSONDecodeError as e:
        where = f"line {e.lineno} column {e.colno}"
        raise ConfigError(f"{what}: invalid JSON: {e.msg} ({where})") from None
    except ValueError as e:
        raise ConfigError(f"{what}: invalid JSON: {e}") from None
    except RecursionError:
        raise ConfigError(f"{what}: invalid JSON: nested too deeply") from None


def _path(*keys: Union[str, int]) -> str:
    return "$" + "".join(f"[{k}]" if isinstance(k, int) else f"[{json.dumps(k)}]" for k in keys)


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, (list, tuple)):
        return "an array"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__


def _number(v: Any, what: str, *keys: Union[str, int]) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ConfigError(f"{what} {_path(*keys)}: expected a number, got {_kind(v)}")
    try:
        f = float(v)
    except OverflowError:  # an integer beyond a double's range (10**400): as non-finite
        f = math.inf
    if not math.isfinite(f):
        raise ConfigError(f"{what} {_path(*keys)}: non-finite number {v!r} is not allowed")
    return f


# --- BMF ----------------------------------------------------------------------------------------


def parse_bmf(text_or_obj: Union[str, bytes, dict]) -> list[Metric]:
    """Bencher Metric Format, validated strictly; errors name the JSON path."""
    doc = _load(text_or_obj, "BMF")
    if not isinstance(doc, dict):
        raise ConfigError(f"BMF $: expected an object of benchmarks, got {_kind(doc)}")
    metrics: list[Metric] = []
    for bench, measures in doc.items():
        if not isinstance(bench, str) or not bench:
            raise ConfigError(f"BMF {_path(str(bench))}: benchmark names must be non-empty strings")
        if not isinstance(measures, dict):
            raise ConfigError(
                f"BMF {_path(bench)}: expected an object of measures, got {_kind(measures)}"
            )
        if not measures:
            raise ConfigError(f"BMF {_path(bench)}: benchmark has no measures")
        for measure, m in measures.items():
            if not measure:
                raise ConfigError(f"BMF {_path(bench, measure)}: measure names must be non-empty")
            if not isinstance(m, dict):
                raise ConfigError(
                    f'BMF {_path(bench, measure)}: expected an object with "value", '
                    f"got {_kind(m)}"
                )
            unknown = sorted(set(m) - {"value", "lower_value", "upper_value"})
            if unknown:
                raise ConfigError(
                    f"BMF {_path(bench, measure)}: unknown key {json.dumps(unknown[0])} "
                    "(allowed: value, lower_value, upper_value)"
                )
            if "value" not in m:
                raise ConfigError(f'BMF {_path(bench, measure)}: missing "value"')
            value = _number(m["value"], "BMF", bench, measure, "value")
            lower = upper = None
            if m.get("lower_value") is not None:
                lower = _number(m["lower_value"], "BMF", bench, measure, "lower_value")
            if m.get("upper_value") is not None:
                upper = _number(m["upper_value"], "BMF", bench, measure, "upper_value")
            if lower is not None and upper is not None and lower > upper:
                raise ConfigError(
                    f"BMF {_path(bench, measure)}: lower_value {lower!r} > upper_value {upper!r}"
                )
            metrics.append(Metric(bench, measure, value, lower, upper, None, "bmf"))
    return metrics


# --- Google Benchmark ---------------------------------------------------------------------------


def parse_gbench(text: Union[str, bytes, dict]) -> list[Metric]:
    """Google Benchmark JSON: one Metric per benchmark and measure (see the module docstring)."""
    doc = _load(text, "Google Benchmark JSON")
    what = "Google Benchmark JSON"
    if not isinstance(doc, dict) or not isinstance(doc.get("benchmarks"), list):
        raise ConfigError(f'{what} $: expected an object with a "benchmarks" array')
    # name -> measure -> (unit, [samples]); insertion order = the tool's order.
    runs: dict[str, dict[str, tuple[str, list[float]]]] = {}
    means: dict[str, dict[str, tuple[str, float]]] = {}
    for i, row in enumerate(doc["benchmarks"]):
        if not isinstance(row, dict):
            raise ConfigError(
                f"{what} {_path('benchmarks', i)}: expected an object, got {_kind(row)}"
            )
        if row.get("error_occurred"):
            continue
        name = row.get("run_name", row.get("name"))
        if not isinstance(name, str) or not name:
            raise ConfigError(
                f"{what} {_path('benchmarks', i, 'name')}: expected a non-empty string"
            )
        aggregate = row.get("run_type") == "aggregate" or "aggregate_name" in row
        if aggregate and row.get("aggregate_name") != "mean":
            continue
        unit = row.get("time_unit", "ns")
        if unit not in _TIME_UNITS:
            raise ConfigError(
                f"{what} {_path('benchmarks', i, 'time_unit')}: unknown time unit {unit!r} "
                f"(known: {', '.join(_TIME_UNITS)})"
            )
        found: list[tuple[str, str, float]] = []
        for key in ("real_time", "cpu_time"):
            if key not in row:
                raise ConfigError(f"{what} {_path('benchmarks', i)}: missing {json.dumps(key)}")
            seconds = _number(row[key], what, "benchmarks", i, key) * _TIME_UNITS[unit]
            found.append((key, "s", seconds))
        for key, u in (("bytes_per_second", "B/s"), ("items_per_second", "1/s")):
            if key in row:
                found.append((key, u, _number(row[key], what, "benchmarks", i, key)))
        for measure, u, v in found:
            if aggregate:
                means.setdefault(name, {})[measure] = (u, v)
            else:
                runs.setdefault(name, {}).setdefault(measure, (u, []))[1].append(v)
    metrics: list[Metric] = []
    for name, measures in runs.items():
        for measure, (u, vals) in measures.items():
            mean = math.fsum(vals) / len(vals)
            metrics.append(Metric(name, measure, mean, min(vals), max(vals), u, "gbench"))
    for name, agg in means.items():
        if name not in runs:
            for measure, (u, v) in agg.items():
                metrics.append(Metric(name, measure, v, None, None, u, "gbench"))
    return metrics


# --- hyperfine ----------------------------------------------------------------------------------


def parse_hyperfine(text: Union[str, bytes, dict]) -> list[Metric]:
    """hyperfine --export-json: per command, "time" = mean with lower/upper = min/max (seconds)."""
    what = "hyperfine JSON"
    doc = _load(text, what)
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), list):
        raise ConfigError(f'{what} $: expected an object with a "results" array')
    metrics: list[Metric] = []
    for i, row in enumerate(doc["results"]):
        if not isinstance(row, dict):
            raise ConfigError(f"{what} {_path('results', i)}: expected an object, got {_kind(row)}")
        cmd = row.get("command")
        if not isinstance(cmd, str) or not cmd:
            raise ConfigError(
                f"{what} {_path('results', i, 'command')}: expected a non-empty string"
            )
        for key in ("mean", "min", "max"):
            if key not in row:
                raise ConfigError(f"{what} {_path('results', i)}: missing {json.dumps(key)}")
        mean = _number(row["mean"], what, "results", i, "mean")
        lo = _number(row["min"], what, "results", i, "min")
        hi = _number(row["max"], what, "results", i, "max")
        metrics.append(Metric(cmd, "time", mean, lo, hi, "s", "hyperfine"))
        for key in ("user", "system"):
            if row.get(key) is not None:
                v = _number(row[key], what, "results", i, key)
                metrics.append(Metric(cmd, key, v, None, None, "s", "hyperfine"))
    return metrics


_PARSERS = {"bmf": parse_bmf, "gbench": parse_gbench, "hyperfine": parse_hyperfine}


# --- detection and extraction -------------------------------------------------------------------


def detect(text: Union[str, bytes, dict]) -> str:
    """Which format a document is: "gbench", "hyperfine" or "bmf"; ConfigError if none.

    gbench: an object with a "benchmarks" array; hyperfine: an object with a "results" array of
    objects with "command"; bmf: any other object whose values are all objects (BMF's shape).
    Detection looks at the shape only; the parser validates the rest.
    """
    doc = _load(text, "metrics document")
    if isinstance(doc, dict):
        if isinstance(doc.get("benchmarks"), list):
            return "gbench"
        results = doc.get("results")
        if isinstance(results, list) and all(
            isinstance(r, dict) and "command" in r for r in results
        ):
            return "hyperfine"
        if doc and all(isinstance(v, dict) for v in doc.values()):
            return "bmf"
    raise ConfigError(
        "metrics document: not a known format (expected BMF, Google Benchmark or hyperfine JSON)"
    )


def parse(text: Union[str, bytes, dict], fmt: str = "auto") -> list[Metric]:
    """Parses a document in ``fmt`` ("auto" = detect())."""
    if fmt == "auto":
        doc = _load(text, "metrics document")
        return _PARSERS[detect(doc)](doc)
    if fmt not in _PARSERS:
        raise ConfigError(f"metrics format {fmt!r}: unknown (known: auto, {', '.join(FORMATS)})")
    return _PARSERS[fmt](text)


def _decode(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{where}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def _one_source(result: Any, source: str) -> list[Metric]:
    if source == "result":
        return from_result(result)
    if source.startswith("stdout:"):
        fmt = source[len("stdout:") :]
        if fmt not in FORMATS and fmt != "auto":
            raise ConfigError(f"unknown format {fmt!r} (known: auto, {', '.join(FORMATS)})")
        if result.stdout_truncated:
            raise ConfigError("stdout was truncated (raise the output limit)")
        return parse(_decode(result.stdout, "stdout"), fmt)
    if source.startswith("file:"):
        rest = source[len("file:") :]
        path, fmt = rest, "auto"
        head, sep, tail = rest.rpartition(":")
        if sep and (tail in FORMATS or tail == "auto"):
            path, fmt = head, tail
        if not path.startswith("/"):
            raise ConfigError(f"output path {path!r} must be absolute")
        if path not in result.outputs:
            reason = result.missing_outputs.get(path)
            if reason:
                raise ConfigError(f"output file {path!r} was not collected: {reason}")
            raise ConfigError(f"output file {path!r} is not among the run's collected outputs")
        return parse(_decode(result.outputs[path], f"output file {path!r}"), fmt)
    raise ConfigError(
        "unknown source (use result, stdout:<fmt>, file:/path[:<fmt>] or auto; "
        f"formats: auto, {', '.join(FORMATS)})"
    )


def extract(result: Any, sources: Sequence[str] = ("auto",)) -> list[Metric]:
    """The Metrics of one run from the given sources (see the module docstring), in order."""
    if isinstance(sources, str):
        sources = (sources,)
    metrics: list[Metric] = []
    seen: set[str] = set()  # sources already read; "stdout" once stdout was parsed, any format
    for source in sources:
        if not isinstance(source, str):
            raise ConfigError(f"metrics source {source!r}: expected a string")
        if source == "auto":
            if "result" not in seen:
                seen.add("result")
                metrics.extend(from_result(result))
            if "stdout" not in seen and not result.stdout_truncated and result.stdout.strip():
                try:
                    found = parse(result.stdout.decode("utf-8"), "auto")
                except (ConfigError, UnicodeDecodeError):
                    found = []
                if found:
                    seen.add("stdout")
                    metrics.extend(found)
            continue
        key = "stdout" if source.startswith("stdout:") else source
        if key in seen:
            continue
        seen.add(key)
        try:
            metrics.extend(_one_source(result, source))
        except ConfigError as e:
            raise ConfigError(f"metrics source '{source}': {e}") from None
    return metrics
