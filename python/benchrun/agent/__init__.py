"""`benchrun agent`: a runner for Bencher's runner protocol (docs/agent.md). It keeps one
WebSocket to a job server (benchrun's or Bencher's), runs the jobs it is given with the run
pipeline and reports their results."""

from __future__ import annotations

import asyncio
import logging
import sys

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
    --once) a result could not be delivered. Blocks; owns its event loop."""
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
