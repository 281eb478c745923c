"""BMF export (round trip through the parser) and Markdown/HTML summary tables."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from benchrun.errors import ConfigError
from benchrun.export import bmf_by_variant, bmf_from_frame, html_table, markdown_table, to_bmf
from benchrun.metrics import Metric, parse_bmf
from benchrun.stats import summarize_frame


@pytest.fixture(scope="module")
def tidy() -> pd.DataFrame:
    g = np.random.default_rng(0)
    rows = []
    for variant, mu in (("base", 1.0), ("fast|<b>", 0.8)):
        for bench in ("run", "fib"):
            for measure in ("wall_time", "peak_memory"):
                for v in g.normal(mu, 0.05, 10):
                    rows.append({"variant": variant, "benchmark": bench, "measure": measure,
                                 "value": float(v), "unit": "s"})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def summary(tidy: pd.DataFrame) -> pd.DataFrame:
    return summarize_frame(tidy, resamples=500)


def by_key(metrics):
    return {(m.benchmark, m.measure): m for m in metrics}


def test_bmf_round_trip_per_variant(summary):
    docs = bmf_by_variant(summary)
    assert set(docs) == {"base", "fast|<b>"}
    for variant, doc in docs.items():
        got = by_key(parse_bmf(json.dumps(doc)))
        part = summary[summary["variant"] == variant]
        assert len(got) == len(part) == 4
        for r in part.itertuples():
            m = got[r.benchmark, r.measure]
            assert (m.value, m.lower, m.upper) == (r.mean, r.ci_low, r.ci_high)


def test_bmf_one_document_for_several_variants(summary):
    got = by_key(parse_bmf(json.dumps(bmf_from_frame(summary))))
    assert len(got) == 8 and ("base/fib", "wall_time") in got
    one = summary[summary["variant"] == "base"]
    assert set(b for b, _ in by_key(parse_bmf(bmf_from_frame(one)))) == {"run", "fib"}


def test_bmf_median_and_bounds(summary, tidy):
    one = summary[summary["variant"] == "base"]
    got = by_key(parse_bmf(bmf_from_frame(one, stat="median")))
    r = one.iloc[0].to_dict()
    key = (r["benchmark"], r["measure"])
    assert got[key] == Metric(*key, r["median"], source="bmf")
    got = by_key(parse_bmf(bmf_from_frame(one, stat="median", bounds="minmax")))
    assert (got[key].lower, got[key].upper) == (r["min"], r["max"])
    # A tidy frame is summarized first.
    raw = by_key(parse_bmf(bmf_from_frame(tidy[tidy["variant"] == "base"])))
    rows = tidy.query("variant == 'base' and benchmark == 'run' and measure == 'wall_time'")
    assert raw["run", "wall_time"].value == pytest.approx(rows["value"].mean())
    with pytest.raises(ConfigError, match="stat 'mode'"):
        bmf_from_frame(one, stat="mode")


def test_to_bmf_from_metrics_and_mappings():
    metrics = [Metric("a", "latency", 2.0, 1.0, 3.0), Metric("b", "latency", 5.0)]
    doc = to_bmf(metrics)
    assert doc == {"a": {"latency": {"value": 2.0, "lower_value": 1.0, "upper_value": 3.0}},
                   "b": {"latency": {"value": 5.0}}}
    assert parse_bmf(json.dumps(doc)) == [Metric("a", "latency", 2.0, 1.0, 3.0, source="bmf"),
                                          Metric("b", "latency", 5.0, source="bmf")]
    assert to_bmf({"a": {"latency": 2, "t": {"value": 1, "lower": 0}}}) == {
        "a": {"latency": {"value": 2.0}, "t": {"value": 1.0, "lower_value": 0.0}}}
    with pytest.raises(ConfigError, match="given twice"):
        to_bmf([Metric("a", "m", 1.0), Metric("a", "m", 2.0)])
    with pytest.raises(ConfigError, match="non-finite"):
        to_bmf([Metric("a", "m", float("nan"))])


def test_markdown_table(summary):
    md = markdown_table(summary)
    lines = md.splitlines()
    assert len(lines) == 2 + len(summary)
    assert lines[0].startswith("| variant | benchmark | measure | unit | n | mean |")
    assert "CI of mean" in lines[0]
    assert set(lines[1]) <= {"|", "-"}
    assert r"fast\|<b>" in md  # a pipe in a name does not break the row
    cells = lines[2].strip("|").split(" | ")
    assert len(cells) == lines[0].count(" | ") + 1


def test_html_table_is_escaped_and_self_contained(summary):
    page = html_table(summary)
    assert page.startswith('<table class="benchrun-summary">')
    assert "fast|&lt;b&gt;" in page and "<b>" not in page
    assert page.count("<tr>") == len(summary) + 1
    assert "http" not in page and "<script" not in page and "<link" not in page
