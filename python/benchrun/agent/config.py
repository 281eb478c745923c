"""The agent's validated configuration (a frozen dataclass, STYLE rule 7) and its key loader."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Mapping, Optional
from urllib.parse import quote, urlsplit, urlunsplit

from benchrun.options import backends
from benchrun.errors import ConfigError
from benchrun.jobs import protocol

DEFAULT_MAX_MESSAGE = 64 << 20  # bytes; upstream's 4 MiB is too small for 25 MiB of outputs
DEFAULT_POLL_TIMEOUT = 55  # seconds, upstream `runner up --poll-timeout` default
KEY_ENV = "BENCHRUN_RUNNER_KEY"

_RUNNER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class AgentConfig:
    """Everything `benchrun agent` needs. Build it with make_config() (it validates)."""

    server: str  # http(s)://host[:port][/prefix]
    runner: str  # runner UUID or slug
    key: str = field(repr=False)  # the runner key: kept out of logs and tracebacks
    store: Optional[str] = None  # image store (None: benchrun's default store)
    poll_timeout: int = DEFAULT_POLL_TIMEOUT
    max_message: int = DEFAULT_MAX_MESSAGE
    once: bool = False
    once_wait: Optional[float] = None  # --once: give up after this many seconds without a job
    backend: str = "sandbox"  # for specs whose "sandbox" is null
    insecure_registries: tuple[str, ...] = ()
    drain_timeout: float = 0.0  # SIGTERM mid-job: let it run this long, then cancel it
    # --tune: tune the host (benchrun.host.tune) for these benchmark CPUs (None: all but the
    # lowest-numbered) while the agent runs, and reset it when it exits.
    tune: bool = False
    tune_cpus: Optional[tuple[int, ...]] = None
    # Protocol timing; the defaults are upstream's (1 s heartbeat, 5 s ack, 5 resends).
    heartbeat_interval: float = 1.0
    ack_timeout: float = 5.0
    max_resends: int = 5
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    cancel_grace: float = 5.0  # how long a canceled pull may take to stop before it is abandoned
    report_timings: bool = True  # add the optional "timings" key to completed/failed
    report_host_state: bool = True  # add the optional "host_state" key to completed/failed
    runner_info: bool = True  # send runner {os, arch, version} in ready

    @property
    def channel_url(self) -> str:
        return channel_url(self.server, self.runner)


def channel_url(server: str, runner: str) -> str:
    """`{server}/v0/runners/{runner}/channel` with http -> ws and https -> wss."""
    parts = urlsplit(server)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None or not parts.netloc:
        raise ConfigError(f"server '{server}': expected an http:// or https:// URL")
    path = parts.path.rstrip("/") + f"/v0/runners/{quote(runner, safe='')}/channel"
    return urlunsplit((scheme, parts.netloc, path, "", ""))


def load_key(key_file: Optional[str], environ: Optional[Mapping[str, str]] = None) -> str:
    """The runner key from ``key_file`` (whitespace stripped), else $BENCHRUN_RUNNER_KEY.
    Keys are never taken from the command line: argv is visible to every user of the host."""
    env = os.environ if environ is None else environ
    if key_file is not None:
        try:
            with open(key_file, encoding="utf-8") as f:
                key = f.read().strip()
        except (OSError, UnicodeDecodeError) as e:
            why = getattr(e, "strerror", None) or e
            raise ConfigError(f"read key file '{key_file}': {why}") from None
        if not key:
            raise ConfigError(f"key file '{key_file}': empty")
    else:
        key = env.get(KEY_ENV, "").strip()
        if not key:
            raise ConfigError(f"no runner key: pass --key-file FILE or set {KEY_ENV}")
    if any(c.isspace() for c in key) or not key.isprintable():
        raise ConfigError("runner key: contains whitespace or control characters")
    return key


def make_config(server: str, runner: str, key: str, **options) -> AgentConfig:
    """Checks every option and returns the AgentConfig (ConfigError on a bad value)."""
    cfg = AgentConfig(server=server, runner=runner, key=key, **options)
    channel_url(cfg.server, cfg.runner)
    if not _RUNNER.match(cfg.runner):
        raise ConfigError(f"runner '{cfg.runner}': expected a runner UUID or slug")
    lo, hi = protocol.POLL_TIMEOUT_RANGE
    if (
        isinstance(cfg.poll_timeout, bool)
        or not isinstance(cfg.poll_timeout, int)
        or not lo <= cfg.poll_timeout <= hi
    ):
        raise ConfigError(f"poll timeout {cfg.poll_timeout!r}: expected {lo}..{hi} seconds")
    if not isinstance(cfg.max_message, int) or cfg.max_message < (1 << 20):
        raise ConfigError(f"max message {cfg.max_message!r}: expected at least 1 MiB")
    if cfg.backend not in backends():
        raise ConfigError(f"backend {cfg.backend!r}: unknown (choose {', '.join(backends())})")
    for name in (
        "heartbeat_interval",
        "ack_timeout",
        "backoff_initial",
        "backoff_max",
        "cancel_grace",
    ):
        if not getattr(cfg, name) > 0:
            raise ConfigError(f"{name.replace('_', ' ')} {getattr(cfg, name)!r}: must be positive")
    if cfg.drain_timeout < 0:
        raise ConfigError(f"drain timeout {cfg.drain_timeout!r}: must not be negative")
    if cfg.once_wait is not None and not cfg.once_wait > 0:
        raise ConfigError(f"once wait {cfg.once_wait!r}: must be positive")
    if cfg.tune_cpus is not None and not cfg.tune:
        raise ConfigError("--tune-cpus: only with --tune")
    if cfg.max_resends < 0:
        raise ConfigError(f"max resends {cfg.max_resends!r}: must not be negative")
    return cfg
