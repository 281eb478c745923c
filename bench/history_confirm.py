"""Confirm-before-alert end to end (issue 14, docs/history.md); never a pass/fail test.

A job server, one agent and a busybox loop image whose work per run an environment variable sets
per commit. A sensitive threshold (percentage, --upper, default 3 %) watches the series; every
suspect is re-run ABBA on the same runner before an alert opens.

1. history: --base commits at the base work;
2. a real slowdown: the next commit does (1 + --slowdown) times the work (default 5 %): expected
   "open" (confirmed);
3. injected noise: the commit after it does the same work as (2), with a CPU hog (one busy
   process per CPU) during its run: if the threshold fires, expected "noise" (not alerted).

Prints every alert with its state, the re-run's comparison and the wall time the whole took, as
JSON. Run as root from the project venv:

    python bench/history_confirm.py [--measure cpu_user|wall_time] [--slowdown 0.05]
        [--loops 200000] [--base 8] [--iterations 5] [--repetitions N] [--window N]
        [--db sqlite|postgres]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "py"))

from support.jobs import Fleet  # noqa: E402
from support.ocilayout import Layer, busybox_layer, skopeo_push, write_layout  # noqa: E402
from support.registry import RegistryServer  # noqa: E402

LOOP = ["sh", "-c", 'i=0; while [ "$i" -lt "$LOOPS" ]; do i=$((i+1)); done']


def hog_while(fleet: Fleet, job_id: str) -> threading.Thread:
    """One busy process per CPU from the moment the job runs until it ends."""

    def run() -> None:
        while fleet.user.job(job_id)["status"] < 2:
            time.sleep(0.01)
        hogs = [
            subprocess.Popen(["sh", "-c", "while :; do :; done"])
            for _ in range(os.cpu_count() or 1)
        ]
        try:
            while fleet.user.job(job_id)["status"] == 2:
                time.sleep(0.01)
        finally:
            for h in hogs:
                h.kill()
                h.wait()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--measure", default="cpu_user")
    ap.add_argument("--slowdown", type=float, default=0.05)
    ap.add_argument("--upper", type=float, default=0.03)
    ap.add_argument("--window", type=int, help="threshold window (points; default all)")
    ap.add_argument("--loops", type=int, default=200_000)
    ap.add_argument("--base", type=int, default=8)
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--repetitions", type=int)
    ap.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="history-bench-"))
    registry = RegistryServer(work / "registry")
    pg = None
    try:
        layer = Layer("gzip")
        for applet in ("sh", "[", "test", "true"):
            layer.symlink(f"bin/{applet}", "busybox")
        info = write_layout(
            work / "layout", [busybox_layer(), layer], config={"Env": ["PATH=/bin"]}
        )
        image = f"{registry.host}/bench/loop:1"
        skopeo_push(info, image)
        if args.db == "postgres":
            from support.postgres import PostgresServer

            pg = PostgresServer()
            url = pg.create_database("history_bench")
        else:
            url = f"sqlite:///{work / 'jobs.db'}"
        fleet = Fleet(work / "fleet", url, allow_registries=(registry.host,))
        try:
            user, project = fleet.user, fleet.project
            fleet.agent("r1")
            user.set_alert_config(
                project,
                branch="main",
                measure=args.measure,
                model="percentage",
                params={"upper": args.upper, **({"window": args.window} if args.window else {})},
                repetitions=args.repetitions,
            )

            def submit(commit: str, loops: int) -> str:
                return user.submit(
                    image,
                    LOOP,
                    project=project,
                    env={"LOOPS": str(loops)},
                    iterations=args.iterations,
                    timeout=600,
                    history={"branch": "main", "commit": commit, "benchmark": "loop"},
                )["id"]

            t0 = time.monotonic()
            slow = int(args.loops * (1 + args.slowdown))
            for i in range(args.base):
                user.wait(submit(f"base{i}", args.loops), timeout=600)
            user.wait(submit("slow", slow), timeout=600)
            hog_job = submit("hogged", slow)
            hog = hog_while(fleet, hog_job)
            user.wait(hog_job, timeout=600)
            hog.join(timeout=60)

            def settled() -> bool:
                alerts = user.alerts(project)
                return all(a["state"] != "confirming" for a in alerts)

            deadline = time.monotonic() + 1800
            time.sleep(1)
            while not settled() and time.monotonic() < deadline:
                time.sleep(0.5)
            out = {
                "measure": args.measure,
                "slowdown": args.slowdown,
                "threshold_upper": args.upper,
                "window": args.window,
                "seconds": round(time.monotonic() - t0, 1),
                "alerts": [],
            }
            for a in reversed(user.alerts(project)):
                conf = a.get("confirmation") or {}
                cmp_ = conf.get("comparison") or {}
                out["alerts"].append(
                    {
                        "commit": a["head_revision"],
                        "state": a["state"],
                        "seen_change": a["detail"].get("change"),
                        "repetitions": conf.get("repetitions"),
                        "rerun_change": cmp_.get("change"),
                        "rerun_ci": cmp_.get("ci"),
                        "p_value": cmp_.get("p_value"),
                        "verdict": cmp_.get("verdict"),
                        "mdc": cmp_.get("mdc"),
                    }
                )
            series = user.series(project, measure=args.measure)
            rows = user.series_table(project, series[0]["id"])["rows"] if series else []
            out["series"] = [(r["revision"], round(r["value"], 6), r["noise"]) for r in rows]
            print(json.dumps(out, indent=2))
        finally:
            fleet.close()
    finally:
        registry.stop()
        if pg is not None:
            pg.stop()


if __name__ == "__main__":
    main()
