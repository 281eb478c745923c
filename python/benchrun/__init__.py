"""benchrun: run benchmark OCI images in isolation and get trustworthy results.

Imports stay light (every `benchrun` command pays for them): the job server client is loaded on
first use of benchrun.Client, the analysis modules (results, stats, plots, report) when imported.
"""

from typing import TYPE_CHECKING, Any

from benchrun._core import __version__
from benchrun.errors import (
    AuthError,
    BenchrunError,
    ConfigError,
    DeadlineExceeded,
    DigestMismatch,
    ImageError,
    ImageNotFound,
    ImageTooLarge,
    InstructionCountError,
    JobNotFound,
    ProtocolError,
    RegistryError,
    RuntimeUnavailable,
    SandboxError,
    ServerError,
    SysError,
    UnsafeLayerError,
    ValgrindNotFound,
    VmError,
)
from benchrun.image import Image, images, inspect, prune, pull, rmi
from benchrun.options import backends
from benchrun.runner import Result, run

if TYPE_CHECKING:
    from benchrun.client import Client

__all__ = [
    "__version__",
    "AuthError",
    "BenchrunError",
    "Client",
    "ConfigError",
    "DeadlineExceeded",
    "DigestMismatch",
    "Image",
    "ImageError",
    "ImageNotFound",
    "ImageTooLarge",
    "InstructionCountError",
    "JobNotFound",
    "ProtocolError",
    "RegistryError",
    "Result",
    "RuntimeUnavailable",
    "SandboxError",
    "ServerError",
    "SysError",
    "UnsafeLayerError",
    "ValgrindNotFound",
    "VmError",
    "backends",
    "images",
    "inspect",
    "prune",
    "pull",
    "rmi",
    "run",
]


def __getattr__(name: str) -> Any:
    if name == "Client":  # PEP 562: `benchrun.Client` imports the client (and its protocol) here
        from benchrun.client import Client

        return Client
    raise AttributeError(f"module 'benchrun' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | {"Client"})
