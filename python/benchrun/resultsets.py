"""Result sets for `benchrun compare A B`: each side's measurements as one tidy frame (columns
benchmark, measure, unit, value; one row per run or iteration and metric).

A side is one of (several of the same kind joined with commas):
  FILE.json          a `benchrun run --json` document: one Result, or {"iterations": [...]} from
                     --iterations N; its metrics are benchrun.metrics.extract(result, "auto"):
                     the run's own measures (benchmark "run") plus the BMF / Google Benchmark /
                     hyperfine document its stdout printed, when it printed one. A plain BMF,
                     Google Benchmark or hyperfine document is read as one run's metrics.
  STORE:VARIANT      the completed, non-warm-up runs of that variant in a campaign results store
                     (SQLite, benchrun.results.load; --campaign narrows to one campaign).
  job:ID             a job on the job server (--server/--token-file): per successful iteration,
                     its "metrics" map when the runner sent one ({measure: {value, unit}} or
                     {measure: value}, benchmark "run"; or BMF-shaped) plus the BMF / Google
                     Benchmark / hyperfine document it printed on stdout (required when there
                     is no metrics map; ignored when stdout is not such a document).
"""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional

import pandas as pd

from benchrun.errors import ConfigError

COLUMNS = ("benchmark", "measure", "unit", "value")


def _frame(rows: Iterable[tuple[str, str, Optional[str], float]]) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=list(COLUMNS))


def _metric_rows(ms: Iterable[Any]) -> list[tuple[str, str, Optional[str], float]]:
    return [(m.benchmark, m.measure, m.unit, float(m.value)) for m in ms]


def _result_rows(doc: Mapping[str, Any], where: str) -> list[tuple[str, str, Optional[str], float]]:
    from benchrun import metrics
    from benchrun.runner import Result

    try:
        result = Result.from_json(doc)
    except (KeyError, TypeError, ValueError) as e:
        if isinstance(e, ConfigError):
            raise ConfigError(f"{where}: {e}") from None
        raise ConfigError(
            f"{where}: not a benchrun result document ({e!r} missing or bad)"
        ) from None
    if not result.ok:
        raise ConfigError(
            f"{where}: the run failed (exit code {result.exit_code}); compare successful runs"
        )
    return _metric_rows(metrics.extract(result, ("auto",)))


def _file_rows(path: Path) -> list[tuple[str, str, Optional[str], float]]:
    from benchrun import metrics

    where = f"result file '{path}'"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{where}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{where}: {e}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(
            f"{where}: invalid JSON: {e.msg} (line {e.lineno} column {e.colno})"
        ) from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{where}: expected a JSON object (a benchrun run --json document)")
    if "schema" in doc and isinstance(doc.get("iterations"), list):
        rows = []
        for i, it in enumerate(doc["iterations"]):
            if not isinstance(it, dict):
                raise ConfigError(f"{where}: iteration {i}: expected an object")
            rows += _result_rows(it, f"{where} iteration {i}")
        return rows
    if "schema" in doc and "exit_code" in doc:
        return _result_rows(doc, where)
    try:
        return _metric_rows(metrics.parse(doc))
    except ConfigError as e:
        raise ConfigError(
            f"{where}: neither a benchrun result document nor a metrics document ({e})"
        ) from None


def _store_rows(store: Path, variant: str, campaign: Optional[str]) -> pd.DataFrame:
    from benchrun import results

    try:
        df = results.load(store, campaign)
    except sqlite3.Error as e:
        raise ConfigError(f"results store '{store}': {e}") from None
    have = sorted(map(str, df["variant"].dropna().unique()))
    sel = df[df["variant"] == variant]
    if sel.empty:
        raise ConfigError(
            f"results store '{store}': no completed runs of variant '{variant}' "
            f"(have: {', '.join(have) or 'none'})"
        )
    return sel.loc[:, list(COLUMNS)].reset_index(drop=True)


def _iteration_metrics(m: Any, where: str) -> list[tuple[str, str, Optional[str], float]]:
    from benchrun import metrics

    if not isinstance(m, Mapping) or not m:
        raise ConfigError(f"{where}: metrics: expected a non-empty object")
    rows: list[tuple[str, str, Optional[str], float]] = []
    flat = all(
        not isinstance(v, Mapping) or ("value" in v and not isinstance(v["value"], Mapping))
        for v in m.values()
    )
    if not flat:
        return _metric_rows(metrics.parse_bmf(dict(m)))
    for name, v in m.items():
        value, unit = (v.get("value"), v.get("unit")) if isinstance(v, Mapping) else (v, None)
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            raise ConfigError(f"{where}: metrics[{name!r}]: expected a finite number")
        rows.append(("run", str(name), None if unit is None else str(unit), float(value)))
    return rows


def _job_rows(job_id: str, client: Any) -> list[tuple[str, str, Optional[str], float]]:
    from benchrun import metrics

    from benchrun.client import TERMINAL
    from benchrun.jobs.status import status_name

    job = client.job(job_id)
    status = status_name(job.get("status"))
    if status not in TERMINAL:
        raise ConfigError(f"job {job_id}: still {status} (hint: benchrun job {job_id} --wait)")
    its = client.results(job_id)
    if not its:
        raise ConfigError(f"job {job_id}: no iteration results ({status})")
    rows: list[tuple[str, str, Optional[str], float]] = []
    for i, it in enumerate(its):
        where = f"job {job_id} iteration {i}"
        if it.get("exit_code", 0) != 0:
            continue
        measured = it.get("metrics")
        if measured:
            rows += _iteration_metrics(measured, where)
        out = it.get("stdout") or ""
        if not out.strip():
            continue
        try:
            rows += _metric_rows(metrics.parse(out))
        except ConfigError as e:
            if not measured:  # as extract("auto"): stdout is optional beside the runner's map
                raise ConfigError(f"{where}: stdout: {e}") from None
    if not rows:
        raise ConfigError(
            f"job {job_id}: no metrics in its iterations (no metrics map, no BMF on stdout, or "
            "every iteration failed)"
        )
    return rows


def _split_store(spec: str) -> Optional[tuple[Path, str]]:
    """(store, variant) when spec is STORE:VARIANT with an existing file before the last colon."""
    if ":" not in spec:
        return None
    head, _, variant = spec.rpartition(":")
    if head and variant and Path(head).is_file() and not Path(spec).exists():
        return Path(head), variant
    return None


def load(
    spec: str,
    *,
    campaign: Optional[str] = None,
    client: Optional[Callable[[], Any]] = None,
) -> pd.DataFrame:
    """One side of a comparison as a tidy frame (COLUMNS); ``client()`` makes the job server
    client, called only for job: sides."""
    if not spec:
        raise ConfigError("result set '': empty (expected FILE.json, STORE:VARIANT or job:ID)")
    store = _split_store(spec)
    if store is not None:
        return _store_rows(store[0], store[1], campaign)
    parts = [p for p in spec.split(",")]
    if any(not p for p in parts):
        raise ConfigError(f"result set '{spec}': an empty item between commas")
    rows: list[tuple[str, str, Optional[str], float]] = []
    jobs = [p for p in parts if p.startswith("job:")]
    if jobs and len(jobs) != len(parts):
        raise ConfigError(f"result set '{spec}': mixes job ids and files")
    if jobs:
        if client is None:
            raise ConfigError("job ids need a job server: pass --server URL (and a token)")
        c = client()
        try:
            for p in jobs:
                job_id = p[4:]
                if not job_id:
                    raise ConfigError(f"result set '{spec}': 'job:' without an id")
                rows += _job_rows(job_id, c)
        finally:
            close = getattr(c, "close", None)
            if close is not None:
                close()
        return _frame(rows)
    for p in parts:
        path = Path(p)
        if not path.exists() and ":" in p:
            head = p.rpartition(":")[0]
            hint = (
                f" (no such results store '{head}')"
                if not Path(head).exists()
                else " (not a store: STORE:VARIANT needs a results store file)"
            )
            raise ConfigError(f"result set '{p}': no such file{hint}")
        if path.is_file() and _is_sqlite(path):
            raise ConfigError(f"result set '{p}': a results store; name the variant: '{p}:VARIANT'")
        rows += _file_rows(path)
    if not rows:
        raise ConfigError(f"result set '{spec}': no metrics")
    return _frame(rows)


def _is_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False
