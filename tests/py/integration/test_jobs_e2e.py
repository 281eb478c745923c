"""Issue 5 end to end, on real parts: `benchrun serve` (SQLite and a real PostgreSQL) and
`benchrun agent` processes on loopback, real images from a real registry, real sandbox runs.
Protocol corner cases are in test_server.py (fake runner) and test_agent.py (fake server)."""

from __future__ import annotations

import json

import signal
import time
import uuid
from pathlib import Path

import pytest

import benchrun
from support.jobs import Agent, Fleet
from support.ocilayout import Layer, busybox_layer, skopeo_push, write_layout
from support.registry import wait_for

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def pushed_image(registry, tmp_path_factory) -> str:
    """A busybox image with a few applets, pushed to the test registry by tag."""
    layer = Layer("gzip")
    for applet in ("sleep", "cat", "echo", "sh", "true"):
        layer.symlink(f"bin/{applet}", "busybox")
    info = write_layout(tmp_path_factory.mktemp("jobs-image") / "layout",
                        [busybox_layer(), layer], config={"Env": ["PATH=/bin"]})
    ref = f"{registry.host}/bench/jobs:1"
    skopeo_push(info, ref)
    return ref


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.db'}"
    return request.getfixturevalue("pg_dsn")


@pytest.fixture
def fleet(tmp_path, db_url, registry):
    f = Fleet(tmp_path, db_url, heartbeat_timeout=3.0, grace=5.0,
              allow_registries=(registry.host,))
    yield f
    f.close()


def wait_status(client: benchrun.Client, job: str, status: int, timeout: float = 60) -> dict:
    assert wait_for(lambda: client.job(job)["status"] == status, timeout=timeout), client.job(job)
    return client.job(job)


def test_submit_run_results(fleet: Fleet, pushed_image: str):
    fleet.agent("r1")
    job = fleet.user.submit(pushed_image, ["sh", "-c", "echo hello; echo oops >&2; echo 42 > /tmp/o"],
                            project=fleet.project, outputs=["/tmp/o"], iterations=2, timeout=60)
    assert job["config"]["digest"].startswith("sha256:")  # pinned at submission
    done = fleet.user.wait(job["id"], timeout=120)
    assert done["status"] == 3, done  # completed
    results = fleet.user.results(job["id"])
    assert len(results) == 2
    for it in results:
        # The runner's own measurements of the iteration ride along (issue 14/18).
        measured = {k: it.pop(k) for k in ("metrics", "start", "end")}
        assert measured["metrics"]["wall_time"]["unit"] == "s", measured
        assert measured["end"] >= measured["start"] > 0
        assert it == {"exit_code": 0, "stdout": "hello\n", "stderr": "oops\n",
                      "output": {"/tmp/o": "42\n"}}
    # The runner's attestation of its host (the last iteration's Result.facts["host_state"]),
    # stored with the job and served by both job endpoints.
    host = done["host_state"]
    assert isinstance(host, dict) and {"tuned", "differs"} <= set(host), done
    assert host["tuned"] in (True, False, None) and isinstance(host["differs"], list)
    if host["tuned"] is not None:  # None: nothing to compare here (e.g. one CPU online)
        assert host["tuned"] == (host["differs"] == [])
    got = fleet.user._request("GET", f"/v0/jobs/{job['id']}/results")
    assert got["host_state"] == host


def test_iterations_auto_from_the_runner_hosts_noise(fleet: Fleet, pushed_image: str,
                                                     tmp_path, monkeypatch):
    from benchrun import noise
    from benchrun.power import repetitions_for

    state = tmp_path / "runner-state"
    monkeypatch.setenv("BENCHRUN_HOST_STATE", str(state))  # the agent inherits it
    fleet.agent("r1")
    submit = dict(project=fleet.project, iterations="auto", detect=0.5, timeout=60)
    job = fleet.user.submit(pushed_image, ["true"], **submit)
    done = fleet.user.wait(job["id"], timeout=120)
    assert done["status"] == 5, done  # failed: the runner host has no figure
    assert "benchrun host noise" in json.dumps(done)
    assert done["host_state"] is None  # it failed before any run: no host state to report
    doc = noise.figures({"cpu": [1.0, 1.1, 0.9, 1.0, 1.0]}, cpus="0", duration_s=1.0)
    noise.save(doc | {"score": 0.3}, str(state / "noise.json"))
    n = repetitions_for(0.5, 0.3)
    assert 2 < n < 20
    job = fleet.user.submit(pushed_image, ["true"], **submit)
    done = fleet.user.wait(job["id"], timeout=120)
    assert done["status"] == 3, done
    assert len(fleet.user.results(job["id"])) == n
    # The host state names the noise figure the count came from.
    assert done["host_state"]["noise"]["score"] == 0.3, done


def test_cancel_while_running(fleet: Fleet, pushed_image: str):
    fleet.agent("r1")
    marker = f"cancel-{uuid.uuid4().hex}"
    job = fleet.user.submit(pushed_image, ["sh", "-c", f": {marker}; sleep 600"],
                            project=fleet.project, timeout=600)
    wait_status(fleet.user, job["id"], 2)  # running
    fleet.user.cancel(job["id"])
    done = wait_status(fleet.user, job["id"], 6, timeout=30)  # canceled
    assert done["status"] == 6
    # The workload is gone from the agent's machine (this one).
    assert wait_for(lambda: marker.encode() not in _all_cmdlines(), timeout=15)


def test_agent_sigkilled_mid_job_fails_after_heartbeat_timeout(fleet: Fleet, pushed_image: str):
    agent = fleet.agent("r1")
    job = fleet.user.submit(pushed_image, ["sleep", "600"], project=fleet.project, timeout=600)
    wait_status(fleet.user, job["id"], 2)
    agent.stop(signal.SIGKILL)
    failed = wait_status(fleet.user, job["id"], 5, timeout=30)  # failed
    assert failed["reason"] == "heartbeat_timeout"
    # Its next start cleans the sandbox the killed agent left, then serves the next job.
    agent.start()
    job2 = fleet.user.submit(pushed_image, ["true"], project=fleet.project, timeout=60)
    assert fleet.user.wait(job2["id"], timeout=120)["status"] == 3
    assert list((agent.store / "runs").glob("run-*")) == []


def test_server_restart_mid_job_loses_nothing(tmp_path, db_url, pushed_image: str):
    # A heartbeat timeout well above the restart plus the agent's reconnect backoff, as in
    # production (90 s): the restarted server re-arms the job's timer from its last heartbeat.
    fleet = Fleet(tmp_path, db_url, heartbeat_timeout=30.0, grace=60.0,
                  allow_registries=(pushed_image.split("/")[0],))
    try:
        fleet.agent("r1")
        job = fleet.user.submit(pushed_image, ["sh", "-c", "sleep 4; echo done"],
                                project=fleet.project, timeout=60)
        wait_status(fleet.user, job["id"], 2)
        fleet.server.stop()
        time.sleep(1)
        fleet.server.start()  # same database, same port: the agent reconnects and resends
        done = fleet.user.wait(job["id"], timeout=120)
        assert done["status"] == 3, done
        assert fleet.user.results(job["id"])[0]["stdout"] == "done\n"
    finally:
        fleet.close()


def test_projects_are_isolated(fleet: Fleet, pushed_image: str):
    other = fleet.admin.create_project("other")["id"]
    stranger = fleet.server.client(fleet.admin.create_token("stranger", projects=[other]))
    job = fleet.user.submit(pushed_image, ["true"], project=fleet.project, timeout=60)
    with pytest.raises(benchrun.JobNotFound):
        stranger.job(job["id"])
    with pytest.raises((benchrun.JobNotFound, benchrun.AuthError)):
        stranger.jobs(fleet.project)
    # A runner of the other project never gets this project's job.
    _, key = fleet.admin.create_runner("outsider", [other])
    outsider = Agent(fleet.work / "agents", fleet.server, "outsider", key)
    fleet.agents.append(outsider)
    time.sleep(2)
    assert fleet.user.job(job["id"])["status"] == 0  # still pending


def _all_cmdlines() -> bytes:
    out = b""
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                out += (p / "cmdline").read_bytes() + b"\n"
            except OSError:
                pass
    return out


@pytest.mark.slow
def test_load_three_agents_two_hundred_jobs_postgres(tmp_path, pg_dsn, pushed_image):
    fleet = Fleet(tmp_path, pg_dsn, allow_registries=(pushed_image.split("/")[0],))
    try:
        for i in range(3):
            fleet.agent(f"load{i}")
        jobs = [fleet.user.submit(pushed_image, ["true"], project=fleet.project, timeout=60)["id"]
                for _ in range(200)]
        deadline = time.monotonic() + 600
        pending = set(jobs)
        while pending and time.monotonic() < deadline:
            for j in list(pending):
                if fleet.user.job(j)["status"] in (3, 5, 6):
                    pending.discard(j)
            time.sleep(0.5)
        assert not pending, f"{len(pending)} jobs never finished"
        finished = [fleet.user.job(j) for j in jobs]
        assert all(j["status"] == 3 for j in finished), [j for j in finished if j["status"] != 3][:3]
        assert all(len(fleet.user.results(j["id"])) == 1 for j in finished)  # each ran exactly once
        by_runner: dict[str, int] = {}
        for j in finished:
            by_runner[j["runner"]] = by_runner.get(j["runner"], 0) + 1
        assert len(by_runner) == 3 and sum(by_runner.values()) == 200, by_runner
        # Independently of the server's bookkeeping: the agents' own logs show every job claimed
        # and run exactly once across the fleet.
        logs = "".join(a.log.read_text() for a in fleet.agents)
        for j in jobs:
            assert logs.count(f"job {j}: claimed") == 1, j
            assert logs.count(f"job {j}: iteration 1/1 exit 0") == 1, j
    finally:
        fleet.close()
