"""benchrun.noise without running anything: the calibration output parser, the figures, the
noise.json schema, the state directory rules, CPU lists, and repetitions for a detectable change."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from benchrun import noise
from benchrun.errors import ConfigError
from benchrun.noise import CalibrationError
from benchrun.power import minimum_detectable_change, repetitions_for


def calibration_text(modes: dict[str, list[int]]) -> str:
    lines = ["benchrun-calibrate 1"]
    for mode, reps in modes.items():
        lines.append(f"mode {mode} work 1000")
        lines += [f"rep {mode} {ns}" for ns in reps]
        lines.append(f"end {mode} {len(reps)}")
    return "\n".join(lines) + "\n"


def test_parse_calibration_reads_every_mode_in_order():
    text = calibration_text({"cpu": [5_000_000, 5_100_000, 4_900_000], "syscall": [7, 8]})
    got = noise.parse_calibration(text)
    assert got == {"cpu": [0.005, 0.0051, 0.0049], "syscall": [7e-9, 8e-9]}


@pytest.mark.parametrize(
    "text,match",
    [
        ("", "expected 'benchrun-calibrate 1'"),
        ("usage: benchrun-calibrate\n", "expected 'benchrun-calibrate 1'"),
        ("benchrun-calibrate 2\n", "expected 'benchrun-calibrate 1'"),
        ("benchrun-calibrate 1\n", "no workload ran"),
        ("benchrun-calibrate 1\nmode cpu work 10\nrep cpu 5\n", "cpu cut short"),
        ("benchrun-calibrate 1\nmode cpu work 10\nrep cpu 5\nend cpu 2\n", "end count 2"),
        ("benchrun-calibrate 1\nrep cpu 5\n", "line 2"),
        ("benchrun-calibrate 1\nmode cpu work 10\nrep cpu -5\nend cpu 1\n", "non-positive"),
        ("benchrun-calibrate 1\nmode cpu work 10\nrep cpu 5x\nend cpu 1\n", "line 3"),
        ("benchrun-calibrate 1\nmode cpu work 10\nend cpu 0\nrep cpu 5\n", "line 4"),
        ("benchrun-calibrate 1\nmode cpu work 10\nmode cpu work 10\n", "mode repeated"),
        ("benchrun-calibrate 1\nmode cpu work 0\n", "line 2"),
        ("benchrun-calibrate 1\nhello\n", "line 2"),
    ],
)
def test_parse_calibration_rejects_anything_else(text: str, match: str):
    with pytest.raises(CalibrationError, match=match):
        noise.parse_calibration(text)


def test_summarize_figures():
    samples = [1.0, 1.1, 0.9, 1.0, 1.2, 0.95]
    w = noise.summarize(samples)
    mean = sum(samples) / 6
    sd = math.sqrt(sum((x - mean) ** 2 for x in samples) / 5)
    assert w["n"] == 6 and w["median_s"] == pytest.approx(1.0)
    assert w["cv"] == pytest.approx(sd / mean)
    assert w["spread"] == pytest.approx((1.0 - 0.9) / 1.0)
    assert set(w["mdc"]) == {"10", "30", "100"}
    assert w["mdc"]["30"] == pytest.approx(minimum_detectable_change(30, w["cv"]))
    assert w["mdc"]["10"] > w["mdc"]["30"] > w["mdc"]["100"] > 0
    with pytest.raises(CalibrationError, match="longer --duration"):
        noise.summarize([1.0, 2.0, 3.0])


def test_figures_document_and_score():
    doc = noise.figures(
        {"cpu": [1.0, 1.01, 0.99, 1.0, 1.0], "mem": [2.0, 2.2, 1.8, 2.0, 2.1]},
        cpus="1",
        duration_s=2.0,
        host="h1",
    )
    noise.check_document(doc)
    cv = [doc["workloads"][k]["cv"] for k in ("cpu", "mem")]
    assert doc["score"] == pytest.approx(math.sqrt((cv[0] ** 2 + cv[1] ** 2) / 2))
    assert (doc["schema"], doc["host"], doc["cpus"], doc["duration_s"]) == (1, "h1", "1", 2.0)
    json.dumps(doc, allow_nan=False)  # strict JSON


def good_doc(score: float = 0.05) -> dict:
    return noise.figures(
        {"cpu": [1.0, 1.0 + score, 1.0 - score, 1.0, 1.0]}, cpus="0-1", duration_s=1.0, host="h"
    ) | {"score": score}


@pytest.mark.parametrize(
    "change,match",
    [
        (lambda d: d.update(schema=2), "schema 2"),
        (lambda d: d.pop("measured_at"), "measured_at"),
        (lambda d: d.update(score="high"), "score"),
        (lambda d: d.update(score=-1), "below"),
        (lambda d: d.update(host=3), "host"),
        (lambda d: d.update(workloads={}), "at least one workload"),
        (lambda d: d["workloads"]["cpu"].update(n=1), "n: expected"),
        (lambda d: d["workloads"]["cpu"].update(cv=float("nan")), "cv"),
        (lambda d: d["workloads"]["cpu"]["mdc"].update(lots=1), "not a repetition count"),
        (lambda d: d["workloads"]["cpu"].pop("mdc"), "mdc"),
    ],
)
def test_check_document_rejects_broken_figures(change, match):
    doc = good_doc()
    change(doc)
    with pytest.raises(ConfigError, match=match):
        noise.check_document(doc)


def test_save_and_load_round_trip(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("BENCHRUN_HOST_STATE", str(tmp_path / "state"))
    doc = good_doc()
    path = noise.save(doc)
    assert path == str(tmp_path / "state" / "noise.json")
    assert noise.load() == json.loads(json.dumps(doc))
    assert [p.name for p in (tmp_path / "state").iterdir()] == ["noise.json"]  # no temp left
    with pytest.raises(ConfigError):
        noise.save({"schema": 1})  # nothing invalid is ever stored
    assert noise.load() == json.loads(json.dumps(doc))


def test_load_says_what_to_run(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("BENCHRUN_HOST_STATE", str(tmp_path))
    with pytest.raises(ConfigError, match="run `benchrun host noise` first"):
        noise.load()
    (tmp_path / "noise.json").write_text("{not json")
    with pytest.raises(ConfigError, match="unreadable.*run `benchrun host noise` again"):
        noise.load()
    (tmp_path / "noise.json").write_text(json.dumps({"schema": 9}))
    with pytest.raises(ConfigError, match="schema 9.*run `benchrun host noise` again"):
        noise.load()


def test_state_dir_rules():
    assert noise.state_dir({"BENCHRUN_HOST_STATE": "/x"}, euid=0) == "/x"
    assert noise.state_dir({"BENCHRUN_HOST_STATE": "/x"}, euid=1000) == "/x"
    assert (
        noise.state_dir({"XDG_STATE_HOME": "/s", "HOME": "/h"}, euid=0) == "/var/lib/benchrun/host"
    )
    assert noise.state_dir({"XDG_STATE_HOME": "/s", "HOME": "/h"}, euid=1000) == "/s/benchrun/host"
    assert noise.state_dir({"HOME": "/h"}, euid=1000) == "/h/.local/state/benchrun/host"
    assert noise.state_dir({"BENCHRUN_HOST_STATE": "", "HOME": "/h"}, euid=1000) == (
        "/h/.local/state/benchrun/host"
    )
    assert noise.noise_path({"BENCHRUN_HOST_STATE": "/x"}) == "/x/noise.json"


def test_cpu_lists():
    assert noise.parse_cpu_list("0-3,6") == [0, 1, 2, 3, 6]
    assert noise.parse_cpu_list("5, 1") == [1, 5]
    assert noise.format_cpu_list([0, 1, 2, 3, 6, 8, 9]) == "0-3,6,8-9"
    for bad in ("", "a", "3-1", "-1", "1,,2", "1-"):
        with pytest.raises(ConfigError, match="expected a list like"):
            noise.parse_cpu_list(bad)


def test_repetitions_for_detect(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("BENCHRUN_HOST_STATE", str(tmp_path))
    with pytest.raises(ConfigError, match="run `benchrun host noise` first"):
        noise.repetitions_for_detect(0.02)
    noise.save(good_doc(0.05))
    assert noise.repetitions_for_detect(0.02) == repetitions_for(0.02, 0.05)
    assert noise.repetitions_for_detect(0.02, good_doc(0.01)) == repetitions_for(0.02, 0.01)
    assert noise.repetitions_for_detect(0.5, good_doc(0.001), minimum=5) == 5
    for bad in (0, 1, -0.1, True, "2%"):
        with pytest.raises(ConfigError, match="detect"):
            noise.repetitions_for_detect(bad)


def test_measure_checks_its_arguments_before_running():
    with pytest.raises(ConfigError, match="duration"):
        noise.measure(duration=0)
    with pytest.raises(ConfigError, match="workloads"):
        noise.measure(workloads=["gpu"])
    with pytest.raises(ConfigError, match="not available"):
        noise.measure(cpus=[100_000])


def test_missing_calibration_binary(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("BENCHRUN_CALIBRATE", str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="BENCHRUN_CALIBRATE"):
        noise.calibrate_binary()


def test_the_installed_calibration_binary_speaks_the_format():
    """The real benchrun-calibrate, directly (no sandbox): its output parses, every mode ran
    with repetitions (positive durations), and usage errors exit 2."""
    import subprocess

    binary = noise.calibrate_binary()
    p = subprocess.run(
        [binary, "--duration", "0.6", "--rep-ms", "2", "--mem-mib", "8", "cpu", "mem", "syscall"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    samples = noise.parse_calibration(p.stdout)
    assert list(samples) == ["cpu", "mem", "syscall"]
    for mode, reps in samples.items():
        assert len(reps) >= 5, mode
        # Durations, not a timing target (a loaded host moves them either way: bench/).
        assert all(0 < r < 60 for r in reps), (mode, min(reps), max(reps))
    for argv in ([], ["gpu"], ["--duration", "0", "cpu"], ["--bogus", "cpu"]):
        p = subprocess.run([binary, *argv], capture_output=True, text=True, timeout=10)
        assert p.returncode == 2 and ("usage" in p.stderr or "unknown mode" in p.stderr), argv
