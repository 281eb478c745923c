"""Export: BMF documents for `bencher run --adapter json`, Markdown and HTML summary tables.

BMF (Bencher Metric Format) is ``{benchmark: {measure: {value, lower_value?, upper_value?}}}``.
From a summary frame (stats.summarize_frame): value = the chosen statistic ("mean" by default,
or "median", "min", "max"); bounds "ci" = the bootstrap CI of the mean, "minmax" = min/max,
"none" = no bounds; "auto" is "ci" for the mean and "none" otherwise (the CI of the mean does
not bound the median). A frame holding several variants in one document names its benchmarks
"<variant>/<benchmark>"; bmf_by_variant() gives one document per variant with plain names, the
shape Bencher wants when variants are branches or testbeds.
"""

from __future__ import annotations

import html
import math
from typing import Any, Mapping, Sequence, Union

from benchrun.errors import ConfigError
from benchrun.metrics import Metric

STATS = ("mean", "median", "min", "max")
BOUNDS = ("auto", "ci", "minmax", "none")
_GROUPS = ("variant", "benchmark", "measure")


def _finite(v: Any, where: str) -> float:
    if isinstance(v, (bool, str)) or not hasattr(v, "__float__"):
        raise ConfigError(f"BMF export {where}: expected a number, got {type(v).__name__}")
    f = float(v)
    if not math.isfinite(f):
        raise ConfigError(f"BMF export {where}: non-finite value {f!r}")
    return f


def _entry(value: Any, lower: Any, upper: Any, where: str) -> dict[str, float]:
    out = {"value": _finite(value, where)}
    if lower is not None and not (isinstance(lower, float) and math.isnan(lower)):
        out["lower_value"] = _finite(lower, where)
    if upper is not None and not (isinstance(upper, float) and math.isnan(upper)):
        out["upper_value"] = _finite(upper, where)
    return out


def to_bmf(metrics_by_benchmark: Union[Sequence[Metric], Mapping[str, Mapping[str, Any]]]) -> dict:
    """One BMF document from Metrics, or from ``{benchmark: {measure: value | Metric | dict}}``.

    A dict value may hold "value" and "lower_value"/"upper_value" (or "lower"/"upper"). A
    benchmark/measure pair given twice is an error: BMF holds one value per pair.
    """
    doc: dict[str, dict[str, dict[str, float]]] = {}

    def put(bench: str, measure: str, entry: dict[str, float]) -> None:
        if measure in doc.setdefault(bench, {}):
            raise ConfigError(f"BMF export: {bench!r} / {measure!r} given twice")
        doc[bench][measure] = entry

    if isinstance(metrics_by_benchmark, Mapping):
        for bench, measures in metrics_by_benchmark.items():
            if not isinstance(measures, Mapping):
                raise ConfigError(f"BMF export {bench!r}: expected a mapping of measures")
            for measure, v in measures.items():
                where = f"{bench!r} / {measure!r}"
                if isinstance(v, Metric):
                    put(bench, measure, _entry(v.value, v.lower, v.upper, where))
                elif isinstance(v, Mapping):
                    if "value" not in v:
                        raise ConfigError(f'BMF export {where}: missing "value"')
                    lo = v.get("lower_value", v.get("lower"))
                    hi = v.get("upper_value", v.get("upper"))
                    put(bench, measure, _entry(v["value"], lo, hi, where))
                else:
                    put(bench, measure, _entry(v, None, None, where))
    else:
        for m in metrics_by_benchmark:
            if not isinstance(m, Metric):
                raise ConfigError(f"BMF export: expected Metric objects, got {type(m).__name__}")
            put(
                m.benchmark,
                m.measure,
                _entry(m.value, m.lower, m.upper, f"{m.benchmark!r} / {m.measure!r}"),
            )
    return doc


def _check_frame(df: Any, stat: str, bounds: str) -> tuple[Any, str]:
    if stat not in STATS:
        raise ConfigError(f"stat {stat!r}: expected one of {', '.join(STATS)}")
    if bounds not in BOUNDS:
        raise ConfigError(f"bounds {bounds!r}: expected one of {', '.join(BOUNDS)}")
    if stat not in df.columns and "value" in df.columns:
        # A tidy frame of raw values: summarize it first.
        from benchrun.stats import summarize_frame

        df = summarize_frame(df, by=[c for c in _GROUPS if c in df.columns])
    missing = [c for c in ("benchmark", "measure", stat) if c not in df.columns]
    if missing:
        raise ConfigError(f"BMF export: frame lacks column(s) {', '.join(missing)}")
    if bounds == "auto":
        bounds = "ci" if stat == "mean" else "none"
    return df, bounds


def _doc(df: Any, stat: str, bounds: str, name: Any) -> dict:
    cols = {"ci": ("ci_low", "ci_high"), "minmax": ("min", "max")}
    lo_col, hi_col = cols.get(bounds, (None, None))
    doc: dict[str, dict[str, dict[str, float]]] = {}
    for row in df.to_dict("records"):
        bench = name(row)
        measure = str(row["measure"])
        where = f"{bench!r} / {measure!r}"
        if measure in doc.get(bench, {}):
            raise ConfigError(f"BMF export: {where} appears in more than one row")
        lo = row.get(lo_col) if lo_col else None
        hi = row.get(hi_col) if hi_col else None
        doc.setdefault(bench, {})[measure] = _entry(row[stat], lo, hi, where)
    return doc


def bmf_from_frame(df: Any, *, stat: str = "mean", bounds: str = "auto") -> dict:
    """One BMF document from a summary frame (or a tidy frame, summarized first)."""
    df, bounds = _check_frame(df, stat, bounds)
    several = "variant" in df.columns and df["variant"].nunique(dropna=False) > 1
    if several:
        return _doc(df, stat, bounds, lambda r: f"{r['variant']}/{r['benchmark']}")
    return _doc(df, stat, bounds, lambda r: str(r["benchmark"]))


def bmf_by_variant(df: Any, *, stat: str = "mean", bounds: str = "auto") -> dict[str, dict]:
    """One BMF document per variant: ``{variant: {benchmark: {measure: {...}}}}``."""
    df, bounds = _check_frame(df, stat, bounds)
    if "variant" not in df.columns:
        raise ConfigError("BMF export: frame lacks column variant")
    return {
        str(variant): _doc(group, stat, bounds, lambda r: str(r["benchmark"]))
        for variant, group in df.groupby("variant", sort=True, dropna=False)
    }


# --- tables -------------------------------------------------------------------------------------

_HEAD = {
    "n": "n",
    "mean": "mean",
    "median": "median",
    "stddev": "stddev",
    "cv": "cv",
    "ci": "CI of mean",
    "min": "min",
    "max": "max",
    "outliers": "outliers",
    "warmup": "warm-up",
    "bimodal": "bimodal",
}


def _num(v: Any) -> str:
    if v is None:
        return ""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if math.isnan(f):
        return "–"
    return f"{f:.4g}"


def _cells(df: Any) -> tuple[list[str], list[list[str]]]:
    """Header and display cells of a summary frame (other frames: every column as is)."""
    if "mean" not in df.columns:
        cols = [str(c) for c in df.columns]
        return cols, [
            [_num(v) if isinstance(v, float) else str(v) for v in r]
            for r in df.itertuples(index=False)
        ]
    stat_cols = {
        "n",
        "mean",
        "median",
        "stddev",
        "cv",
        "min",
        "max",
        "ci_low",
        "ci_high",
        "outliers",
        "mad_outliers",
        "warmup",
        "bimodal",
        "unit",
    }
    keys = [str(c) for c in df.columns if c not in stat_cols]
    unit = "unit" in df.columns
    head = keys + (["unit"] if unit else [])
    shown = [c for c in ("n", "mean", "median", "stddev", "cv") if c in df.columns]
    if "ci_low" in df.columns and "ci_high" in df.columns:
        shown.append("ci")
    shown += [c for c in ("min", "max", "outliers", "warmup", "bimodal") if c in df.columns]
    head += [_HEAD[c] for c in shown]
    rows = []
    for r in df.to_dict("records"):
        cells = [str(r[k]) for k in keys]
        if unit:
            cells.append("" if r["unit"] is None else str(r["unit"]))
        for c in shown:
            v = r.get(c)
            if c == "n" or c == "warmup":
                cells.append(str(int(v)))
            elif c == "cv":
                cells.append("–" if v is None or math.isnan(v) else f"{100 * v:.2f}%")
            elif c == "ci":
                cells.append(f"[{_num(r['ci_low'])}, {_num(r['ci_high'])}]")
            elif c == "outliers":
                mad = r.get("mad_outliers", ())
                both = f"{len(v)} IQR / {len(mad)} MAD"
                cells.append(both if "mad_outliers" in r else str(len(v)))
            elif c == "bimodal":
                cells.append("yes" if v else "no")
            else:
                cells.append(_num(v))
        rows.append(cells)
    return head, rows


def _md(cell: str) -> str:
    return cell.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def markdown_table(summary_df: Any) -> str:
    """A GitHub-flavoured Markdown table of a summary frame (pipes in names escaped)."""
    return markdown_cells(*_cells(summary_df))


def markdown_cells(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table of display cells (pipes and newlines escaped)."""
    lines = ["| " + " | ".join(_md(h) for h in head) + " |"]
    lines.append("|" + "|".join("---" for _ in head) + "|")
    lines += ["| " + " | ".join(_md(c) for c in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def html_table(summary_df: Any) -> str:
    """A self-contained HTML <table> of a summary frame; every cell is escaped."""
    head, rows = _cells(summary_df)
    out = ['<table class="benchrun-summary">', "<thead><tr>"]
    out += [f"<th>{html.escape(h)}</th>" for h in head]
    out.append("</tr></thead>")
    out.append("<tbody>")
    for r in rows:
        out.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>")
    out.append("</tbody>")
    out.append("</table>")
    return "\n".join(out) + "\n"
