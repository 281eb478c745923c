"""Metric parsers (BMF, Google Benchmark, hyperfine), detection and extraction from a Result."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest

from benchrun.errors import ConfigError
from benchrun.metrics import (
    Metric,
    detect,
    extract,
    from_result,
    parse_bmf,
    parse_gbench,
    parse_hyperfine,
)
from benchrun.runner import Metric as RunMetric
from benchrun.runner import Result

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "metrics"


def make_result(stdout: bytes = b"", outputs=None, missing=None, truncated=False) -> Result:
    return Result(
        exit_code=0, signal=0, stdout=stdout, stderr=b"", stdout_truncated=truncated,
        stderr_truncated=False, outputs=dict(outputs or {}), missing_outputs=dict(missing or {}),
        timed_out=False, oom_killed=False,
        metrics={"wall_time": RunMetric(0.5, "s"), "cpu_user": RunMetric(0.25, "s"),
                 "cpu_system": RunMetric(0.125, "s"),
                 "peak_memory": RunMetric(1 << 20, "bytes")},
        image_digest="sha256:" + "0" * 64, backend="sandbox",
        start_time=1.0, end_time=1.5,
    )


BMF = {"fib": {"latency": {"value": 10.5, "lower_value": 9, "upper_value": 12}},
       "sort": {"latency": {"value": 3}, "throughput": {"value": 1e6}}}


# --- Result -------------------------------------------------------------------------------------


def test_from_result_gives_the_four_measures_with_units():
    got = {(m.measure, m.value, m.unit) for m in from_result(make_result())}
    assert got == {("wall_time", 0.5, "s"), ("cpu_user", 0.25, "s"),
                   ("cpu_system", 0.125, "s"), ("peak_memory", float(1 << 20), "bytes")}
    assert all(m.benchmark == "run" and m.source == "result" for m in from_result(make_result()))


def test_metric_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Metric("a", "b", 1.0).value = 2.0  # type: ignore[misc]


# --- BMF ----------------------------------------------------------------------------------------


def test_bmf_parses_text_and_objects_alike():
    assert parse_bmf(json.dumps(BMF)) == parse_bmf(BMF)
    got = {(m.benchmark, m.measure): m for m in parse_bmf(BMF)}
    assert got["fib", "latency"] == Metric("fib", "latency", 10.5, 9.0, 12.0, None, "bmf")
    assert got["sort", "latency"].lower is None and got["sort", "throughput"].value == 1e6


@pytest.mark.parametrize(
    "doc, fragment",
    [
        ('{"fib": {"latency": {}}}', '$["fib"]["latency"]: missing "value"'),
        ('{"fib": {"latency": {"value": "12"}}}',
         '$["fib"]["latency"]["value"]: expected a number, got a string'),
        ('{"fib": {"latency": {"value": true}}}', "got a boolean"),
        ('{"fib": {"latency": {"value": NaN}}}', "non-finite number NaN"),
        ('{"fib": {"latency": {"value": -Infinity}}}', "non-finite number -Infinity"),
        ('{"fib": {"latency": 12}}', '$["fib"]["latency"]: expected an object with "value"'),
        ('{"fib": 12}', '$["fib"]: expected an object of measures'),
        ('[{"fib": {}}]', "$: expected an object of benchmarks, got an array"),
        ('{"fib": {"latency": {"value": 1, "mean": 2}}}', 'unknown key "mean"'),
        ('{"fib": {"latency": {"value": 1, "lower_value": 3, "upper_value": 2}}}',
         "lower_value 3.0 > upper_value 2.0"),
        ('{"fib": {}}', '$["fib"]: benchmark has no measures'),
        ('{"fib": {"a": {"value": 1}}, "fib": {"a": {"value": 2}}}', 'duplicate key "fib"'),
        ('{"fib": ', "invalid JSON"),
        ("", "empty document"),
    ],
)
def test_bmf_errors_name_the_path(doc, fragment):
    with pytest.raises(ConfigError) as e:
        parse_bmf(doc)
    assert fragment in str(e.value)
    assert str(e.value).startswith("BMF")


def test_bmf_refuses_nan_in_objects():
    with pytest.raises(ConfigError, match=r'\["upper_value"\]: non-finite'):
        parse_bmf({"b": {"m": {"value": 1.0, "upper_value": math.inf}}})


# --- Google Benchmark (fixture produced by the real library, see gbench_src.cpp) ----------------


def test_gbench_fixture_combines_repetitions_and_skips_aggregates():
    text = (FIXTURES / "gbench.json").read_text()
    doc = json.loads(text)
    metrics = parse_gbench(text)
    assert all(m.source == "gbench" for m in metrics)
    by = {(m.benchmark, m.measure): m for m in metrics}
    assert set(b for b, _ in by) == {"BM_StringCopy/64", "BM_StringCopy/4096", "BM_VectorPushBack"}
    scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
    for name in ("BM_StringCopy/64", "BM_VectorPushBack"):
        rows = [r for r in doc["benchmarks"]
                if r["run_name"] == name and r["run_type"] == "iteration"]
        assert len(rows) == 3
        reals = [r["real_time"] * scale[r["time_unit"]] for r in rows]
        m = by[name, "real_time"]
        assert m.unit == "s"
        assert m.value == pytest.approx(sum(reals) / 3)
        assert (m.lower, m.upper) == (pytest.approx(min(reals)), pytest.approx(max(reals)))
        # The library's own mean aggregate agrees with ours.
        agg = next(r for r in doc["benchmarks"] if r["run_name"] == name
                   and r.get("aggregate_name") == "mean")
        assert m.value == pytest.approx(agg["real_time"] * scale[agg["time_unit"]], rel=1e-9)
        assert by[name, "cpu_time"].value > 0
    assert by["BM_StringCopy/64", "bytes_per_second"].unit == "B/s"
    assert detect(text) == "gbench"


def test_gbench_aggregates_only_uses_the_mean():
    doc = json.loads((FIXTURES / "gbench.json").read_text())
    doc["benchmarks"] = [r for r in doc["benchmarks"] if r["run_type"] == "aggregate"]
    by = {(m.benchmark, m.measure): m for m in parse_gbench(json.dumps(doc))}
    m = by["BM_VectorPushBack", "real_time"]
    mean = next(r for r in doc["benchmarks"]
                if r["run_name"] == "BM_VectorPushBack" and r["aggregate_name"] == "mean")
    assert m.value == pytest.approx(mean["real_time"] * 1e-6) and m.lower is None


def test_gbench_errors():
    with pytest.raises(ConfigError, match=r'expected an object with a "benchmarks" array'):
        parse_gbench('{"context": {}}')
    bad = {"benchmarks": [{"name": "x", "real_time": 1, "cpu_time": 1, "time_unit": "fortnight"}]}
    path = r'\$\["benchmarks"\]\[0\]\["time_unit"\]'
    with pytest.raises(ConfigError, match=path + ": unknown time unit"):
        parse_gbench(json.dumps(bad))
    bad = {"benchmarks": [{"name": "x", "real_time": "1", "cpu_time": 1}]}
    with pytest.raises(ConfigError, match="expected a number, got a string"):
        parse_gbench(json.dumps(bad))
    skipped = {"benchmarks": [{"name": "x", "error_occurred": True, "error_message": "boom"}]}
    assert parse_gbench(json.dumps(skipped)) == []


# --- hyperfine (fixture produced by the real tool) ----------------------------------------------


def test_hyperfine_fixture_gives_mean_with_min_max_per_command():
    text = (FIXTURES / "hyperfine.json").read_text()
    doc = json.loads(text)
    metrics = parse_hyperfine(text)
    times = {m.benchmark: m for m in metrics if m.measure == "time"}
    assert set(times) == {"sleep 0.01", "true"}
    for row in doc["results"]:
        m = times[row["command"]]
        assert (m.value, m.lower, m.upper, m.unit) == (row["mean"], row["min"], row["max"], "s")
        assert m.value == pytest.approx(sum(row["times"]) / len(row["times"]))
    assert times["sleep 0.01"].value > 0.01 > times["true"].value
    assert {m.measure for m in metrics} == {"time", "user", "system"}
    assert detect(text) == "hyperfine"


def test_hyperfine_errors():
    with pytest.raises(ConfigError, match=r'\$\["results"\]\[0\]: missing "min"'):
        parse_hyperfine('{"results": [{"command": "x", "mean": 1, "max": 2}]}')
    with pytest.raises(ConfigError, match=r'expected an object with a "results" array'):
        parse_hyperfine('{"results": {}}')


# --- detection and extraction -------------------------------------------------------------------


def test_detect():
    assert detect(json.dumps(BMF)) == "bmf"
    for text in ('{"a": 1}', "[]", "42", '{"results": [{"x": 1}]}'):
        with pytest.raises(ConfigError, match="not a known format"):
            detect(text)


def test_extract_sources():
    bmf = json.dumps(BMF).encode()
    r = make_result(stdout=bmf, outputs={"/out/a:b.json": bmf})
    assert [m.source for m in extract(r, ["result"])] == ["result"] * 4
    assert len(extract(r, ["stdout:bmf"])) == 3
    assert extract(r, ["file:/out/a:b.json:bmf"]) == parse_bmf(BMF)
    assert extract(r, ["file:/out/a:b.json"]) == parse_bmf(BMF)  # detected
    auto = extract(r, ["auto"])
    assert len(auto) == 7 and {m.source for m in auto} == {"result", "bmf"}
    assert extract(r, ["auto", "result", "stdout:bmf"]) == auto  # each source read once


def test_extract_auto_ignores_stdout_that_is_not_a_document():
    for out in (b"hello\n", b"", b'{"a": 1}', b"\xff\xfe"):
        assert [m.source for m in extract(make_result(stdout=out), ["auto"])] == ["result"] * 4


def test_extract_errors_name_the_source():
    r = make_result(stdout=b"not json", missing={"/out/x.json": "no such file"})
    with pytest.raises(ConfigError, match=r"metrics source 'stdout:bmf': BMF: invalid JSON"):
        extract(r, ["stdout:bmf"])
    with pytest.raises(ConfigError, match=r"'file:/out/x.json:bmf': output file '/out/x.json' "
                       r"was not collected: no such file"):
        extract(r, ["file:/out/x.json:bmf"])
    with pytest.raises(ConfigError, match="not among the run's collected outputs"):
        extract(r, ["file:/out/y.json"])
    with pytest.raises(ConfigError, match="must be absolute"):
        extract(r, ["file:out.json:bmf"])
    with pytest.raises(ConfigError, match=r"'stdout:csv': unknown format 'csv'"):
        extract(r, ["stdout:csv"])
    with pytest.raises(ConfigError, match=r"metrics source 'stderr': unknown source"):
        extract(r, ["stderr"])
    with pytest.raises(ConfigError, match="stdout was truncated"):
        extract(make_result(stdout=b"{}", truncated=True), ["stdout:bmf"])
