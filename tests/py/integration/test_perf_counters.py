"""Performance counters (--counters, docs/counters.md) for real, both backends: a workload that
takes N page faults and N pipe round trips gets counts within tolerance of N; hardware counters
are absent (one notice) where there is no PMU; the option's names are checked; the counters reach
Result.metrics, --json and a campaign's store like any metric.

The hardware path with a PMU, multiplexing and refusals are covered by injection in
tests/cpp/perf/counters_test.cpp."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

import benchrun
from benchrun.errors import ConfigError
from support.jobs import Fleet
from support.ocilayout import Layer, busybox_layer, skopeo_push, write_layout

pytestmark = pytest.mark.root

# faults N: N fresh anonymous pages, each touched once (no huge pages: one fault per 4 KiB page).
# pingpong N: N round trips of one byte between two processes over two pipes; each blocking read
# is a voluntary context switch, so about 2N in all.
PROGRAMS = {
    "faults": r"""
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
int main(int argc, char **argv) {
  long n = atol(argv[1]), page = sysconf(_SC_PAGESIZE);
  if (n == 0) return 0;
  char *p = mmap(0, n * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return 1;
  madvise(p, n * page, MADV_NOHUGEPAGE);
  for (long i = 0; i < n; i++) p[i * page] = 1;
  return 0;
}
""",
    # bench/pingpong.c, the counters benchmark's own worst case.
    "pingpong": (Path(__file__).resolve().parents[3] / "bench" / "pingpong.c").read_text(),
}

SOFTWARE = (
    "task_clock",
    "context_switches",
    "cpu_migrations",
    "page_faults",
    "minor_faults",
    "major_faults",
)
HARDWARE = (
    "instructions.user",
    "instructions.kernel",
    "cycles.user",
    "cycles.kernel",
    "branches.user",
    "branches.kernel",
    "branch_misses.user",
    "branch_misses.kernel",
)
N_FAULTS = 20000
N_TRIPS = 2000


def has_pmu() -> bool:
    return os.path.exists("/sys/bus/event_source/devices/cpu")


@pytest.fixture(scope="session")
def counter_image(tmp_path_factory: pytest.TempPathFactory) -> str:
    work = tmp_path_factory.mktemp("counters")
    app = Layer("gzip").dir("bench")
    for prog, source in PROGRAMS.items():
        (work / f"{prog}.c").write_text(source)
        subprocess.run(
            ["gcc", "-static", "-O1", "-o", str(work / prog), str(work / f"{prog}.c")],
            check=True,
            capture_output=True,
        )
        app.file(f"bench/{prog}", (work / prog).read_bytes(), mode=0o755)
    info = write_layout(
        work / "image",
        [busybox_layer(), app],
        config={"Env": ["PATH=/bench:/bin"], "WorkingDir": "/"},
    )
    return info.ref


def check_hardware(r: benchrun.Result) -> None:
    if has_pmu() and r.backend == "sandbox":
        for name in HARDWARE:
            assert r.metrics[name].unit == "count" and r.metrics[name].value > 0, name
            assert 0 < r.metrics[f"{name}.running"].value <= 1
    else:  # absent, never zero, and said once
        assert not set(HARDWARE) & set(r.metrics), r.metrics
        said = [n for n in r.notices if n.startswith("counters absent: instructions.user")]
        assert len(said) == 1, r.notices


def test_sandbox_counts_page_faults_and_context_switches(counter_image: str, store: Path):
    def run(cmd: str) -> benchrun.Result:
        r = benchrun.run(counter_image, ["sh", "-c", cmd], store=store, timeout=120)
        assert r.ok, r.stderr
        return r

    base = run("faults 0 && pingpong 0")
    r = run(f"faults {N_FAULTS} && pingpong {N_TRIPS}")
    for name in SOFTWARE:
        assert name in r.metrics, (name, r.notices)
    assert r.metrics["task_clock"].unit == "ns" and r.metrics["page_faults"].unit == "count"
    faults = r.metrics["page_faults"].value - base.metrics["page_faults"].value
    assert N_FAULTS * 0.99 <= faults <= N_FAULTS * 1.05 + 200, faults
    assert r.metrics["page_faults"].value == (
        r.metrics["minor_faults"].value + r.metrics["major_faults"].value
    )
    switches = r.metrics["context_switches"].value - base.metrics["context_switches"].value
    assert 1.5 * N_TRIPS <= switches <= 3 * N_TRIPS + 200, switches
    # task-clock counts the workload's CPU time (both processes): close to the cgroup's figure.
    cpu_ns = (r.cpu_user + r.cpu_system) * 1e9
    assert 0.5 * cpu_ns - 20e6 <= r.metrics["task_clock"].value <= 1.5 * cpu_ns + 20e6
    check_hardware(r)
    # --json carries them (name, value, unit) and reads back exactly.
    assert benchrun.Result.from_json(r.to_json()) == r


def test_counters_option(counter_image: str, store: Path):
    r = benchrun.run(counter_image, ["faults", "10"], store=store, counters="none", timeout=60)
    assert r.ok and not set(SOFTWARE + HARDWARE) & set(r.metrics)
    assert not any(n.startswith("counters") for n in r.notices)
    r = benchrun.run(
        counter_image, ["faults", "10"], store=store, counters=["page-faults"], timeout=60
    )
    assert r.ok and "page_faults" in r.metrics and "task_clock" not in r.metrics
    with pytest.raises(
        ConfigError,
        match=r"unknown counter 'cycels' \(known: task-clock, .*" r"instructions\[:u\|:k\]",
    ):
        benchrun.run(counter_image, ["true"], store=store, counters="task-clock,cycels")


@pytest.mark.slow
def test_vm_guest_counts_the_workload(counter_image: str, store: Path):
    # One VM run for every check: the guest's init opens the same counters around the workload.
    r = benchrun.run(
        counter_image,
        ["sh", "-c", f"faults {N_FAULTS} && pingpong {N_TRIPS}"],
        backend="vm",
        store=store,
        timeout=300,
    )
    assert r.ok, (r.stderr, r.notices)
    for name in SOFTWARE:
        assert name in r.metrics, (name, r.notices)
    assert N_FAULTS <= r.metrics["page_faults"].value <= N_FAULTS * 1.05 + 3000
    assert 1.5 * N_TRIPS <= r.metrics["context_switches"].value <= 3 * N_TRIPS + 1000
    if r.vm["accel"] == "tcg":  # no virtual PMU: one notice, hardware metrics absent
        assert not set(HARDWARE) & set(r.metrics)
        said = [n for n in r.notices if n.startswith("counters absent: instructions.user")]
        assert len(said) == 1 and "TCG" in said[0], r.notices


def test_counters_flow_through_a_campaign_into_statistics(
    counter_image: str, store: Path, tmp_path: Path
):
    from benchrun import results, stats
    from benchrun.campaign import Campaign, Variant

    c = Campaign(
        "faults",
        [
            Variant(
                "few",
                counter_image,
                ["faults", "100"],
                timeout=60,
                options={"counters": "page-faults,task-clock"},
            ),
            Variant(
                "many",
                counter_image,
                ["faults", "3000"],
                timeout=60,
                options={"counters": ["page-faults", "task-clock"]},
            ),
        ],
        repetitions=2,
        warmup=0,
        seed=0,
        store=str(tmp_path / "r.db"),
    )
    res = c.run(progress=False, image_store=store)
    assert res.complete and res.failed == 0
    df = results.load(res.store, campaign="faults")
    pf = df[df["measure"] == "page_faults"]
    assert len(pf) == 4 and set(pf["unit"]) == {"count"}
    assert "context_switches" not in set(df["measure"])  # only the counters asked for
    summary = stats.summarize_frame(pf, by=("variant", "measure"))
    med = dict(zip(summary["variant"], summary["median"]))
    # 2,900 more pages, give or take the start-up faults that vary by a few dozen per run.
    assert 2900 - 100 <= med["many"] - med["few"] <= 2900 * 1.05 + 100, med
    # ... and plots like any metric.
    from benchrun import plots

    assert plots.to_png(plots.distribution(df, measure="page_faults", kind="strip"))[:4] == (
        b"\x89PNG"
    )


def test_job_spec_counters_reach_the_agents_run(tmp_path: Path, registry):
    # A job's spec.counters goes through the server to the agent's run option: a bad name fails
    # the job with the core's message, a good one completes it.
    info = write_layout(tmp_path / "layout", [busybox_layer()], config={"Env": ["PATH=/bin"]})
    ref = f"{registry.host}/bench/counters:1"
    skopeo_push(info, ref)
    fleet = Fleet(tmp_path, f"sqlite:///{tmp_path / 'jobs.db'}", allow_registries=(registry.host,))
    try:
        fleet.agent("r1")
        bad = fleet.user.submit(
            ref, ["true"], project=fleet.project, timeout=60, counters=["cycels"]
        )
        assert bad["spec"]["counters"] == ["cycels"]
        good = fleet.user.submit(
            ref, ["true"], project=fleet.project, timeout=60, counters="page-faults,task-clock"
        )
        done = fleet.user.wait(bad["id"], timeout=120)
        assert done["status"] == 5 and "unknown counter 'cycels'" in json.dumps(done), done
        done = fleet.user.wait(good["id"], timeout=120)
        assert done["status"] == 3, done
        # ... and the counts come back in the job's per-iteration metrics.
        [it] = fleet.user.results(good["id"])
        assert it["metrics"]["page_faults"]["unit"] == "count", it
        assert it["metrics"]["page_faults"]["value"] > 0 and "task_clock" in it["metrics"]
        assert "context_switches" not in it["metrics"]  # only the counters asked for
    finally:
        fleet.close()
