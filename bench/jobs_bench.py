"""Job server + agent benchmarks (issue 5); never a pass/fail test.

1. submit-to-start latency with an idle agent: the time from the job's submission (server clock,
   `created`) to its `running` (`started`), the agent waiting in its long-poll with the image
   already cached. Upstream Bencher claims by polling its database every second (POLL_INTERVAL),
   so its expected latency is ~0.5 s (uniform in 0..1 s) plus the run's start; target here
   <= 100 ms median.
2. throughput of trivial jobs (`true` in the sandbox) with 1 and 3 agents: jobs per second from
   the first submission to the last completion.
Both on SQLite and PostgreSQL (a throwaway cluster).

Run as root from the project venv:  python bench/jobs_bench.py [--jobs N] [--latency-jobs N]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "py"))

from support.jobs import Fleet  # noqa: E402
from support.ocilayout import Layer, busybox_layer, skopeo_push, write_layout  # noqa: E402
from support.postgres import PostgresServer  # noqa: E402
from support.registry import RegistryServer  # noqa: E402

DONE = (3, 5, 6)


def wait_all(fleet: Fleet, jobs: list[str], timeout: float = 900) -> list[dict]:
    deadline = time.monotonic() + timeout
    pending = set(jobs)
    while pending and time.monotonic() < deadline:
        for j in list(pending):
            if fleet.user.job(j)["status"] in DONE:
                pending.discard(j)
        time.sleep(0.02)
    if pending:
        raise SystemExit(f"{len(pending)} jobs did not finish")
    return [fleet.user.job(j) for j in jobs]


def latency(fleet: Fleet, image: str, n: int) -> dict:
    # Warm-up: the agent pulls the image once.
    j = fleet.user.submit(image, ["true"], project=fleet.project, timeout=60)["id"]
    wait_all(fleet, [j])
    lat = []
    for _ in range(n):
        time.sleep(0.3)  # the agent is idle in its long-poll again
        j = fleet.user.submit(image, ["true"], project=fleet.project, timeout=60)["id"]
        job = wait_all(fleet, [j])[0]
        lat.append(job["started"] - job["created"])
    return {"median_ms": round(statistics.median(lat) * 1000, 1),
            "p90_ms": round(sorted(lat)[int(0.9 * (len(lat) - 1))] * 1000, 1),
            "n": n, "upstream_poll_expectation_ms": 500}


def throughput(fleet: Fleet, image: str, n: int) -> dict:
    t0 = time.monotonic()
    jobs = [fleet.user.submit(image, ["true"], project=fleet.project, timeout=60)["id"]
            for _ in range(n)]
    submitted = time.monotonic() - t0
    done = wait_all(fleet, jobs)
    elapsed = time.monotonic() - t0
    ok = sum(1 for j in done if j["status"] == 3)
    return {"jobs": n, "ok": ok, "seconds": round(elapsed, 2),
            "jobs_per_s": round(n / elapsed, 1), "submit_s": round(submitted, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--jobs", type=int, default=100)
    ap.add_argument("--latency-jobs", type=int, default=20)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="jobs-bench-"))
    registry = RegistryServer(work / "registry")
    pg = PostgresServer()  # its own /tmp dir: the postgres user must reach it
    out: dict = {}
    try:
        layer = Layer("gzip").symlink("bin/true", "busybox")
        info = write_layout(work / "layout", [busybox_layer(), layer], config={"Env": ["PATH=/bin"]})
        image = f"{registry.host}/bench/true:1"
        skopeo_push(info, image)
        dbs = {"sqlite": lambda tag: f"sqlite:///{work / tag}.db",
               "postgres": lambda tag: pg.create_database(tag)}
        for name, url in dbs.items():
            res: dict = {}
            fleet = Fleet(work / f"{name}-lat", url(f"{name}_lat"), allow_registries=(registry.host,))
            try:
                fleet.agent("a0")
                res["submit_to_start"] = latency(fleet, image, args.latency_jobs)
                res["throughput_1_agent"] = throughput(fleet, image, args.jobs)
            finally:
                fleet.close()
            fleet = Fleet(work / f"{name}-tp3", url(f"{name}_tp3"), allow_registries=(registry.host,))
            try:
                for i in range(3):
                    fleet.agent(f"a{i}")
                throughput(fleet, image, 6)  # every agent pulls once
                res["throughput_3_agents"] = throughput(fleet, image, args.jobs)
            finally:
                fleet.close()
            out[name] = res
        print(json.dumps(out, indent=2))
    finally:
        pg.stop()
        registry.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
