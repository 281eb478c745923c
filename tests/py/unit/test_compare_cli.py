"""`benchrun compare A B`: JSON result files (run --json documents, --iterations documents, plain
BMF) and a campaign results store (STORE:VARIANT), text and --json output, and the errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchrun.campaign.store import ResultsStore, RunRecord
from benchrun.cli.main import main
from benchrun.metrics import Metric


def _result_doc(wall: float, stdout: str = "", exit_code: int = 0) -> dict[str, Any]:
    return {
        "schema": 3, "backend": "sandbox", "image_digest": "sha256:" + "ab" * 32,
        "ok": exit_code == 0, "exit_code": exit_code, "signal": 0, "timed_out": False,
        "oom_killed": False, "stdout": stdout, "stdout_base64": None, "stdout_truncated": False,
        "stderr": "", "stderr_base64": None, "stderr_truncated": False, "outputs": {},
        "outputs_base64": {}, "missing_outputs": {},
        "metrics": {"wall_time": {"value": wall, "unit": "s"},
                    "cpu_user": {"value": wall, "unit": "s"},
                    "cpu_system": {"value": 0.0, "unit": "s"},
                    "peak_memory": {"value": 1e6, "unit": "bytes"}},
        "start_time": 0.0, "end_time": wall, "phases": {}, "notices": [], "facts": {},
    }  # fmt: skip


def _write(path: Path, doc: Any) -> str:
    path.write_text(json.dumps(doc))
    return str(path)


def _run(argv: list[str], capsys: Any) -> tuple[int, str, str]:
    rc = main(["compare", *argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture(scope="module")
def sides(tmp_path_factory: Any) -> tuple[str, str]:
    """A: 12 iterations (one --iterations document), B: 12 single-run files, 10 % slower in
    the BMF latency its stdout printed, 10 % more throughput, wall time unchanged."""
    d = tmp_path_factory.mktemp("cmp")
    rng = np.random.default_rng(7)

    def doc(lat: float, thr: float) -> dict[str, Any]:
        bmf = {"fib": {"latency": {"value": lat}, "throughput": {"value": thr}}}
        return _result_doc(float(rng.normal(1.0, 0.01)), json.dumps(bmf))

    its = [doc(100 * rng.lognormal(0, 0.01), 50 * rng.lognormal(0, 0.01)) for _ in range(12)]
    a = _write(d / "a.json", {"schema": 3, "iterations": its})
    bs = [
        _write(d / f"b{i}.json", doc(110 * rng.lognormal(0, 0.01), 55 * rng.lognormal(0, 0.01)))
        for i in range(12)
    ]
    return a, ",".join(bs)


def test_compare_json_files_text(sides: tuple[str, str], capsys: Any) -> None:
    rc, out, _ = _run([*sides], capsys)
    assert rc == 0
    lines = {
        tuple(line.split()[:2]): line
        for line in out.splitlines()
        if line.startswith(("fib", "run"))
    }
    assert "slower" in lines[("fib", "latency")] and "+10." in lines[("fib", "latency")]
    assert "faster" in lines[("fib", "throughput")]  # more throughput is better
    assert "no significant change" in lines[("run", "wall_time")]
    assert "12/12" in lines[("fib", "latency")]
    rc, _, _ = _run([*sides, "--fail-on-slower"], capsys)
    assert rc == 1
    rc, _, _ = _run([sides[1], sides[0], "--fail-on-slower", "--measure", "latency"], capsys)
    assert rc == 0  # B -> A: latency went down


def test_compare_json_output(sides: tuple[str, str], capsys: Any) -> None:
    rc, out, _ = _run([*sides, "--json", "--benchmark", "fib", "--measure", "latency"], capsys)
    assert rc == 0
    doc = json.loads(out)
    assert doc["a"] == sides[0]
    (c,) = doc["comparisons"]
    assert c["benchmark"] == "fib" and c["measure"] == "latency"
    assert c["verdict"] == "slower" and c["test"] == "Mann-Whitney U" and c["p_value"] < 0.001
    assert 0.08 < c["change"] < 0.12 and c["ci"][0] < c["change"] < c["ci"][1]
    assert c["n_a"] == 12 and c["n_b"] == 12 and 0 < c["mdc"] < 0.05
    assert c["higher_is_better"] is False and c["confidence"] == 0.95


def test_compare_plain_bmf_and_higher_is_better(tmp_path: Path, capsys: Any) -> None:
    a = ",".join(
        _write(tmp_path / f"a{i}.json", {"q": {"score": {"value": v}}})
        for i, v in enumerate([10, 10.1, 9.9, 10.2, 9.8])
    )
    b = ",".join(
        _write(tmp_path / f"b{i}.json", {"q": {"score": {"value": v}}})
        for i, v in enumerate([12, 12.1, 11.9, 12.2, 11.8])
    )
    rc, out, _ = _run([a, b, "--json"], capsys)
    assert json.loads(out)["comparisons"][0]["verdict"] == "slower"
    rc, out, _ = _run([a, b, "--json", "--higher-is-better", "score"], capsys)
    assert json.loads(out)["comparisons"][0]["verdict"] == "faster"


def _store(path: Path) -> str:
    rng = np.random.default_rng(3)
    with ResultsStore(path) as st:
        st.add_campaign("c1", "demo", 1, {}, "0.1.0", {})
        plan = 0
        for rep in range(10):
            for variant, mean in (("base", 1.0), ("head", 1.05), ("same", 1.0)):
                v = float(mean * rng.lognormal(0, 0.01))
                run = RunRecord(
                    id=f"r{plan}", campaign="c1", variant=variant, variant_spec={},
                    repetition=rep, warmup=False, plan_index=plan, status="done", exit_code=0,
                    wall_time=v, started=float(plan), ended=float(plan) + v, backend="sandbox",
                    image_digest="sha256:00", host={}, result=None, error=None,
                )  # fmt: skip
                st.add_run(run, [Metric("work", "time", v, unit="s", source="bmf")])
                plan += 1
    return str(path)


def test_compare_campaign_store(tmp_path: Path, capsys: Any) -> None:
    store = _store(tmp_path / "results.sqlite")
    rc, out, _ = _run([f"{store}:base", f"{store}:head"], capsys)
    assert rc == 0
    row = next(line for line in out.splitlines() if line.startswith("work"))
    assert "slower" in row and "10/10" in row and " s " in row
    rc, out, _ = _run([f"{store}:base", f"{store}:same", "--json"], capsys)
    assert json.loads(out)["comparisons"][0]["verdict"] == "no significant change"


@pytest.mark.parametrize(
    "a,b,message",
    [
        ("{d}/missing.json", "{d}/a.json", "result file '{d}/missing.json': no such file"),
        ("{d}/bad.json", "{d}/a.json", "invalid JSON"),
        ("{d}/list.json", "{d}/a.json", "expected a JSON object"),
        ("{d}/other.json", "{d}/a.json", "neither a benchrun result document nor a metrics"),
        ("{d}/failed.json", "{d}/a.json", "the run failed (exit code 3)"),
        ("{d}/a.json", "{d}/c.json", "no benchmark/measure in common"),
        ("{store}", "{d}/a.json", "a results store; name the variant"),
        (
            "{store}:nope",
            "{d}/a.json",
            "no completed runs of variant 'nope' (have: base, head, same)",
        ),
        ("{d}/nostore.sqlite:base", "{d}/a.json", "no such results store"),
        ("job:abc", "{d}/a.json", "no job server"),
        ("{d}/a.json,", "{d}/a.json", "an empty item between commas"),
    ],
)
def test_compare_errors(
    tmp_path: Path, capsys: Any, monkeypatch: Any, a: str, b: str, message: str
) -> None:
    monkeypatch.delenv("BENCHRUN_SERVER", raising=False)
    d = tmp_path
    _write(d / "a.json", {"x": {"t": {"value": 1.0}}})
    _write(d / "c.json", {"y": {"t": {"value": 1.0}}})
    (d / "bad.json").write_text("{nope")
    _write(d / "list.json", [1, 2])
    _write(d / "other.json", {"hello": "world"})
    _write(d / "failed.json", _result_doc(1.0, exit_code=3))
    store = _store(d / "s.sqlite")
    fmt = {"d": str(d), "store": store}
    rc, _, err = _run([a.format(**fmt), b.format(**fmt)], capsys)
    assert rc != 0 and err.startswith("benchrun: error: ")
    assert message.format(**fmt) in err, err


class _FakeClient:
    """What resultsets reads of benchrun.Client: job() and results()."""

    def __init__(self, iterations: dict[str, list[dict[str, Any]]]) -> None:
        self.iterations = iterations
        self.closed = False

    def job(self, job_id: str) -> dict[str, Any]:
        return {"id": job_id, "status": 2 if job_id == "busy" else 3}  # running / completed

    def results(self, job_id: str) -> list[dict[str, Any]]:
        return self.iterations[job_id]

    def close(self) -> None:
        self.closed = True


def test_job_sides_metrics_map_or_stdout_bmf() -> None:
    from benchrun import resultsets
    from benchrun.changes.frames import compare_frames
    from benchrun.errors import ConfigError

    fake = _FakeClient(
        {
            # part B's per-iteration metrics: BMF-shaped, or flat {measure: value | {value, unit}}
            "a": [{"exit_code": 0, "metrics": {"fib": {"latency": {"value": 10.0 + i / 10}}}}
                  for i in range(6)],
            "b": [{"exit_code": 0, "stdout": json.dumps({"fib": {"latency": {"value": 12.0 + i / 10}}})}
                  for i in range(6)] + [{"exit_code": 1, "stdout": "crash"}],
            "flat": [{"exit_code": 0, "metrics": {"wall_time": {"value": 1.0, "unit": "s"}, "n": 3},
                      "stdout": "not a document"}],
            "both": [{"exit_code": 0, "metrics": {"wall_time": {"value": 1.0, "unit": "s"}},
                      "stdout": json.dumps({"fib": {"latency": {"value": 9.0}}})}],
            "none": [{"exit_code": 0, "stdout": "hello"}],
        }
    )  # fmt: skip
    a = resultsets.load("job:a", client=lambda: fake)
    b = resultsets.load("job:b", client=lambda: fake)
    assert fake.closed and len(a) == 6 and len(b) == 6  # the failed iteration is left out
    t = compare_frames(a, b)
    assert t["verdict"].tolist() == ["slower"] and t["n_b"].tolist() == [6]
    flat = resultsets.load("job:flat", client=lambda: fake)
    assert sorted(zip(flat["benchmark"], flat["measure"], flat["unit"])) == [
        ("run", "n", None),
        ("run", "wall_time", "s"),
    ]
    both = resultsets.load("job:both", client=lambda: fake)
    assert sorted(zip(both["benchmark"], both["measure"])) == [
        ("fib", "latency"),
        ("run", "wall_time"),
    ]
    with pytest.raises(ConfigError, match="job none iteration 0: stdout: metrics document"):
        resultsets.load("job:none", client=lambda: fake)
    with pytest.raises(ConfigError, match="job busy: still running"):
        resultsets.load("job:busy", client=lambda: fake)
    with pytest.raises(ConfigError, match="mixes job ids and files"):
        resultsets.load("job:a,x.json", client=lambda: fake)


def test_compare_confidence_option(sides: tuple[str, str], capsys: Any) -> None:
    rc, out, _ = _run([*sides, "--confidence", "0.99", "--measure", "latency"], capsys)
    assert rc == 0 and "99% CI" in out and "slower" in out
    rc, _, err = _run([*sides, "--confidence", "95"], capsys)
    assert rc == 125 and "--confidence 95.0: must be between 0 and 1" in err
