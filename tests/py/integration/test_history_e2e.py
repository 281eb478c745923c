"""Issue 14 end to end on real parts: `benchrun serve` and `benchrun agent` processes, a real
registry, real sandbox runs. A benchmark image whose speed an environment variable switches
between commits (a busybox sh loop): a real 4x slowdown (large and reliable on a loaded CI host)
is detected, re-run ABBA on the same
runner, confirmed and alerted; a fake outlier uploaded for the next commit is flagged, re-run
from its recipe and marked as noise, not alerted. (The 5 % case is bench/, not a pass/fail test.)"""

from __future__ import annotations

import threading
import time

import pytest
import requests

from support.jobs import Fleet
from support.ocilayout import Layer, busybox_layer, skopeo_push, write_layout
from support.registry import wait_for

pytestmark = pytest.mark.root

FAST, SLOW = "25000", "100000"  # loop iterations: the slow commit does 4x the work
# CPU time: on this shared 2-CPU VM wall time of a 0.1 s run varies by 2x between runs (other
# sessions' builds); the workload's own CPU time does not. (wall_time works the same way on a
# quiet runner; the series of every run metric are stored.)
MEASURE = "cpu_user"
LOOP = ["sh", "-c", 'i=0; while [ "$i" -lt "$LOOPS" ]; do i=$((i+1)); done']


@pytest.fixture(scope="module")
def loop_image(registry, tmp_path_factory) -> str:
    layer = Layer("gzip")
    for applet in ("sh", "[", "test", "true"):
        layer.symlink(f"bin/{applet}", "busybox")
    info = write_layout(tmp_path_factory.mktemp("loop-image") / "layout",
                        [busybox_layer(), layer], config={"Env": ["PATH=/bin"]})
    ref = f"{registry.host}/bench/loop:1"
    skopeo_push(info, ref)
    return ref


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.slow)])
def fleet(request, tmp_path, registry):
    url = (f"sqlite:///{tmp_path / 'jobs.db'}" if request.param == "sqlite"
           else request.getfixturevalue("pg_dsn"))
    f = Fleet(tmp_path, url, allow_registries=(registry.host,))
    yield f
    f.close()


class AlertEvents(threading.Thread):
    """Collects the SSE stream's alert events in the background."""

    def __init__(self, url: str, token: str) -> None:
        super().__init__(daemon=True)
        self.resp = requests.get(f"{url}/v0/events", headers={"Authorization": f"Bearer {token}"},
                                 stream=True, timeout=120)
        self.lines: list[str] = []

    def run(self) -> None:
        try:
            for line in self.resp.iter_lines(decode_unicode=True):
                if line and line.startswith("data:") and '"kind":"alert"' in line:
                    self.lines.append(line)
        except (requests.RequestException, AttributeError):
            pass  # closed at the end of the test


def test_slowdown_confirmed_outlier_is_noise(fleet: Fleet, loop_image: str):
    user, project = fleet.user, fleet.project
    events = AlertEvents(fleet.server.url, user._http.headers["Authorization"].split()[1])
    events.start()
    fleet.agent("r1")
    user.set_alert_config(project, branch="main", measure=MEASURE, model="percentage",
                          params={"upper": 1.0}, repetitions=3)

    def submit(commit: str, loops: str) -> dict:
        return user.submit(loop_image, LOOP, project=project, env={"LOOPS": loops},
                           iterations=3, timeout=120,
                           history={"branch": "main", "commit": commit, "benchmark": "loop"})

    t0 = time.monotonic()
    for i in range(3):
        done = user.wait(submit(f"c{i}", FAST)["id"], timeout=120)
        assert done["status"] == 3, done
    # The agent's own per-iteration metrics and its testbed, stored and served per job.
    res = user._request("GET", f"/v0/jobs/{done['id']}/results")
    walls = [it["metrics"]["wall_time"] for it in res["iterations"]]
    assert len(walls) == 3 and all(w["unit"] == "s" and 0 < w["value"] < 60 for w in walls)
    assert all(it["end"] >= it["start"] > 0 for it in res["iterations"])
    assert {"cpu_user", "peak_memory"} <= set(res["iterations"][0]["metrics"])
    assert res["testbed"]["backend"] == "sandbox" and res["testbed"]["cpu_model"]

    slow = user.wait(submit("c3", SLOW)["id"], timeout=120)
    assert slow["status"] == 3, slow

    def alert_of(rev: str) -> dict:
        found: list = []

        def decided() -> bool:
            found[:] = [a for a in user.alerts(project) if a["head_revision"] == rev]
            return bool(found) and found[0]["state"] != "confirming"

        assert wait_for(decided, timeout=120), (found, user.alerts(project))
        return user.alert(project, found[0]["id"])

    alert = alert_of("c3")
    conf = alert["confirmation"]
    assert alert["state"] == "open", alert
    assert alert["base_revision"] == "c2" and alert["kind"] == "threshold:percentage"
    assert conf["order"] == "ABBAAB" and len(conf["jobs"]) == 6
    assert conf["comparison"]["verdict"] == "slower" and conf["comparison"]["change"] > 1.0, conf
    jobs = [user.job(j["id"]) for j in conf["jobs"]]
    assert {j["runner"] for j in jobs} == {slow["runner"]}  # the same runner, pinned
    # One at a time, never overlapping (the runner's own iteration times), in the ABBA order.
    spans = []
    for j in jobs:
        its = user._request("GET", f"/v0/jobs/{j['id']}/results")["iterations"]
        spans.append((its[0]["start"], its[-1]["end"]))
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), spans

    # `benchrun compare job:ID` reads the same per-iteration metrics the server stored.
    from benchrun import resultsets

    head_side = resultsets.load(f"job:{slow['id']}", client=lambda: user)
    cpu = head_side[head_side["measure"] == MEASURE]
    assert len(cpu) == 3 and set(cpu["unit"]) == {"s"}, head_side

    # A fake outlier uploaded for c4 (3x the new level), with the recipe that reproduces c4.
    testbed = next(t for t in user.testbeds(project) if t["runner"] == slow["runner"])
    level = sorted(it["metrics"][MEASURE]["value"]
                   for it in user._request("GET", f"/v0/jobs/{slow['id']}/results")["iterations"])
    up = user.upload(project, {"loop": {MEASURE: {"value": 3 * level[1]}}}, branch="main",
                     commit="c4", testbed=testbed["name"],
                     rerun={"image": loop_image,
                            "config": {"cmd": LOOP, "env": {"LOOPS": SLOW}, "iter": 3,
                                       "timeout": 120}})
    assert [a["state"] for a in up["alerts"]] == ["confirming"]
    noise = alert_of("c4")
    assert noise["state"] == "noise", noise
    # Same work on both sides: the re-run must not confirm a slowdown. (It can come out "faster"
    # when this shared host's CPU time drifts between the ABBA runs, as CI saw on PostgreSQL.)
    assert noise["confirmation"]["comparison"]["verdict"] != "slower", noise
    series = user.series(project, branch="main", measure=MEASURE)
    assert len(series) == 1 and series[0]["points"] == 5
    rows = user.series_table(project, series[0]["id"])["rows"]
    assert [(r["revision"], r["noise"]) for r in rows] == [
        ("c0", False), ("c1", False), ("c2", False), ("c3", False), ("c4", True)]
    assert user.alerts(project, state="open") == [user.alerts(project, state="open")[0]]
    assert wait_for(lambda: len(events.lines) >= 4, timeout=10), events.lines
    states = [line.split('"state":"')[1].split('"')[0] for line in events.lines]
    assert states[:2] == ["confirming", "open"] and "noise" in states, states
    events.resp.close()
    print(f"history e2e: {time.monotonic() - t0:.1f} s, c3 alert {conf['comparison']}")
