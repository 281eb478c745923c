"""History inputs without a server: the runner's `iterations`/`testbed` extensions (bounded,
validated, ignored by upstream), a job's samples, testbed fingerprints, the ABBA order, the
confirmation's size, and the detection step on plain values."""

from __future__ import annotations

import json
import math

import pytest

from benchrun.agent import results as agent_results
from benchrun.errors import ConfigError, ProtocolError
from benchrun.jobs import protocol as p
from benchrun.jobs.safejson import UnsafeJson
from benchrun.server.history import detect, ingest, testbed
from benchrun.server.history.alerts import DEFAULT_REPETITIONS, abba, repetitions

JOB = "00000000-0000-4000-8000-000000000001"


def _msg(**ext) -> str:
    return json.dumps(
        {"event": "completed", "job": JOB, "results": [{"exit_code": 0}, {"exit_code": 0}], **ext}
    )


def _it(v: float, **more) -> dict:
    return {"metrics": {"wall_time": {"value": v, "unit": "s"}}, **more}


def test_iterations_extension_is_checked():
    msg = p.parse_runner_message(
        _msg(
            iterations=[_it(0.5, start=1e9, end=1e9 + 0.5), _it(0.6)],
            testbed={"cpu_model": "X", "tuned": None},
        ),
        1 << 20,
    )
    assert msg["iterations"][0] == {
        "metrics": {"wall_time": {"value": 0.5, "unit": "s"}},
        "start": 1e9,
        "end": 1e9 + 0.5,
    }
    bad = [
        ({"iterations": [_it(0.5)]}, "2 results"),
        ({"iterations": "x"}, "expected a list"),
        (
            {"iterations": [_it(1.0), {"metrics": {"w": {"value": 1, "unit": "s", "x": 1}}}]},
            "{value, unit}",
        ),
        (
            {"iterations": [_it(1.0), {"metrics": {"bad name!": {"value": 1, "unit": "s"}}}]},
            "metric names",
        ),
        (
            {
                "iterations": [
                    _it(1.0),
                    {"metrics": {f"m{i}": {"value": 1, "unit": "s"} for i in range(65)}},
                ]
            },
            "at most 64",
        ),
        ({"iterations": [_it(1.0), {"metrics": {"w": {"value": 1e300, "unit": "s"}}}]}, "w"),
        ({"iterations": [_it(1.0), {"metrics": {}, "surprise": 1}]}, "metrics, start, end"),
        ({"iterations": [_it(1.0), _it(1.0, start=-5)]}, "start"),
        ({"testbed": {"nested": {"a": 1}}}, "flat object"),
        ({"testbed": {"k": "v" * 5000}}, "at most 4096"),
    ]
    for ext, why in bad:
        with pytest.raises((UnsafeJson, ProtocolError)) as e:
            p.parse_runner_message(_msg(**ext), 1 << 20)
        assert why in str(e.value), (ext, e.value)


def test_builders_put_extensions_at_top_level_only():
    m = p.completed(JOB, [{"exit_code": 0}], iterations=[_it(1.0)], testbed={"a": 1})
    assert set(m) == {"event", "job", "results", "iterations", "testbed"}
    assert set(m["results"][0]) == {"exit_code"}  # upstream's JsonIterationOutput untouched
    assert "iterations" not in p.completed(JOB, [])


def test_fit_drops_iterations_with_the_results():
    big = {
        "event": "completed",
        "job": JOB,
        "iterations": [_it(1.0)],
        "results": [{"exit_code": 0, "stdout": "x" * 100_000}],
    }
    out, cut = agent_results.fit(big, 50_000)
    assert cut and len(out["results"]) == len(out["iterations"]) == 1  # texts were cut: kept
    tiny, cut = agent_results.fit(big, 600)
    assert cut and tiny["results"] == [] and "iterations" not in tiny


def test_job_samples_run_and_bmf():
    results = [{"exit_code": 0}, {"exit_code": 1}, {"exit_code": 0}]
    its = [
        _it(1.0),
        _it(9.0),
        {
            "metrics": {
                "wall_time": {"value": 2.0, "unit": "s"},
                "cycles": {"value": 5.0, "unit": ""},
            }
        },
    ]
    got = ingest.job_samples(results, its, {"metrics": "run", "benchmark": "b"}, None)
    assert got == {("b", "wall_time"): ("s", [1.0, 2.0])}  # failed iteration left out
    got = ingest.job_samples(results, its, {"measures": ["cycles"]}, "reg/x/app:1@sha256:0")
    assert got == {("app", "cycles"): (None, [5.0])}
    bmf = [
        {"exit_code": 0, "stdout": json.dumps({"fib": {"ns": {"value": v}}})} for v in (3.0, 4.0)
    ] + [{"exit_code": 0, "stdout": "not json"}]
    got = ingest.job_samples(bmf, None, {"metrics": "bmf"}, None)
    assert got == {("fib", "ns"): (None, [3.0, 4.0])}


def test_history_spec_is_checked():
    assert ingest.parse_history_spec({"branch": "main", "commit": "abc"}) == {
        "branch": "main",
        "commit": "abc",
        "metrics": "run",
    }
    for doc, why in [
        ({"branch": "m"}, "commit"),
        ({"branch": "m", "commit": "c", "x": 1}, "unknown"),
        ({"branch": "m", "commit": "c", "metrics": "csv"}, "one of"),
        ({"branch": "m", "commit": "c", "measures": []}, "1-64"),
        ({"branch": "\x07", "commit": "c"}, "control"),
    ]:
        with pytest.raises(ConfigError, match=why):
            ingest.parse_history_spec(doc)


def test_testbed_fingerprint():
    a = {"cpu_model": "X", "kernel": "6.1", "backend": "sandbox", "noise_score": 0.01}
    assert testbed.fingerprint(a) == testbed.fingerprint({**a, "noise_score": 0.5})
    assert testbed.fingerprint(a) != testbed.fingerprint({**a, "kernel": "6.2"})
    assert testbed.fingerprint(a) != testbed.fingerprint({**a, "backend": "vm"})
    assert testbed.fingerprint({"name": "x"}) != testbed.fingerprint({"name": "y"})
    assert testbed.fingerprint_of_job(None, "r1") != testbed.fingerprint_of_job(None, "r2")


def test_abba_and_repetitions():
    assert "".join(abba(3)) == "ABBAAB" and abba(4).count("A") == 4
    assert repetitions(7, 0.01, 0.5) == 7
    assert repetitions(None, None, 0.5) == DEFAULT_REPETITIONS
    quiet, noisy = repetitions(None, 0.005, 0.5), repetitions(None, 0.05, 0.1)
    assert 2 <= quiet < noisy <= 30


def test_suspects_threshold_and_change_point():
    flat = [1.0, 1.01, 0.99, 1.0, 1.02, 0.98, 1.0, 1.01]
    assert detect.suspects(flat, "percentage", {"upper": 0.2}, True) == []
    s = detect.suspects(flat + [1.5], "percentage", {"upper": 0.2}, False)
    assert [(x.kind, x.index, x.base) for x in s] == [("threshold:percentage", 8, 7)]
    assert math.isclose(s[0].change, 1.5 / 1.01 - 1)
    # A step of 30 % seen once 5 points after it: the change point is its first point.
    values = flat * 3 + [1.3, 1.31, 1.29, 1.3, 1.32]
    found = []
    for n in range(len(flat) * 3 + 1, len(values) + 1):
        found += detect.suspects(values[:n], None, {"min_size": 5}, True)
    # Found once, as soon as the new segment can be seen, within a point of the step; a later
    # refinement that only moves the same change (within min_size) is not a new suspect.
    assert [x.kind for x in found] == ["change_point"], [x.index for x in found]
    assert abs(found[0].index - 24) <= 1
    assert found[0].change > 0.2
    with pytest.raises(ConfigError):
        detect.check_params("percentage", {"upper": 0.1, "bogus": 1}, False)
    assert detect.confirms({"verdict": "slower", "change": 0.4}, 0.5)
    assert not detect.confirms({"verdict": "faster", "change": -0.4}, 0.5)
    assert not detect.confirms({"verdict": "no significant change", "change": 0.4}, 0.5)
