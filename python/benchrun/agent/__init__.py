"""`benchrun agent`: a runner for Bencher's runner protocol (docs/agent.md). It keeps one
WebSocket to a job server (benchrun's or Bencher's), runs the jobs it is given with the run
pipeline and reports their results."""

from __future__ import annotations

import asyncio
import logging
import sys

from benchrun.errors import BenchrunError

from .agent import EXIT_FATAL, EXIT_OK, Agent, run_agent_async, runner_info
from .config import (
    DEFAULT_MAX_MESSAGE,
    DEFAULT_POLL_TIMEOUT,
    KEY_ENV,
    AgentConfig,
    load_key,
    make_config,
)
from .executor import JobExecutor, Outcome

LOG_FORMAT = "%(asctime)s.%(msecs)03d %(levelname)s %(name)s: %(message)s"
LOG_DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"


def configure_logging(verbose: bool = False) -> None:
    """Timestamped lines on stderr for the benchrun.agent logger (left alone if the application
    already configured logging)."""
    logger = logging.getLogger("benchrun.agent")
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    if logger.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT, LOG_DATE_FORMAT))
    logger.addHandler(handler)


def run_agent(config: AgentConfig, *, handle_signals: bool = True) -> int:
    """Runs the agent until it is told to stop (SIGTERM/SIGINT) or, with config.once, after one
    job; returns the process exit code: 0, or 1 if the server refused the runner key or (with
    --once) a result could not be delivered. Blocks; owns its event loop.

    With config.tune the host is tuned for the benchmark CPUs first and reset when the agent
    exits (also on an error); a journal left by an agent that crashed is reset at start either
    way (docs/agent.md)."""
    from benchrun.host.tune import reset_stale_agent_journal, tuned

    log = logging.getLogger("benchrun.agent")
    try:
        stale = reset_stale_agent_journal()
    except BenchrunError as e:  # without --tune the agent can run anyway
        if config.tune:
            raise
        log.warning("could not reset the host a crashed agent left tuned: %s", e)
    else:
        if stale is not None:
            log.info("reset the host a crashed agent left tuned (%d value(s))", len(stale.changed))
    if not config.tune:
        return asyncio.run(run_agent_async(config, handle_signals=handle_signals))
    with tuned(cpus=config.tune_cpus, log=log.info):
        return asyncio.run(run_agent_async(config, handle_signals=handle_signals))


__all__ = [
    "DEFAULT_MAX_MESSAGE",
    "DEFAULT_POLL_TIMEOUT",
    "EXIT_FATAL",
    "EXIT_OK",
    "KEY_ENV",
    "Agent",
    "AgentConfig",
    "JobExecutor",
    "Outcome",
    "configure_logging",
    "load_key",
    "make_config",
    "run_agent",
    "run_agent_async",
    "runner_info",
]
