"""The job server's validated configuration (CLI flags -> ServerConfig, frozen, checked once)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Optional

from benchrun.errors import ConfigError
from benchrun.jobs.protocol import POLL_TIMEOUT_RANGE
from benchrun.server.registries import RegistryPolicy

MiB = 1 << 20
# Upstream's ranges for heartbeat_timeout and job_timeout_grace_period are 1..900 s
# (lib/bencher_json/src/system/config/plus/runners.rs); fractions are allowed so tests can be fast.
_TIMEOUT_RANGE = (0.1, 900.0)
_SIZE_UNITS = {
    "": 1,
    "k": 1 << 10,
    "kib": 1 << 10,
    "kb": 1000,
    "m": MiB,
    "mib": MiB,
    "mb": 1000**2,
    "g": 1 << 30,
    "gib": 1 << 30,
    "gb": 1000**3,
}


@dataclass(frozen=True)
class ServerConfig:
    db_url: str = "sqlite:///benchrun-jobs.sqlite3"
    host: str = "127.0.0.1"
    port: int = 8080
    heartbeat_timeout: float = 90.0
    job_timeout_grace: float = 60.0
    # Largest WebSocket message accepted from a runner. Upstream uses 4 MiB, too small for the
    # 25 MiB of outputs a job may return; both ends default to 64 MiB (docs/jobs.md).
    max_message_bytes: int = 64 * MiB
    poll_timeout: int = 30  # a `ready` without poll_timeout waits this long for a job
    default_job_timeout: int = 3600  # a submitted job without config.timeout
    oci_token: str = ""  # handed to runners with each job, sent as Bearer to the job's registry
    # The registries jobs may name (--allow-registry [PROJECT=]HOST[:PORT]); none by default.
    registries: RegistryPolicy = RegistryPolicy()
    # Resolving tags to digests at submission:
    insecure_registries: tuple[str, ...] = ()
    registry_username: Optional[str] = None
    registry_password: Optional[str] = None
    registry_token: Optional[str] = None
    docker_config: Optional[str] = None
    admin_token_file: Optional[str] = None  # first start: the admin token is written here (0600)
    sse_keepalive: float = 15.0
    sweep_interval: float = 0.0  # 0 = heartbeat_timeout / 4, capped at 5 s
    # A claim wait re-checks the database at least this often even without a wakeup: a safety net
    # for a lost notification, not the wakeup mechanism.
    claim_recheck: float = 10.0
    shutdown_timeout: float = 10.0

    def __post_init__(self) -> None:
        if not self.db_url:
            raise ConfigError(
                "--db: a database URL is required " "(sqlite:///PATH or postgresql://...)"
            )
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--listen: port {self.port} is out of range")
        for name in ("heartbeat_timeout", "job_timeout_grace"):
            v = getattr(self, name)
            if not _TIMEOUT_RANGE[0] <= v <= _TIMEOUT_RANGE[1]:
                lo, hi = _TIMEOUT_RANGE
                raise ConfigError(f"{name}: {v} s is outside [{lo}, {hi}]")
        if not 4096 <= self.max_message_bytes <= 1 << 31:
            raise ConfigError(
                f"--max-message: {self.max_message_bytes} bytes is outside " "[4 KiB, 2 GiB]"
            )
        lo, hi = POLL_TIMEOUT_RANGE
        if not lo <= self.poll_timeout <= hi:
            raise ConfigError(f"poll_timeout: {self.poll_timeout} is outside [{lo}, {hi}]")
        if not 1 <= self.default_job_timeout <= 7 * 24 * 3600:
            raise ConfigError(f"default_job_timeout: {self.default_job_timeout} s is out of range")
        for name in ("sse_keepalive", "claim_recheck", "shutdown_timeout"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name}: must be positive")

    @property
    def sweep_every(self) -> float:
        return self.sweep_interval or min(5.0, self.heartbeat_timeout / 4)

    @classmethod
    def from_options(
        cls,
        *,
        db: str,
        listen: str = "127.0.0.1:8080",
        heartbeat_timeout: float = 90.0,
        grace: float = 60.0,
        admin_token_file: Optional[str] = None,
        max_message: str | int = 64 * MiB,
        insecure_registries: Iterable[str] = (),
        oci_token: str = "",
        allow_registries: Iterable[str] = (),
        **more: object,
    ) -> "ServerConfig":
        """What `benchrun serve` flags give; raises ConfigError naming the bad flag."""
        host, port = parse_listen(listen)
        size = max_message if isinstance(max_message, int) else parse_size(max_message)
        return cls(
            db_url=db,
            host=host,
            port=port,
            heartbeat_timeout=float(heartbeat_timeout),
            job_timeout_grace=float(grace),
            admin_token_file=admin_token_file,
            max_message_bytes=size,
            insecure_registries=tuple(insecure_registries),
            oci_token=oci_token,
            registries=RegistryPolicy.parse(allow_registries),
            **more,  # type: ignore[arg-type]
        )


def parse_listen(text: str) -> tuple[str, int]:
    """HOST:PORT, [IPv6]:PORT, :PORT (all interfaces) or PORT."""
    m = re.fullmatch(r"(?:\[([0-9A-Fa-f:.]+)\]|([^:\[\]]*)):(\d+)|(\d+)", text.strip())
    if not m:
        raise ConfigError(f"--listen '{text}': expected HOST:PORT")
    if m.group(4) is not None:
        return "127.0.0.1", int(m.group(4))
    host = m.group(1) if m.group(1) is not None else (m.group(2) or "0.0.0.0")
    port = int(m.group(3))
    if port > 65535:
        raise ConfigError(f"--listen '{text}': port {port} is out of range")
    return host, port


def parse_size(text: str) -> int:
    """'64MiB', '64M', '1G', '65536' -> bytes (K/M/G are binary, KB/MB/GB decimal)."""
    m = re.fullmatch(r"\s*(\d+)\s*([A-Za-z]*)\s*", text)
    if not m or m.group(2).lower() not in _SIZE_UNITS:
        raise ConfigError(f"'{text}': expected a size like 64MiB, 512K or 1048576")
    return int(m.group(1)) * _SIZE_UNITS[m.group(2).lower()]
