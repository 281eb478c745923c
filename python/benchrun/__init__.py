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
    ProtocolError,
    RegistryError,
    SandboxError,
    SysError,
    UnsafeLayerError,
    VmError,
)
from benchrun.image import Image, images, inspect, prune, pull, rmi
from benchrun.runner import Result, run

__all__ = [
    "__version__",
    "AuthError",
    "BenchrunError",
    "ConfigError",
    "DeadlineExceeded",
    "DigestMismatch",
    "Image",
    "ImageError",
    "ImageNotFound",
    "ProtocolError",
    "RegistryError",
    "Result",
    "SandboxError",
    "SysError",
    "UnsafeLayerError",
    "VmError",
    "images",
    "inspect",
    "prune",
    "pull",
    "rmi",
    "run",
]
