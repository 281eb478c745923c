"""A claimed job -> image pull -> iterations of the run pipeline -> a terminal outcome.

Synchronous (it runs on the agent's job thread); the agent talks to it through a cancel Event and
an on_running callback. Mapping from upstream's job (docs/agent.md):
  spec.cpu -> vcpus (that many free CPUs of the CPU partition, or of all CPUs, locked for the run
  alone; a job whose CPUs other runs hold waits for them up to its timeout, cancel stops the wait;
  more than this process may use is an error),
  spec.memory -> memory limit, spec.disk -> disk (the writable layer's size; the run's other
  limits are benchrun's defaults, docs/security.md), spec.network true -> refused (benchrun runs have no network),
  spec.counters (benchrun extension) -> counters (None: the default set),
  spec.sandbox "vm"/"firecracker" -> backend vm, "sandbox" -> sandbox, null -> the agent's default;
  spec.instructions (benchrun's, not upstream's) "count"/"cache"/"sections" -> --instructions;
  spec.init (benchrun's) true -> --init, spec.stop_timeout (seconds) -> --stop-timeout;
  config.entrypoint/cmd/env/file_paths as in docker; iterations run one after another, all within
  the job's timeout; a non-zero exit stops them unless allow_failure.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional
from urllib.parse import urlsplit

from benchrun import runner
from benchrun.options import INSTRUCTION_MODES, backends
from benchrun.errors import BenchrunError, ConfigError
from benchrun.jobs import protocol
from benchrun.jobs.protocol import ClaimedJob

from . import results as _results
from . import testbed as _testbed
from .config import DEFAULT_MAX_MESSAGE

log = logging.getLogger("benchrun.agent")

# Upstream's sandbox names that mean one of benchrun's backends ("firecracker" is a microVM).
SANDBOX_ALIASES = {"firecracker": "vm"}


class JobCanceled(Exception):
    """Raised inside the pull's progress callback to stop a canceled job's pull."""


@dataclass(frozen=True)
class Outcome:
    """How a job ended: the terminal event with its results and error, and where time went."""

    event: str  # "completed" | "failed" | "canceled"
    results: list[dict[str, Any]] = field(default_factory=list)
    error: Optional[str] = None
    timings: dict[str, float] = field(default_factory=dict)  # pull, prepare (seconds)
    # Some output was cut to the message limit while the iterations ran (reported as failed).
    truncated: bool = False
    # The attestation of the host the last iteration ran on (Result.facts["host_state"]).
    host_state: Optional[dict[str, Any]] = None
    # benchrun extensions: each iteration's metrics and times (one per entry of results), the
    # testbed facts (benchrun.agent.testbed).
    iterations: Optional[list[dict[str, Any]]] = None
    testbed: Optional[dict[str, Any]] = None

    def message(
        self, job: str, *, report_timings: bool = True, report_host_state: bool = True
    ) -> dict[str, Any]:
        timings = self.timings if report_timings and self.event != "canceled" else None
        host = self.host_state if report_host_state else None
        if host is not None and len(protocol.dumps(host).encode()) > protocol.MAX_HOST_STATE:
            # A server closes the channel on it: send the result without the attestation.
            log.warning("job %s: host_state over %d bytes, not sent", job, protocol.MAX_HOST_STATE)
            host = None
        iterations = self.iterations if report_host_state else None
        if iterations is not None and len(iterations) != len(self.results):
            iterations = None  # results were dropped to fit the message: nothing to pair with
        testbed = self.testbed if report_host_state else None
        if self.event == "completed":
            return protocol.completed(
                job,
                self.results,
                timings=timings,
                host_state=host,
                iterations=iterations,
                testbed=testbed,
            )
        if self.event == "failed":
            return protocol.failed(
                job,
                self.results,
                self.error or "failed",
                timings=timings,
                host_state=host,
                iterations=iterations,
                testbed=testbed,
            )
        return protocol.canceled(job)


@dataclass(frozen=True)
class Plan:
    """What make_spec needs, derived from the job (every check done, no work)."""

    reference: str
    backend: str
    pull_kwargs: dict[str, Any]
    instructions: str = ""  # spec.instructions (benchrun's): "", "count", "cache", "sections"
    init: bool = False  # spec.init (benchrun's): --init
    stop_timeout: Optional[float] = None  # spec.stop_timeout (benchrun's): --stop-timeout


def image_reference(job: ClaimedJob) -> str:
    """config.image pinned to config.digest, else `<registry authority>/<project>@<digest>`."""
    c = job.config
    if c.image:
        name, at, digest = c.image.partition("@")
        if at and digest != c.digest:
            raise ConfigError(
                f"config.image '{c.image}' names digest {digest}, " f"config.digest is {c.digest}"
            )
        slash = name.rfind("/")
        colon = name.rfind(":")
        if colon > slash:  # drop a tag: the digest pins the image
            name = name[:colon]
        return f"{name}@{c.digest}"
    return f"{urlsplit(c.registry).netloc}/{c.project}@{c.digest}"


def job_iterations(config: protocol.JobConfig) -> int:
    """The job's iteration count: as given, or for iter "auto" the fewest that detect a relative
    change ``config.detect`` at 95 % confidence and 80 % power given this host's noise figure
    (ConfigError saying to run `benchrun host noise` when the host has none)."""
    if config.iter != "auto":
        return int(config.iter)
    from benchrun import noise  # scipy: only for "auto" jobs

    assert config.detect is not None
    n = noise.repetitions_for_detect(config.detect)
    if n > 10_000:
        raise ConfigError(
            f"iter auto: detecting a {config.detect:.2%} change on this host needs {n} "
            "iterations, more than the 10000 a job may run: ask for a larger change"
        )
    return n


def plan(
    job: ClaimedJob,
    *,
    default_backend: str,
    insecure_registries: tuple[str, ...],
    available_cpus: Optional[int] = None,
) -> Plan:
    """Checks the job against this runner: ConfigError says why it cannot run here."""
    spec = job.spec
    if spec.network:
        raise ConfigError(
            "spec requests network access, but benchrun runs have no network "
            "(loopback only): use a spec with network false"
        )
    if spec.sandbox is None:
        backend = default_backend
    else:
        backend = SANDBOX_ALIASES.get(spec.sandbox, spec.sandbox)
        if backend not in backends():
            raise ConfigError(
                f"spec sandbox '{spec.sandbox}': unknown (this runner offers "
                f"{', '.join(backends())})"
            )
    cpus = available_cpus if available_cpus is not None else len(os.sched_getaffinity(0))
    if spec.cpu > cpus:
        raise ConfigError(f"spec asks for {spec.cpu} CPUs; this runner has {cpus}")
    instructions = spec.extra.get("instructions") or ""
    if instructions not in ("", *INSTRUCTION_MODES):
        raise ConfigError(
            f"spec instructions {instructions!r}: expected one of {', '.join(INSTRUCTION_MODES)}"
        )
    init = spec.extra.get("init", False)
    if not isinstance(init, bool):
        raise ConfigError(f"spec init {init!r}: expected true or false")
    stop_timeout = spec.extra.get("stop_timeout")
    if stop_timeout is not None and (
        isinstance(stop_timeout, bool) or not isinstance(stop_timeout, (int, float))
    ):
        raise ConfigError(f"spec stop_timeout {stop_timeout!r}: expected a number of seconds")
    registry = urlsplit(job.config.registry)
    insecure = list(insecure_registries)
    if registry.scheme == "http":
        insecure.append(registry.netloc)
    kwargs: dict[str, Any] = {"insecure_registries": insecure}
    if job.oci_token:
        kwargs["registry_token"] = job.oci_token
    return Plan(
        reference=image_reference(job),
        backend=backend,
        pull_kwargs=kwargs,
        instructions=instructions,
        init=init,
        stop_timeout=float(stop_timeout) if stop_timeout is not None else None,
    )


class JobExecutor:
    """Runs claimed jobs with the run pipeline; one job at a time per executor call."""

    def __init__(
        self,
        *,
        store: Optional[str] = None,
        default_backend: str = "sandbox",
        insecure_registries: tuple[str, ...] = (),
        pull: str = "always",
        max_message: int = DEFAULT_MAX_MESSAGE,
    ) -> None:
        self.store = store
        # "always" by default: every job asks the registry, with the job's credentials, before
        # it uses a cached image, so a digest learnt from another project opens nothing.
        self.pull = pull
        # The results of a job are cut to this as they come (they could not be sent whole), so
        # the agent holds at most about this much of a job's output, not every iteration's.
        self.max_message = max_message
        self.default_backend = default_backend
        self.insecure_registries = insecure_registries

    def run(
        self, job: ClaimedJob, cancel: threading.Event, on_running: Callable[[], None]
    ) -> Outcome:
        """Pull, then on_running(), then the iterations. Never raises for the job's own failures:
        they come back as a failed Outcome with the error text."""
        timings = {"pull": 0.0, "prepare": 0.0}
        try:
            p = plan(
                job,
                default_backend=self.default_backend,
                insecure_registries=self.insecure_registries,
            )
            iterations = job_iterations(job.config)
        except ConfigError as e:
            return Outcome("failed", error=str(e), timings=timings)
        if cancel.is_set():
            return Outcome("canceled", timings=timings)
        if iterations == 0:
            on_running()
            return Outcome("completed", timings=timings)

        def progress(event: str, digest: str, done: int, total: int) -> None:
            if cancel.is_set():
                raise JobCanceled("job canceled while pulling")

        c = job.config
        try:
            spec = runner.make_spec(
                p.reference,
                c.cmd,
                entrypoint=c.entrypoint,
                env=c.env,
                backend=p.backend,
                vcpus=job.spec.cpu,
                # Queue for CPUs other runs hold (concurrent jobs, a campaign) instead of failing.
                cpu_wait=float(job.timeout or 3600),
                memory=job.spec.memory,
                disk=job.spec.disk,
                outputs=c.file_paths,
                counters=list(job.spec.counters) if job.spec.counters is not None else None,
                store=self.store,
                pull=self.pull,
                timeout=job.timeout,
                instructions=p.instructions or None,
                init=p.init or None,
                stop_timeout=p.stop_timeout,
                progress=progress,
                **p.pull_kwargs,
            )
        except ConfigError as e:
            return Outcome("failed", error=str(e), timings=timings)
        log.info("job %s: pulling %s", job.uuid, p.reference)
        try:
            image, timings["pull"] = runner.load_image(spec)
        except (BenchrunError, JobCanceled) as e:
            if cancel.is_set():
                return Outcome("canceled", timings=timings)
            return Outcome("failed", error=f"pull '{p.reference}': {e}", timings=timings)
        log.info("job %s: image ready (pull %.3f s)", job.uuid, timings["pull"])
        if cancel.is_set():
            return Outcome("canceled", timings=timings)
        on_running()
        return self._iterations(job, spec, image, cancel, timings, iterations)

    def _iterations(
        self,
        job: ClaimedJob,
        spec: runner.RunSpec,
        image: Any,
        cancel: threading.Event,
        timings: dict[str, float],
        iterations: int,
    ) -> Outcome:
        cut = [False]
        measured: list[dict[str, Any]] = []
        outcome = self._run_iterations(job, spec, image, cancel, timings, cut, iterations, measured)
        if outcome.event == "canceled":
            return outcome
        host = outcome.host_state
        return dataclasses.replace(
            outcome,
            truncated=cut[0],
            # One entry per result; when results were dropped to fit the limit, none.
            iterations=measured if len(measured) == len(outcome.results) else None,
            testbed=_testbed.testbed_facts(spec.backend, host),
        )

    def _run_iterations(
        self,
        job: ClaimedJob,
        spec: runner.RunSpec,
        image: Any,
        cancel: threading.Event,
        timings: dict[str, float],
        cut: list[bool],
        iterations: int,
        measured: list[dict[str, Any]],
    ) -> Outcome:
        done: list[dict[str, Any]] = []
        host: Optional[dict[str, Any]] = None  # the last finished iteration's host state
        deadline = time.monotonic() + job.timeout  # the job's timeout covers every iteration
        for i in range(iterations):
            if cancel.is_set():
                return Outcome("canceled", timings=timings)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return Outcome(
                    "failed",
                    done,
                    f"Benchmark timed out after {job.timeout} s",
                    timings,
                    host_state=host,
                )
            try:
                res = runner.execute(
                    spec.with_options(timeout=remaining), should_stop=cancel.is_set, image=image
                )
            except BenchrunError as e:
                return Outcome("failed", done, f"iteration {i + 1}: {e}", timings, host_state=host)
            host = res.facts.get("host_state") or host
            timings["prepare"] += res.phases.get("prepare", 0.0) + res.phases.get("start", 0.0)
            if res.interrupted or cancel.is_set():
                return Outcome("canceled", timings=timings)
            done.append(_results.iteration_output(res, self.max_message))
            measured.append(_results.iteration_measurements(res))
            # Cut as we go (the final message is cut the same way): the agent never holds every
            # iteration's output until the end.
            fitted, was_cut = _results.fit({"results": done}, self.max_message)
            done = fitted["results"]
            cut[0] = cut[0] or was_cut or _results.was_cut(done[-1])
            for path, why in res.missing_outputs.items():
                log.warning(
                    "job %s iteration %d: output '%s' not collected: %s", job.uuid, i + 1, path, why
                )
            code = _results.exit_code(res)
            log.info(
                "job %s: iteration %d/%d exit %d in %.3f s",
                job.uuid,
                i + 1,
                iterations,
                code,
                res.wall_time,
            )
            if res.timed_out:
                return Outcome(
                    "failed",
                    done,
                    f"Benchmark timed out after {job.timeout} s",
                    timings,
                    host_state=host,
                )
            if code != 0 and not job.config.allow_failure:
                return Outcome(
                    "failed",
                    done,
                    f"Benchmark exited with non-zero exit code: {code}",
                    timings,
                    host_state=host,
                )
        return Outcome("completed", done, timings=timings, host_state=host)
