"""results.load / campaigns, plots and `benchrun report` on a results store written here with
sqlite3 directly, following the documented schema v1 (so these tests check the reader against
the schema, not against the writer)."""

from __future__ import annotations

import argparse
import base64
import json
import re
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from benchrun import plots, report, results, stats
from benchrun.cli import report as report_cli
from benchrun.errors import ConfigError

SCHEMA = """
CREATE TABLE schema_version(version INTEGER NOT NULL);
CREATE TABLE campaigns(id TEXT PRIMARY KEY, name TEXT, seed INTEGER, created REAL, spec TEXT,
                       benchrun_version TEXT, host TEXT);
CREATE TABLE runs(id TEXT PRIMARY KEY, campaign TEXT, variant TEXT, variant_spec TEXT,
                  repetition INTEGER, warmup INTEGER, plan_index INTEGER, status TEXT,
                  exit_code INTEGER, wall_time REAL, started REAL, ended REAL, backend TEXT,
                  image_digest TEXT, host TEXT, result TEXT, error TEXT);
CREATE TABLE metrics(run TEXT, benchmark TEXT, measure TEXT, value REAL, lower REAL, upper REAL,
                     unit TEXT, source TEXT);
"""

HOST = {"cpu_model": "Test CPU @ 3GHz", "kernel": "6.1.0-test", "governor": "performance",
        "smt": False, "turbo": False, "aslr": 2, "cpus": {"online": 4}}
T0 = 1_750_000_000.0


def make_store(path: Path, *, reps: int = 8, warmup: int = 1, failed: int = 1,
               campaigns=(("c1", "demo"),)) -> Path:
    """Two variants (fast ~0.05 s, slow ~0.1 s) × reps, interleaved; a BMF metric per run."""
    rng = np.random.default_rng(1)
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA)
    conn.execute("INSERT INTO schema_version VALUES (1)")
    for ci, (cid, name) in enumerate(campaigns):
        conn.execute(
            "INSERT INTO campaigns VALUES (?,?,?,?,?,?,?)",
            (cid, name, 42, T0 + ci, json.dumps({"repetitions": reps}), "0.1.0", json.dumps(HOST)),
        )
        plan = 0
        for rep in range(-warmup, reps + failed):
            for variant, mean in (("fast", 0.05), ("slow", 0.10)):
                run_id = f"{cid}-{variant}-{rep}"
                is_warm = rep < 0
                is_failed = rep >= reps
                value = mean * (1.5 if is_warm else 1.0) + rng.normal(0, mean * 0.02)
                started = T0 + 10 * ci + plan * 0.2
                conn.execute(
                    "INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (run_id, cid, variant, json.dumps({"command": ["sleep", str(mean)]}),
                     max(rep, 0), int(is_warm), plan, "failed" if is_failed else "done",
                     1 if is_failed else 0, value, started, started + value, "sandbox",
                     "sha256:" + "ab" * 32, json.dumps(HOST), "{}",
                     "exit 1" if is_failed else None),
                )
                conn.execute("INSERT INTO metrics VALUES (?,?,?,?,?,?,?,?)",
                             (run_id, "workload", "wall_time", value, None, None, "s", "result"))
                conn.execute("INSERT INTO metrics VALUES (?,?,?,?,?,?,?,?)",
                             (run_id, "sleep", "latency", value * 1e3, value * 1e3 - 1,
                              value * 1e3 + 1, "ms", "bmf"))
                plan += 1
    conn.commit()
    conn.close()
    return path


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return make_store(tmp_path / "results.sqlite")


def test_load_is_tidy(store):
    df = results.load(store)
    assert list(df.columns[: len(results.COLUMNS)]) == list(results.COLUMNS)
    # 2 variants × 8 done repetitions × 2 metrics; warm-up and failed runs left out.
    assert len(df) == 2 * 8 * 2
    assert set(df["status"]) == {"done"} and not df["warmup"].any()
    assert df.groupby(["run", "benchmark", "measure"]).size().max() == 1
    assert set(df["campaign_name"]) == {"demo"}
    assert df["plan_index"].is_monotonic_increasing
    assert df["value"].dtype == float and df["started"].dtype == float
    row = df[(df["measure"] == "latency")].iloc[0]
    assert row["unit"] == "ms" and row["source"] == "bmf" and row["lower"] < row["value"]
    # Host facts flattened, nested keys joined by "_".
    assert row["host_cpu_model"] == "Test CPU @ 3GHz"
    assert row["host_governor"] == "performance" and row["host_kernel"] == "6.1.0-test"
    assert row["host_aslr"] == 2 and not row["host_smt"] and row["host_cpus_online"] == 4


def test_load_warmup_failed_and_campaign_filter(tmp_path):
    path = make_store(tmp_path / "two.sqlite", reps=3, campaigns=(("c1", "a"), ("c2", "b")))
    assert len(results.load(path)) == 2 * 2 * 3 * 2
    with_warm = results.load(path, include_warmup=True)
    assert with_warm["warmup"].sum() == 2 * 2 * 2  # 2 campaigns × 2 variants × 2 metrics
    assert len(results.load(path, include_failed=True)) == 2 * 2 * 4 * 2
    only = results.load(path, "c2")
    assert set(only["campaign"]) == {"c2"}
    assert set(results.load(path, "b")["campaign"]) == {"c2"}  # by name too
    with pytest.raises(ConfigError, match="no campaign has this id or name"):
        results.load(path, "nope")


def test_campaigns(tmp_path):
    path = make_store(tmp_path / "two.sqlite", reps=3, campaigns=(("c1", "a"), ("c2", "b")))
    c = results.campaigns(path)
    assert list(c["id"]) == ["c1", "c2"]
    assert list(c["done"]) == [8, 8]  # warm-up runs included
    assert list(c["failed"]) == [2, 2] and list(c["warmup"]) == [2, 2]
    assert c["spec"].iloc[0] == {"repetitions": 3}
    assert c["host_cpu_model"].iloc[0] == "Test CPU @ 3GHz"


def test_load_errors(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        results.load(tmp_path / "missing.sqlite")
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(ConfigError, match="not a benchrun results store"):
        results.load(junk)
    newer = make_store(tmp_path / "v2.sqlite")
    with sqlite3.connect(newer) as conn:
        conn.execute("UPDATE schema_version SET version = 2")
    with pytest.raises(ConfigError, match="schema version 2, this benchrun reads 1"):
        results.load(newer)


def test_load_does_not_write(store):
    before = store.read_bytes()
    results.load(store)
    results.campaigns(store)
    assert store.read_bytes() == before


def test_summary_from_loaded_frame(store):
    df = results.load(store)
    s = stats.summarize_frame(df)
    fast = s[(s["variant"] == "fast") & (s["measure"] == "wall_time")].iloc[0]
    assert fast["n"] == 8 and abs(fast["mean"] - 0.05) < 0.005 and fast["unit"] == "s"


@pytest.mark.parametrize("kind", plots.KINDS)
def test_distribution(store, kind):
    df = results.load(store)
    fig = plots.distribution(df, kind=kind)
    assert isinstance(fig, Figure)
    (ax,) = [a for a in fig.axes if a.get_visible()]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["fast", "slow"]
    assert ax.get_ylabel() == "wall_time (s)"
    both = plots.distribution(df, measure=None)
    assert len([a for a in both.axes if a.get_visible()]) == 2
    assert plots.to_png(fig).startswith(b"\x89PNG")


def test_comparison(store):
    df = results.load(store)
    table = plots.comparisons(df, "fast", "slow")
    assert list(table["measure"]) == ["latency", "wall_time"]
    assert table["significant"].all()
    assert ((table["change"] > 0.8) & (table["change"] < 1.2)).all()  # slow is ~2x fast
    assert (table["ci_low"] <= table["change"]).all()
    assert (table["change"] <= table["ci_high"]).all()
    fig = plots.comparison(df, "fast", "slow")
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert len(texts) == 2 and all(t.endswith("*") for t in texts)
    with pytest.raises(ConfigError, match="variant 'medium': not in the results"):
        plots.comparison(df, "fast", "medium")


def test_trend(store):
    df = results.load(store)
    fig = plots.trend(df, measure="wall_time")
    (ax,) = [a for a in fig.axes if a.get_visible()]
    assert len(ax.get_lines()) >= 2  # one line per variant
    assert plots.to_png(plots.trend(df, measure=None)).startswith(b"\x89PNG")
    with pytest.raises(ConfigError, match="no values for benchmark"):
        plots.trend(df, measure="nothing")


def _report(argv):
    parser = argparse.ArgumentParser(prog="benchrun")
    report_cli.add_parsers(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["report", *argv])
    return args.func(args)


def test_report_terminal_table(store, capsys):
    assert _report([str(store)]) == 0
    out = capsys.readouterr().out
    assert "demo: 16 runs" in out
    for word in ("variant", "benchmark", "CV%", "95% CI", "outliers", "bimodal", "fast", "slow",
                 "latency", "wall_time"):
        assert word in out
    summary, _, compared = out.partition("compared with fast")
    assert len([line for line in summary.splitlines() if " fast " in f" {line} "]) == 2
    # Then the comparison with the baseline: slow is ~2x fast, significantly, in both measures.
    for word in ("candidate", "change", "95% CI", "verdict", "MDC"):
        assert word in compared
    rows = [line for line in compared.splitlines() if " slow " in line]
    assert len(rows) == 2
    for line in rows:
        change = re.search(r"\+(\d+\.\d\d)%", line)
        assert change and 80 < float(change.group(1)) < 120, line
        assert re.search(r"\[\+\d+\.\d\d%, \+\d+\.\d\d%\]", line), line
        assert " slower " in line  # significant: slow takes longer


def test_report_baseline_option(store, capsys):
    assert _report([str(store), "--baseline", "slow"]) == 0
    out = capsys.readouterr().out
    compared = out.partition("compared with slow")[2]
    rows = [line for line in compared.splitlines() if " fast " in line]
    assert len(rows) == 2 and all(re.search(r"-\d\d\.\d\d%", line) for line in rows)


def test_report_markdown(store, capsys):
    assert _report([str(store), "--markdown"]) == 0
    out = capsys.readouterr().out
    summary, compared = out.split("\n\n")
    assert summary.startswith("| variant | benchmark | measure |")
    assert len(summary.strip().splitlines()) == 2 + 4
    lines = compared.strip().splitlines()
    assert lines[0] == ("| baseline | candidate | benchmark | measure | unit | baseline median | "
                        "candidate median | change | 95% CI | p | verdict | MDC | bimodal |")
    assert len(lines) == 2 + 2  # slow vs fast, for latency and wall_time
    cells = [c.strip() for c in lines[2].strip("|").split("|")]
    assert cells[:5] == ["fast", "slow", "sleep", "latency", "ms"]
    assert cells[7].startswith("+") and cells[7].endswith("%") and cells[10] == "slower"


def test_report_one_variant_has_no_comparison(tmp_path, capsys):
    path = make_store(tmp_path / "one.sqlite")
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM metrics WHERE run IN (SELECT id FROM runs WHERE variant='slow')")
        conn.execute("DELETE FROM runs WHERE variant = 'slow'")
    assert _report([str(path), "--markdown"]) == 0
    out = capsys.readouterr().out
    assert "candidate" not in out and len(out.strip().splitlines()) == 2 + 2
    assert _report([str(path)]) == 0
    assert "compared with" not in capsys.readouterr().out


def test_comparison_table_is_the_plots_comparison(store):
    """The report's table and the comparison plot come from the same computation."""
    df = results.load(store)
    table = report.comparisons(df, None)
    direct = plots.comparisons(df, "fast", "slow")
    assert list(table["baseline"].unique()) == ["fast"]
    assert list(table["candidate"].unique()) == ["slow"]
    assert table.drop(columns=["baseline", "candidate"]).equals(direct)


def test_report_html(store, tmp_path, capsys):
    out = tmp_path / "report.html"
    assert _report([str(store), "--campaign", "c1", "--html", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("<!DOCTYPE html>") and "benchrun-summary" in text
    assert "benchrun-comparison" in text and "Test CPU @ 3GHz" in text
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(images) == 4  # distribution, comparison, trend, series with change points
    assert "Change points (run order)" in text
    assert all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    assert "http" not in text.replace("http-equiv", "")  # self-contained: nothing to fetch


def test_report_errors(store, tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        _report([str(tmp_path / "none.sqlite")])
    with pytest.raises(ConfigError, match="open '"):
        _report([str(store), "--html", str(tmp_path / "no-dir" / "r.html")])
    with pytest.raises(ConfigError, match="--baseline 'x': no such variant"):
        _report([str(store), "--baseline", "x"])
    empty = tmp_path / "empty.sqlite"
    with sqlite3.connect(empty) as conn:
        conn.executescript(SCHEMA)
        conn.execute("INSERT INTO schema_version VALUES (1)")
    with pytest.raises(ConfigError, match="no completed run has metrics"):
        _report([str(empty)])
