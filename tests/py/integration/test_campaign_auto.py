"""repetitions="auto" with detect=: the count comes from the host's stored noise figure (a fake
noise.json here), is recorded in the results store, and stays when the campaign is resumed; a
clear error when the host has no figure. Also the job protocol's iter "auto"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import benchrun
from benchrun import noise
from benchrun.agent.executor import job_iterations
from benchrun.campaign import Campaign, ResultsStore, Variant, make_plan
from benchrun.errors import ConfigError, ProtocolError
from benchrun.jobs import protocol
from benchrun.power import repetitions_for
from support.ocilayout import busybox_layer, write_layout


def fake_noise(directory: Path, score: float) -> dict:
    doc = noise.figures(
        {"cpu": [1.0, 1.01, 0.99, 1.0, 1.0]}, cpus="0", duration_s=1.0, host="fake"
    ) | {"score": score}
    noise.save(doc, str(directory / "noise.json"))
    return doc


@pytest.fixture
def state(tmp_path: Path, monkeypatch) -> Path:
    d = tmp_path / "host-state"
    monkeypatch.setenv("BENCHRUN_HOST_STATE", str(d))
    return d


def auto_campaign(image: str, results: Path, detect: float = 0.2, pilot: int = 0) -> Campaign:
    return Campaign(
        "auto",
        [Variant("a", image, ["true"], timeout=60), Variant("b", image, ["true"], timeout=60)],
        repetitions="auto", detect=detect, warmup=0, store=str(results), pilot=pilot)


def test_auto_needs_detect_and_detect_needs_auto():
    v = [Variant("a", "img")]
    with pytest.raises(ConfigError, match="detect None: repetitions='auto' needs"):
        Campaign("c", v, repetitions="auto")
    for bad in (0, 1, 2, -0.1, True, "2%"):
        with pytest.raises(ConfigError, match="detect"):
            Campaign("c", v, repetitions="auto", detect=bad)
    with pytest.raises(ConfigError, match="detect: only used with repetitions='auto'"):
        Campaign("c", v, repetitions=5, detect=0.02)
    with pytest.raises(ConfigError, match="'many': expected a whole number or 'auto'"):
        Campaign("c", v, repetitions="many")
    for bad in (1, 2, -1, 2.5):
        with pytest.raises(ConfigError, match="pilot"):
            Campaign("c", v, repetitions="auto", detect=0.02, pilot=bad)
    c = Campaign("c", v, repetitions="auto", detect=0.02)
    assert c.to_dict()["repetitions"] == "auto" and c.to_dict()["detect"] == 0.02
    assert c.to_dict()["pilot"] == 5 and Campaign("c", v, repetitions="auto", detect=0.02,
                                                  pilot=0).id != c.id
    # Campaigns without detect keep the ids they had.
    assert "detect" not in Campaign("c", v).to_dict()
    with pytest.raises(ConfigError, match="must be chosen before planning"):
        make_plan(c)
    assert len(make_plan(c, 3)) == 1 + 3  # one warm-up run, then three rounds


def test_auto_from_toml(tmp_path: Path, state: Path):
    f = tmp_path / "c.toml"
    f.write_text('[campaign]\nname = "t"\nrepetitions = "auto"\ndetect = 0.05\n'
                 '[[variant]]\nname = "a"\nimage = "busybox"\n')
    c = Campaign.from_toml(f)
    assert (c.repetitions, c.detect) == ("auto", 0.05)
    with pytest.raises(ConfigError, match="run `benchrun host noise` first"):
        c.auto_repetitions()
    doc = fake_noise(state, 0.03)
    assert c.auto_repetitions() == repetitions_for(0.05, 0.03)
    assert c.auto_repetitions(doc | {"score": 0.3}) == repetitions_for(0.05, 0.3)
    # A noisier pilot raises the count; a quieter one does not lower it.
    assert c.auto_repetitions(doc, pilot_cv=0.1) == repetitions_for(0.05, 0.1)
    assert c.auto_repetitions(doc, pilot_cv=0.001) == repetitions_for(0.05, 0.03)


@pytest.mark.root
def test_auto_campaign_runs_the_chosen_count_and_keeps_it(tmp_path: Path, store: Path,
                                                          state: Path):
    info = write_layout(tmp_path / "layout", [busybox_layer()], config={"Env": ["PATH=/bin"]})
    benchrun.pull(info.ref, store=store)
    c = auto_campaign(info.ref, tmp_path / "r.db", detect=0.2)
    with pytest.raises(ConfigError, match="run `benchrun host noise` first"):
        c.run(progress=False, image_store=store)
    fake_noise(state, 0.1)
    n = repetitions_for(0.2, 0.1)
    assert 2 < n < 10
    res = c.run(progress=False, image_store=store)
    assert (res.planned, res.done, res.failed) == (2 * n, 2 * n, 0)
    with ResultsStore(res.store) as db:
        spec = db.campaign(res.campaign_id)["spec"]
    assert spec["repetitions"] == "auto" and spec["repetitions_chosen"] == n
    assert spec["noise"]["score"] == 0.1 and spec["noise"]["host"] == "fake"
    assert spec["pilot"] is None
    # A noisier host later: the recorded campaign keeps its count (nothing new to run).
    fake_noise(state, 0.5)
    again = c.run(progress=False, image_store=store)
    assert (again.planned, again.skipped, again.campaign_id) == (2 * n, 2 * n, res.campaign_id)
    # Without any figure the recorded count is still enough to resume.
    (state / "noise.json").unlink()
    assert c.run(progress=False, image_store=store).complete


def config(**kw) -> dict:
    return {"registry": "https://r.example", "project": "5b1c2a52-5a7e-4ad5-9a61-0c6b7a0b8b2e",
            "digest": "sha256:" + "a" * 64, **kw}


def test_job_config_iter_auto(state: Path):
    c = protocol.parse_config(config(iter="auto", detect=0.1))
    assert (c.iter, c.detect) == ("auto", 0.1)
    assert protocol.parse_config(c.to_json()) == c  # round trip
    assert protocol.parse_config(config(iter=3)).detect is None
    with pytest.raises(ProtocolError, match="detect: iter 'auto' needs"):
        protocol.parse_config(config(iter="auto"))
    with pytest.raises(ProtocolError, match="detect: iter 'auto' needs"):
        protocol.parse_config(config(iter="auto", detect=1.5))
    with pytest.raises(ProtocolError, match="detect: only used with iter 'auto'"):
        protocol.parse_config(config(iter=2, detect=0.1))
    with pytest.raises(ProtocolError, match="iter"):
        protocol.parse_config(config(iter="lots"))
    # The agent resolves it from its host's figure.
    assert job_iterations(protocol.parse_config(config(iter=4))) == 4
    with pytest.raises(ConfigError, match="run `benchrun host noise` first"):
        job_iterations(c)
    fake_noise(state, 0.05)
    assert job_iterations(c) == repetitions_for(0.1, 0.05)
    fake_noise(state, 0.5)  # about 39000 iterations for 1 %
    with pytest.raises(ConfigError, match="more than the 10000"):
        job_iterations(protocol.parse_config(config(iter="auto", detect=0.01)))


@pytest.mark.root
def test_auto_campaign_pilot_can_raise_the_count(tmp_path: Path, store: Path, state: Path):
    info = write_layout(tmp_path / "layout", [busybox_layer()], config={"Env": ["PATH=/bin"]})
    benchrun.pull(info.ref, store=store)
    fake_noise(state, 0.001)  # a quiet host: the figure alone asks for the minimum
    assert repetitions_for(0.5, 0.001) == 2
    c = auto_campaign(info.ref, tmp_path / "r.db", detect=0.5, pilot=3)
    res = c.run(progress=False, image_store=store)
    with ResultsStore(res.store) as db:
        spec = db.campaign(res.campaign_id)["spec"]
        runs = db.runs(res.campaign_id)
    pilot = spec["pilot"]
    assert set(pilot) == {"a", "b"} and all(cv > 0 for cv in pilot.values())
    n = max(2, repetitions_for(0.5, max(pilot.values())))
    assert spec["repetitions_chosen"] == n and res.planned == len(runs) == 2 * n  # no pilot rows
