"""Running a campaign: what is left of its plan, locally (each image pulled once, then
runner.execute per planned run) or through a job server (one single-iteration job per planned run,
submitted a batch ahead), every run stored with its metrics and host facts as it ends.

Steps, in order: validate every variant (make_spec, no work) -> open the store, record the
campaign and its plan (or check the recorded plan) -> skip the entries already done -> run the
rest in plan order -> CampaignResult."""

from __future__ import annotations

import math
import os
import statistics
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional, Union

from benchrun import metrics as _metrics
from benchrun import runner as _runner
from benchrun.campaign import host as _host
from benchrun.campaign.plan import PlannedRun, make_plan, plan_from_json
from benchrun.campaign.spec import Campaign, Variant
from benchrun.campaign.store import ResultsStore, RunRecord
from benchrun.errors import BenchrunError, ConfigError

# A job's timeout when the variant gives none (the job protocol needs one).
REMOTE_DEFAULT_TIMEOUT = 3600
OnRun = Callable[[PlannedRun, RunRecord], None]


@dataclass(frozen=True)
class CampaignResult:
    """What Campaign.run() did: where the results are and how many runs of the plan ended how."""

    store: str
    campaign_id: str
    planned: int  # the plan's size (warm-up runs included)
    skipped: int  # already done in the store before this call
    done: int  # done after this call (skipped included)
    failed: int  # failed after this call
    elapsed: float  # seconds this call took
    pull_time: float = 0.0  # seconds of it spent pulling images (local runs; 0 when cached)

    @property
    def complete(self) -> bool:
        return self.done == self.planned


def run_campaign(
    campaign: Campaign,
    *,
    client: Any = None,
    project: Optional[str] = None,
    progress: bool = True,
    store: Union[str, "os.PathLike[str]", None] = None,
    image_store: Union[str, "os.PathLike[str]", None] = None,
    on_run: Optional[OnRun] = None,
    batch: int = 8,
) -> CampaignResult:
    """Runs the plan entries of ``campaign`` not yet done in ``store`` (default campaign.store).

    Local (no ``client``): images come from ``image_store`` (benchrun's default store if None),
    pulled once each. With ``client`` (a benchrun.Client) and ``project``: one job per planned
    run, ``batch`` jobs submitted ahead. ``on_run(planned, record)`` is called after each run is
    stored (an exception from it stops the campaign; what was stored stays). Failed runs are
    stored with status "failed" and run again by the next call."""
    t0 = time.monotonic()
    if client is not None and not project:
        raise ConfigError("campaign through a job server: a project is required")
    if batch < 1:
        raise ConfigError(f"batch {batch}: must be at least 1")
    if client is not None:
        _check_remote(campaign)
    specs = _local_specs(campaign, image_store) if client is None else {}
    path = os.fspath(store) if store is not None else campaign.store
    with ResultsStore(path) as db:
        plan, chosen = _plan(db, campaign, specs if client is None else None)
        cid = _record_campaign(db, campaign, plan, chosen)
        done = db.done_indices(cid)
        todo = [p for p in plan if p.index not in done]
        with _progress_bar(progress, campaign.name, len(plan), len(done)) as advance:

            def stored(p: PlannedRun, rec: RunRecord) -> None:
                advance(rec)
                if on_run is not None:
                    on_run(p, rec)

            pull_time = 0.0
            if todo and client is None:
                pull_time = _run_local(db, campaign, cid, todo, specs, stored)
            elif todo:
                _run_remote(db, campaign, cid, todo, client, project or "", batch, stored)
        counts = db.counts(cid)
    return CampaignResult(
        store=path,
        campaign_id=cid,
        planned=len(plan),
        skipped=len(done),
        done=counts.get("done", 0),
        failed=counts.get("failed", 0),
        elapsed=time.monotonic() - t0,
        pull_time=pull_time,
    )


def _local_specs(
    campaign: Campaign, image_store: Union[str, "os.PathLike[str]", None]
) -> dict[str, _runner.RunSpec]:
    """Every variant's RunSpec: all options checked before the first run."""
    out = {}
    for v in campaign.variants:
        try:
            out[v.name] = _runner.make_spec(
                v.image,
                v.command,
                entrypoint=v.entrypoint,
                env=dict(v.env),
                backend=v.backend,
                vcpus=v.vcpus,
                memory=v.memory,
                timeout=v.timeout,
                outputs=v.outputs,
                store=image_store,
                **v.options,
            )
        except ConfigError as e:
            raise ConfigError(f"variant '{v.name}': {e}") from None
    return out


def _plan(
    db: ResultsStore, campaign: Campaign, specs: Optional[dict[str, _runner.RunSpec]] = None
) -> tuple[list[PlannedRun], dict[str, Any]]:
    """The plan, and for repetitions="auto" what was chosen ({"repetitions_chosen": n, "noise":
    the figure it came from, "pilot": {variant: wall-time CV}}): the count recorded in the store
    when the campaign was started before (a resumed campaign keeps its plan), else chosen now
    from the host's noise figure and, locally (``specs``), a pilot of each variant."""
    if campaign.repetitions != "auto":
        return make_plan(campaign), {}
    found = db.campaign(campaign.id)
    spec = (found or {}).get("spec") or {}
    recorded = spec.get("repetitions_chosen")
    if isinstance(recorded, int) and recorded >= 1:
        keys = ("repetitions_chosen", "noise", "pilot")
        chosen = {k: spec[k] for k in keys if k in spec}
        return make_plan(campaign, recorded), chosen
    from benchrun import noise as _noise

    doc = _noise.load()  # first: no figure, no pilot runs
    campaign.auto_repetitions(doc)  # and an impossible count fails before them too
    pilot = _pilot_cvs(campaign, specs) if specs and campaign.pilot else {}
    n = campaign.auto_repetitions(doc, max(pilot.values()) if pilot else None)
    figure = {k: doc[k] for k in ("score", "measured_at", "host", "cpus")}
    chosen = {"repetitions_chosen": n, "noise": figure, "pilot": pilot or None}
    return make_plan(campaign, n), chosen


def _pilot_cvs(campaign: Campaign, specs: dict[str, _runner.RunSpec]) -> dict[str, float]:
    """Each variant run campaign.pilot times (not stored): {variant: CV of its wall times}."""
    out = {}
    for v in campaign.variants:
        spec = specs[v.name]
        image, _ = _runner.load_image(spec)
        times = []
        for _ in range(campaign.pilot):
            res = _runner.execute(spec, image=image)
            if res.interrupted:
                raise KeyboardInterrupt
            if not res.ok:
                raise ConfigError(f"variant '{v.name}': pilot run failed ({_failure(res)})")
            times.append(res.wall_time)
        out[v.name] = statistics.stdev(times) / statistics.fmean(times)
    return out


def _record_campaign(
    db: ResultsStore,
    campaign: Campaign,
    plan: list[PlannedRun],
    chosen: Optional[dict[str, Any]] = None,
) -> str:
    """The campaign's id; records it (spec, plan, host) on first use, else checks the plan."""
    cid = campaign.id
    spec = {
        **campaign.to_dict(),
        "spec_hash": campaign.spec_hash(),
        "plan": [p.to_json() for p in plan],
        **(chosen or {}),
    }
    found = db.campaign(cid)
    if found is None:
        facts = _host.machine_facts()
        db.add_campaign(cid, campaign.name, campaign.seed, spec, facts["benchrun_version"], facts)
    elif plan_from_json(found["spec"].get("plan", [])) != plan:
        raise ConfigError(
            f"results store: campaign '{cid}' was recorded with another plan "
            "(a different benchrun version?); use another store or campaign name"
        )
    return cid


def _record(campaign_id: str, p: PlannedRun, v: Variant, **kw: Any) -> RunRecord:
    return RunRecord(
        id=f"{campaign_id}#{p.index}",
        campaign=campaign_id,
        variant=v.name,
        variant_spec=v.to_dict(),
        repetition=p.repetition,
        warmup=p.warmup,
        plan_index=p.index,
        **kw,
    )


def _metrics_of(result: _runner.Result, sources: tuple[str, ...]) -> tuple[list[Any], str]:
    """(metrics, error text or ""): a metrics source that does not parse fails the run."""
    try:
        return _metrics.extract(result, sources), ""
    except ConfigError as e:
        return [], str(e)


# --- local ------------------------------------------------------------------------------------


def _run_local(
    db: ResultsStore,
    campaign: Campaign,
    cid: str,
    todo: list[PlannedRun],
    specs: dict[str, _runner.RunSpec],
    stored: OnRun,
) -> float:
    """Runs ``todo``; returns the seconds spent pulling."""
    pull_time = 0.0
    # Each image pulled and loaded once: every run of it measures the same image.
    loaded: dict[tuple[str, str], Any] = {}
    for name in dict.fromkeys(p.variant for p in todo):
        spec = specs[name]
        key = (spec.image, spec.store)
        if key not in loaded:
            loaded[key], pulled = _runner.load_image(spec)
            pull_time += pulled
    for p in todo:
        v = campaign.variant(p.variant)
        spec = specs[p.variant]
        image = loaded[(spec.image, spec.store)]
        started = time.time()
        try:
            res = _runner.execute(spec, image=image)
        except BenchrunError as e:
            rec = _record(
                cid,
                p,
                v,
                status="failed",
                exit_code=None,
                wall_time=None,
                started=started,
                ended=time.time(),
                backend=v.backend,
                image_digest=image.digest,
                host=_host.run_facts(v.backend, image.digest),
                result=None,
                error=f"{type(e).__name__}: {e}",
            )
            db.add_run(rec)
            stored(p, rec)
            continue
        if res.interrupted:
            raise KeyboardInterrupt
        found, error = _metrics_of(res, v.metrics)
        if not error and not res.ok:
            error = _failure(res)
        rec = _record(
            cid,
            p,
            v,
            status="failed" if error else "done",
            exit_code=res.exit_code,
            wall_time=res.wall_time,
            started=res.start_time or started,
            ended=res.end_time or time.time(),
            backend=res.backend,
            image_digest=res.image_digest,
            host=_host.run_facts(res.backend, res.image_digest, res.facts.get("host_state")),
            result=res.to_json(),
            error=error or None,
        )
        db.add_run(rec, found)
        stored(p, rec)
    return pull_time


def _failure(res: _runner.Result) -> str:
    if res.timed_out:
        return "timed out"
    if res.oom_killed:
        return "killed: out of memory"
    if res.signal:
        return f"killed by signal {res.signal}"
    return f"exit code {res.exit_code}"


# --- through a job server ---------------------------------------------------------------------


def _check_remote(campaign: Campaign) -> None:
    """ConfigError before any job is submitted for a variant a job server cannot run as given."""
    for v in campaign.variants:
        if v.options:
            raise ConfigError(
                f"variant '{v.name}': option(s) {', '.join(sorted(v.options))} cannot be run "
                "through a job server (Bencher's job spec has no field for them); run the "
                "campaign locally"
            )


def _submit(client: Any, project: str, v: Variant) -> str:
    timeout = math.ceil(v.timeout) if v.timeout is not None else REMOTE_DEFAULT_TIMEOUT
    job = client.submit(
        v.image,
        list(v.command) if v.command is not None else None,
        project=project,
        entrypoint=list(v.entrypoint) if v.entrypoint is not None else None,
        env=dict(v.env) or None,
        timeout=timeout,
        outputs=list(v.outputs),
        iterations=1,
        allow_failure=True,
        cpus=v.vcpus or 1,
        memory=v.memory,
        backend=v.backend,
    )
    return str(job["id"])


def remote_result(job: dict[str, Any], it: dict[str, Any], backend: str) -> _runner.Result:
    """A Result from a job and its one iteration, for metrics.extract. The job protocol carries
    exit code, stdout, stderr and collected files (as text); wall_time is the job's running span
    (ended - started) less the agent's reported prepare time, so it includes the result upload
    (milliseconds on a LAN); CPU time and peak memory are not reported (absent from metrics)."""
    timings = job.get("timings") or {}
    span = None
    if isinstance(job.get("started"), (int, float)) and isinstance(job.get("ended"), (int, float)):
        span = max(
            0.0, float(job["ended"]) - float(job["started"]) - float(timings.get("prepare", 0.0))
        )
    return _runner.Result(
        exit_code=int(it.get("exit_code", -1)),
        signal=0,
        stdout=str(it.get("stdout", "")).encode(),
        stderr=str(it.get("stderr", "")).encode(),
        stdout_truncated=False,
        stderr_truncated=False,
        outputs={p: str(t).encode() for p, t in (it.get("output") or {}).items()},
        missing_outputs={},
        timed_out=False,
        oom_killed=False,
        metrics={"wall_time": _runner.Metric(span, "s")} if span is not None else {},
        image_digest=str((job.get("config") or {}).get("digest", "")),
        backend=backend,
        start_time=float(job.get("started") or 0.0),
        end_time=float(job.get("ended") or 0.0),
        phases={k: float(x) for k, x in timings.items()},
    )


def _run_remote(
    db: ResultsStore,
    campaign: Campaign,
    cid: str,
    todo: list[PlannedRun],
    client: Any,
    project: str,
    batch: int,
    stored: OnRun,
) -> None:
    # Jobs are submitted in plan order, `batch` ahead of the one awaited: a runner picks them up
    # in order, and the server never holds more than `batch` of this campaign's jobs.
    pending: list[tuple[PlannedRun, str]] = []
    queue = list(todo)
    try:
        while queue or pending:
            while queue and len(pending) < batch:
                p = queue.pop(0)
                pending.append((p, _submit(client, project, campaign.variant(p.variant))))
            p, job_id = pending.pop(0)
            _store_job(db, campaign, cid, p, client, job_id, stored)
    finally:
        for _, job_id in pending:  # interrupted: nothing will store these; do not let them run
            try:
                client.cancel(job_id)
            except BenchrunError:
                pass


def _store_job(
    db: ResultsStore,
    campaign: Campaign,
    cid: str,
    p: PlannedRun,
    client: Any,
    job_id: str,
    stored: OnRun,
) -> None:
    v = campaign.variant(p.variant)
    job = client.wait(job_id)
    results = client.results(job_id)
    facts = {
        "remote": True,
        "server": getattr(client, "url", ""),
        "job": job_id,
        "runner": job.get("runner"),
        "backend": v.backend,
        "image_digest": (job.get("config") or {}).get("digest", ""),
        "benchrun_version": _host.machine_facts()["benchrun_version"],
    }
    if isinstance(job.get("host_state"), dict):
        # The runner host's attestation (the job's host_state), stored as a local run's is.
        facts["state"] = job["host_state"]
    doc = {
        "job": {
            k: job.get(k)
            for k in (
                "id",
                "status",
                "status_name",
                "runner",
                "created",
                "started",
                "ended",
                "timings",
                "error",
                "reason",
            )
        },
        "results": results,
    }
    base = dict(
        started=float(job.get("started") or job.get("created") or time.time()),
        ended=float(job.get("ended") or time.time()),
        backend=v.backend,
        image_digest=facts["image_digest"],
        host=facts,
        result=doc,
    )
    if job.get("status_name") != "completed" or not results:
        error = job.get("error") or job.get("reason") or f"job {job.get('status_name')}"
        rec = _record(
            cid,
            p,
            v,
            status="failed",
            exit_code=None,
            wall_time=None,
            error=f"job {job_id}: {error}",
            **base,
        )
        db.add_run(rec)
        stored(p, rec)
        return
    res = remote_result(job, results[0], v.backend)
    found, error = _metrics_of(res, v.metrics)  # of "result": wall_time only (remote_result)
    if not error and res.exit_code != 0:
        error = f"exit code {res.exit_code}"
    rec = _record(
        cid,
        p,
        v,
        status="failed" if error else "done",
        exit_code=res.exit_code,
        wall_time=res.metrics["wall_time"].value if "wall_time" in res.metrics else None,
        error=error or None,
        **base,
    )
    db.add_run(rec, found)
    stored(p, rec)


# --- progress ---------------------------------------------------------------------------------


@contextmanager
def _progress_bar(
    enabled: bool, name: str, total: int, already: int
) -> Iterator[Callable[[RunRecord], None]]:
    """A rich progress bar with ETA on stderr when enabled and stderr is a terminal."""
    if not enabled or not sys.stderr.isatty():
        yield lambda rec: None
        return
    try:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
    except ImportError:  # rich is optional
        yield lambda rec: None
        return
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[last]}"),
        console=Console(stderr=True),
        transient=False,
    )
    task = bar.add_task(f"campaign {name}", total=total, completed=already, last="")

    def advance(rec: RunRecord) -> None:
        what = f"{rec.variant} {'warm-up' if rec.warmup else 'rep'} {rec.repetition}"
        bar.update(task, advance=1, last=f"{what}: {rec.status}")

    with bar:
        yield advance


__all__ = ["CampaignResult", "REMOTE_DEFAULT_TIMEOUT", "remote_result", "run_campaign"]
