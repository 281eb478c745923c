"""benchrun: run benchmark OCI images in isolation and get trustworthy results."""

from benchrun._core import __version__
from benchrun.errors import (
    AuthError,
    BenchrunError,
    ConfigError,
    DeadlineExceeded,
    DigestMismatch,
    ImageError,
    ImageNotFound,
    JobNotFound,
    ProtocolError,
    RegistryError,
    SandboxError,
    ServerError,
    SysError,
    UnsafeLayerError,
    VmError,
)
from benchrun.image import Image, images, inspect, prune, pull, rmi
from benchrun.client import Client
from benchrun.options import backends
from benchrun.runner import Result, run

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
    "JobNotFound",
    "ProtocolError",
    "RegistryError",
    "Result",
    "SandboxError",
    "ServerError",
    "SysError",
    "UnsafeLayerError",
    "VmError",
    "backends",
    "images",
    "inspect",
    "prune",
    "pull",
    "rmi",
    "run",
]
