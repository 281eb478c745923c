"""Campaign overhead (issue 6): a campaign of 3 variants x 10 repetitions (+1 warm-up each) on the
sandbox, from a fresh image store (so it pulls once) into a fresh results store.

    ratio = campaign wall time / (sum of the workloads' own wall_time over every stored run
                                  + the one pull)

Target: ratio <= 1.2. Everything else the campaign does — sandbox set-up and tear-down per run,
metrics extraction, host facts, one SQLite commit per run — is in the numerator only.
Also printed: the sandbox's own per-run cost (set-up and tear-down around the workload, timed
around each execute()) and machinery_ratio = wall time / (sum of execute() times + the pull), what
the campaign code itself adds. Workloads: `sleep 0.2`, `sleep 0.3`, and a busybox shell loop (~0.2 s of CPU).

Run as root from the project venv:  python bench/campaign_bench.py [--repetitions N]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "py"))

from benchrun.campaign import Campaign, Variant  # noqa: E402
from support.ocilayout import busybox_layer, write_layout  # noqa: E402

CPU_LOOP = "i=0; while [ $i -lt 60000 ]; do i=$((i+1)); done"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repetitions", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--target", type=float, default=1.2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="campaign-bench-") as tmp:
        work = Path(tmp)
        info = write_layout(work / "layout", [busybox_layer()], config={"Env": ["PATH=/bin"]})
        c = Campaign("bench", [
            Variant("sleep-0.2", info.ref, ["sleep", "0.2"], timeout=60, metrics=("result",)),
            Variant("sleep-0.3", info.ref, ["sleep", "0.3"], timeout=60, metrics=("result",)),
            Variant("cpu-loop", info.ref, ["sh", "-c", CPU_LOOP], timeout=60,
                    metrics=("result",)),
        ], repetitions=args.repetitions, warmup=args.warmup, store=str(work / "results.db"))
        # Also time each benchrun execute() call (sandbox set-up + workload + tear-down), to
        # separate the sandbox's per-run cost from the campaign machinery's own.
        from benchrun.campaign import runner as campaign_runner

        real_execute = campaign_runner._runner.execute
        execute_s: list[float] = []

        def timed_execute(*a, **kw):
            t = time.perf_counter()
            try:
                return real_execute(*a, **kw)
            finally:
                execute_s.append(time.perf_counter() - t)

        campaign_runner._runner.execute = timed_execute  # type: ignore[assignment]
        t0 = time.perf_counter()
        res = c.run(progress=False, image_store=work / "images")
        total = time.perf_counter() - t0
        db = sqlite3.connect(res.store)
        n, workload = db.execute("SELECT COUNT(*), SUM(wall_time) FROM runs "
                                 "WHERE status = 'done'").fetchone()
        per_variant = dict(db.execute("SELECT variant, AVG(wall_time) FROM runs "
                                      "GROUP BY variant").fetchall())
        db.close()
    baseline = workload + res.pull_time
    ratio = total / baseline
    print(json.dumps({
        "runs": n, "planned": res.planned, "failed": res.failed,
        "campaign_wall_s": round(total, 3), "workload_wall_sum_s": round(workload, 3),
        "pull_s": round(res.pull_time, 3),
        "overhead_per_run_ms": round((total - baseline) / max(n, 1) * 1000, 1),
        "mean_wall_per_variant_s": {k: round(v, 4) for k, v in per_variant.items()},
        "ratio": round(ratio, 3), "target": args.target, "within_target": ratio <= args.target,
        # The sandbox's own per-run cost, and the ratio against whole benchrun runs: what the
        # campaign machinery (plan, store, metrics, host facts, progress) adds on top.
        "sandbox_cost_per_run_ms": round((sum(execute_s) - workload) / max(n, 1) * 1000, 1),
        "machinery_ratio": round(total / (sum(execute_s) + res.pull_time), 3),
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
