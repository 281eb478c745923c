"""Campaigns end to end on real sandbox runs: the interleaved seeded plan, the SQLite results store
(runs, metrics from BMF stdout, host facts), resuming after an interruption, TOML files, CSV
export, the `benchrun campaign` commands, and a campaign run through a job server and agent."""

from __future__ import annotations

import argparse
import csv
import json
import sqlite3
from pathlib import Path

import pytest

import benchrun
from benchrun.campaign import Campaign, ResultsStore, Variant, export_csv, make_plan
from benchrun.cli import campaign as campaign_cli
from benchrun.campaign.store import SCHEMA_VERSION
from benchrun.errors import ConfigError
from support.jobs import Fleet
from support.ocilayout import Layer, busybox_layer, skopeo_push, write_layout

pytestmark = pytest.mark.root

BMF = '{"b":{"latency":{"value":1.5}}}'
# Performance counters every run also measures (docs/counters.md; tests/py/integration/
# test_perf_counters.py checks them in a campaign): left out where these tests count measures.
SOFTWARE_COUNTERS = {"task_clock", "context_switches", "cpu_migrations", "page_faults",
                     "minor_faults", "major_faults"}


def is_counter(measure: str) -> bool:
    return measure in SOFTWARE_COUNTERS or measure.endswith((".user", ".kernel", ".running"))


@pytest.fixture
def image(tmp_path: Path, store: Path) -> str:
    """A busybox OCI layout, pulled into the test's image store; returns its reference."""
    info = write_layout(tmp_path / "layout", [busybox_layer()], config={"Env": ["PATH=/bin"]})
    benchrun.pull(info.ref, store=store)
    return info.ref


def two_variants(image: str, results: Path, seed: int = 0) -> Campaign:
    return Campaign(
        "two",
        [Variant("bmf", image, ["echo", BMF], timeout=60),
         Variant("nap", image, ["sleep", "0.05"], timeout=60)],
        repetitions=3, warmup=1, seed=seed, store=str(results))


def test_runs_stored_in_interleaved_seeded_order(tmp_path: Path, store: Path, image: str):
    c = two_variants(image, tmp_path / "r.db")
    res = c.run(progress=False, image_store=store)
    assert (res.planned, res.done, res.failed, res.skipped) == (8, 8, 0, 0)
    assert res.complete

    with ResultsStore(res.store) as db:
        runs = db.runs(res.campaign_id)
        camp = db.campaign(res.campaign_id)
    assert [r["plan_index"] for r in runs] == list(range(8))
    plan = make_plan(c)
    assert [(r["variant"], r["repetition"], r["warmup"]) for r in runs] == \
        [(p.variant, p.repetition, p.warmup) for p in plan]
    # Warm-up first, one per variant; then each round holds every variant once.
    assert [(r["variant"], r["warmup"]) for r in runs[:2]] == [("bmf", True), ("nap", True)]
    for rnd in range(3):
        assert sorted(r["variant"] for r in runs if not r["warmup"] and r["repetition"] == rnd) \
            == ["bmf", "nap"]
    assert camp is not None and camp["spec"]["plan"] == [p.to_json() for p in plan]
    assert camp["seed"] == 0 and camp["spec"]["spec_hash"] == c.spec_hash()

    # The same seed gives the same plan; another seed another order (same entries).
    assert make_plan(two_variants(image, tmp_path / "x.db")) == plan
    other = make_plan(two_variants(image, tmp_path / "x.db", seed=2))
    entries = sorted(p.to_json() for p in plan)
    assert other != plan and sorted(p.to_json() for p in other) == entries

    for r in runs:
        assert r["status"] == "done" and r["exit_code"] == 0 and r["error"] is None
        assert r["backend"] == "sandbox" and r["image_digest"].startswith("sha256:")
        assert 0 < r["wall_time"] < 30 and r["started"] <= r["ended"]
        assert benchrun.Result.from_json(r["result"]).wall_time == r["wall_time"]
        host = r["host"]
        for key in ("cpu_model", "kernel", "governor", "smt", "turbo", "aslr", "hostname",
                    "cpu_count", "benchrun_version", "backend", "image_digest"):
            assert host[key] not in (None, ""), key
        assert host["benchrun_version"] == benchrun.__version__
        assert host["image_digest"] == r["image_digest"] and host["backend"] == "sandbox"
    assert runs[0]["variant_spec"]["command"] == ["echo", BMF]
    for key in ("cpu_model", "kernel", "governor", "smt", "turbo", "aslr"):
        assert key in camp["host"]


def test_bmf_metrics_and_csv_export(tmp_path: Path, store: Path, image: str):
    res = two_variants(image, tmp_path / "r.db").run(progress=False, image_store=store)
    db = sqlite3.connect(res.store)
    assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    bmf = db.execute("SELECT r.variant, m.value, m.source FROM metrics m JOIN runs r "
                     "ON r.id = m.run WHERE m.benchmark = 'b' AND m.measure = 'latency'").fetchall()
    assert sorted(bmf) == [("bmf", 1.5, "bmf")] * 4  # 1 warm-up + 3 repetitions
    walls = db.execute("SELECT COUNT(*) FROM metrics WHERE benchmark = 'run' AND "
                       "measure = 'wall_time'").fetchone()[0]
    assert walls == 8
    # The metric equals the run's wall_time column.
    row = db.execute("SELECT r.wall_time, m.value FROM runs r JOIN metrics m ON m.run = r.id "
                     "WHERE m.measure = 'wall_time' LIMIT 1").fetchone()
    assert row[0] == row[1]
    db.close()

    out = tmp_path / "tidy.csv"
    n = export_csv(res.store, out, campaign="two")
    all_rows = list(csv.DictReader(out.open()))
    assert len(all_rows) == n
    rows = [r for r in all_rows if not is_counter(r["measure"])]
    assert len(rows) == 8 * 4 + 4  # four result measures per run, plus BMF in four runs
    assert {r["variant"] for r in rows} == {"bmf", "nap"}
    assert {r["measure"] for r in rows} == {"wall_time", "cpu_user", "cpu_system", "peak_memory",
                                            "latency"}
    assert [r for r in rows if r["measure"] == "latency"][0]["value"] == "1.5"


def test_resume_after_interruption(tmp_path: Path, store: Path, image: str):
    c = two_variants(image, tmp_path / "r.db")
    seen: list[int] = []

    class Stop(Exception):
        pass

    def hook(planned, record):
        seen.append(planned.index)
        if len(seen) == 3:
            raise Stop

    with pytest.raises(Stop):
        c.run(progress=False, image_store=store, on_run=hook)
    with ResultsStore(c.store) as db:
        assert db.done_indices(c.id) == {0, 1, 2}

    again: list[int] = []
    res = c.run(progress=False, image_store=store, on_run=lambda p, r: again.append(p.index))
    assert again == [3, 4, 5, 6, 7]
    assert (res.planned, res.skipped, res.done, res.failed) == (8, 3, 8, 0)
    # Nothing left: a third call runs nothing.
    assert c.run(progress=False, image_store=store).skipped == 8
    with ResultsStore(c.store) as db:
        assert len(db.runs(c.id)) == 8


def test_failed_runs_are_stored_and_retried(tmp_path: Path, store: Path, image: str):
    c = Campaign("fails", [Variant("no", image, ["false"], timeout=60)], repetitions=2, warmup=0,
                 store=str(tmp_path / "r.db"))
    res = c.run(progress=False, image_store=store)
    assert (res.done, res.failed) == (0, 2)
    with ResultsStore(c.store) as db:
        runs = db.runs(c.id)
    assert [(r["status"], r["exit_code"], r["error"]) for r in runs] == \
        [("failed", 1, "exit code 1")] * 2
    res = c.run(progress=False, image_store=store)
    assert (res.skipped, res.failed) == (0, 2)  # retried, replacing the failed rows
    with ResultsStore(c.store) as db:
        assert len(db.runs(c.id)) == 2


def test_shared_store_holds_several_campaigns(tmp_path: Path, store: Path, image: str):
    db_path = tmp_path / "shared.db"
    a = two_variants(image, db_path).run(progress=False, image_store=store)
    b = two_variants(image, db_path, seed=5).run(progress=False, image_store=store)
    assert a.campaign_id != b.campaign_id
    with ResultsStore(db_path) as db:
        assert [c["id"] for c in db.campaigns()] == [a.campaign_id, b.campaign_id]
        assert len(db.runs()) == 16


CAMPAIGN_TOML = """
[campaign]
name = "two"
repetitions = 3
warmup = 1
seed = 0
store = "results.db"

[[variant]]
name = "bmf"
image = "{image}"
command = ["echo", '{bmf}']
timeout = 60

[[variant]]
name = "nap"
image = "{image}"
command = ["sleep", "0.05"]
timeout = 60
"""


def test_toml_file_gives_the_same_campaign(tmp_path: Path, store: Path, image: str):
    f = tmp_path / "c.toml"
    f.write_text(CAMPAIGN_TOML.format(image=image, bmf=BMF))
    from_file = Campaign.from_toml(f)
    in_python = two_variants(image, tmp_path / "results.db")
    assert from_file == in_python  # the store is relative to the file's directory
    assert from_file.id == in_python.id and make_plan(from_file) == make_plan(in_python)

    # The matrix form: images x commands x configs.
    m = tmp_path / "m.toml"
    m.write_text(f"""
[campaign]
name = "m"
repetitions = 2
[matrix]
images = {{ bb = "{image}" }}
commands = {{ t = ["true"], e = ["echo", "hi"] }}
[matrix.configs.one]
vcpus = 1
memory = "64m"
[matrix.configs.two]
env = {{ X = "1" }}
""")
    mc = Campaign.from_toml(m)
    assert [v.name for v in mc.variants] == ["bb/t/one", "bb/t/two", "bb/e/one", "bb/e/two"]
    assert mc.variant("bb/t/one").memory == 64 << 20
    assert mc == Campaign.matrix("m", {"bb": image}, {"t": ["true"], "e": ["echo", "hi"]},
                                 {"one": {"vcpus": 1, "memory": "64m"}, "two": {"env": {"X": "1"}}},
                                 repetitions=2, store=str(tmp_path / "benchrun-results.db"))
    res = mc.run(progress=False, image_store=store)
    assert (res.planned, res.done) == (2 * 4 + 4, 12)

    bad = tmp_path / "bad.toml"
    bad.write_text('[campaign]\nname = "x"\nrepetitons = 3\n[[variant]]\nname="a"\nimage="b"\n')
    with pytest.raises(ConfigError, match="unknown key.*repetitons"):
        Campaign.from_toml(bad)
    bad.write_text(f'[campaign]\nname = "x"\n[[variant]]\nname="a"\nimage="{image}"\ncpus=2\n')
    with pytest.raises(ConfigError, match="cpus"):
        Campaign.from_toml(bad)


def test_variants_take_every_run_option(tmp_path: Path, store: Path, image: str):
    # Options without a Variant field of their own (user, pids_limit, ...) come from the run
    # option table, in Python and TOML alike, and reach the run.
    f = tmp_path / "o.toml"
    f.write_text(f"""
[campaign]
name = "o"
repetitions = 1
warmup = 0
[[variant]]
name = "nobody"
image = "{image}"
command = ["id", "-u"]
user = "65534"
pids_limit = 64
metrics = ["result"]
""")
    c = Campaign.from_toml(f)
    v = c.variant("nobody")
    assert v.options == {"user": "65534", "pids_limit": 64}
    assert Variant.from_dict(v.to_dict()) == v  # the stored form reads back
    res = c.run(progress=False, image_store=store)
    assert (res.done, res.failed) == (1, 0)
    with ResultsStore(res.store) as db:
        (run,) = db.runs(res.campaign_id)
    assert run["result"]["stdout"] == "65534\n"

    with pytest.raises(ConfigError, match="pids_limit"):
        Variant("x", image, options={"pids_limit": "many"})
    with pytest.raises(ConfigError, match="not a run option"):
        Variant("x", image, options={"colour": "red"})
    # A job server's job spec cannot carry them: refused before anything is submitted.
    from benchrun.campaign.runner import _check_remote

    with pytest.raises(ConfigError, match="cannot be run through a job server"):
        _check_remote(c)


def _cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="benchrun")
    parser.add_argument("-v", "--verbose", action="store_true")
    campaign_cli.add_parsers(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(argv))
    return int(args.func(args))


def test_cli_run_show_export(tmp_path: Path, store: Path, image: str, capsys):
    f = tmp_path / "c.toml"
    f.write_text(CAMPAIGN_TOML.format(image=image, bmf=BMF))
    db = tmp_path / "other.db"
    assert _cli("campaign", "run", str(f), "--store", str(db), "--no-progress",
                "--image-store", str(store)) == 0
    assert "8/8 runs done, 0 failed" in capsys.readouterr().out
    assert _cli("campaign", "show", str(db)) == 0
    shown = capsys.readouterr().out
    assert "two@" in shown and "8/8 done" in shown and "bmf:" in shown
    out = tmp_path / "t.csv"
    assert _cli("campaign", "export", str(db), str(out)) == 0
    assert len([r for r in csv.DictReader(out.open()) if not is_counter(r["measure"])]) == 36
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="pyarrow is not installed"):
            _cli("campaign", "export", str(db), str(tmp_path / "t.parquet"))


@pytest.fixture(scope="module")
def pushed_image(registry, tmp_path_factory) -> str:
    layer = Layer("gzip")
    info = write_layout(tmp_path_factory.mktemp("campaign-image") / "layout",
                        [busybox_layer(), layer], config={"Env": ["PATH=/bin"]})
    ref = f"{registry.host}/bench/campaign:1"
    skopeo_push(info, ref)
    return ref


def test_campaign_through_job_server(tmp_path: Path, pushed_image: str):
    fleet = Fleet(tmp_path / "fleet", f"sqlite:///{tmp_path / 'jobs.db'}",
                  allow_registries=(pushed_image.split("/")[0],))
    try:
        fleet.agent("r1")
        c = Campaign("remote", [Variant("bmf", pushed_image, ["echo", BMF], timeout=60),
                                Variant("nap", pushed_image, ["sleep", "0.05"], timeout=60)],
                     repetitions=2, warmup=1, store=str(tmp_path / "r.db"))
        res = c.run(client=fleet.user, project=fleet.project, progress=False, batch=3)
        assert (res.planned, res.done, res.failed) == (6, 6, 0)
        with ResultsStore(c.store) as db:
            runs = db.runs(c.id)
            assert [(r["variant"], r["repetition"], r["warmup"]) for r in runs] == \
                [(p.variant, p.repetition, p.warmup) for p in make_plan(c)]
            for r in runs:
                assert r["status"] == "done" and r["exit_code"] == 0
                assert r["image_digest"].startswith("sha256:")
                assert r["host"]["remote"] is True and r["host"]["runner"]
                # The runner host's attestation, from the job's host_state.
                assert {"tuned", "differs"} <= set(r["host"]["state"]), r["host"]
                assert r["result"]["job"]["status_name"] == "completed"
                assert 0 <= r["wall_time"] < 30
                ms = {(m["benchmark"], m["measure"]): m["value"] for m in db.metrics(r["id"])}
                if r["variant"] == "bmf":
                    assert ms[("b", "latency")] == 1.5
                    assert json.loads(r["result"]["results"][0]["stdout"]) == json.loads(BMF)
                # Remotely only the wall time of the Result's own measures is known.
                assert ("run", "wall_time") in ms and ("run", "cpu_user") not in ms
        # Resuming through the server too: nothing left to do.
        again = c.run(client=fleet.user, project=fleet.project, progress=False)
        assert again.skipped == 6
    finally:
        fleet.close()
