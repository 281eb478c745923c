"""benchrun's exception hierarchy; the C++ core's errors arrive as these classes (bind_errors.cpp)."""

from __future__ import annotations


class BenchrunError(Exception):
    """Root of every error benchrun raises."""


class SysError(BenchrunError, OSError):
    """A system call failed; ``errno``, ``op`` and ``path`` say which."""

    def __init__(self, message: str, errno: int = 0, op: str = "", path: str = "") -> None:
        OSError.__init__(self, errno, message)
        self.op = op
        self.path = path

    def __str__(self) -> str:
        return str(self.strerror)


class ConfigError(BenchrunError, ValueError):
    """Invalid input: a bad reference, option or value."""


class RegistryError(BenchrunError):
    """A registry failed or refused a request; ``http_status`` is 0 for transport errors."""

    def __init__(self, message: str, http_status: int = 0) -> None:
        super().__init__(message)
        self.http_status = http_status


class AuthError(RegistryError):
    """The registry refused the credentials (or none were found)."""


class ImageError(BenchrunError):
    """An image is malformed, unsupported or unsafe."""


class DigestMismatch(ImageError):
    """Content did not hash to the digest that was asked for."""


class UnsafeLayerError(ImageError):
    """A layer tried to write outside its root or exceeded a limit."""


class ImageTooLarge(ImageError):
    """An image would unpack to more than its limits, or than the store's free space allows."""


class ImageNotFound(ImageError, LookupError):
    """The image is not in the local store."""


class SandboxError(BenchrunError):
    """Sandbox setup failed at ``stage``."""

    def __init__(self, message: str, stage: str = "") -> None:
        super().__init__(message)
        self.stage = stage


class VmError(BenchrunError):
    """The microVM failed."""


class RuntimeUnavailable(BenchrunError):
    """An OCI runtime backend cannot be used here: ``reason`` is ``not-installed``,
    ``wrong-version`` or ``unsupported-host``; ``runtime`` names it."""

    def __init__(self, message: str, runtime: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.runtime = runtime
        self.reason = reason


class ProtocolError(BenchrunError):
    """The host/guest protocol was violated."""


class DeadlineExceeded(BenchrunError, TimeoutError):
    """An operation ran out of time."""


class InstructionCountError(BenchrunError):
    """Instruction counting (``--instructions``) failed: Valgrind could not run the workload
    (e.g. an instruction set it does not know, such as AVX-512: its own message is quoted), or its
    output is missing or malformed (see docs/instructions.md)."""


class ValgrindNotFound(InstructionCountError):
    """``--instructions`` on a host without Valgrind (Debian: ``apt-get install valgrind``)."""


class ServerError(BenchrunError):
    """The job server refused a request or failed; ``http_status`` is 0 for transport errors."""

    def __init__(self, message: str, http_status: int = 0) -> None:
        super().__init__(message)
        self.http_status = http_status


class JobNotFound(ServerError, LookupError):
    """No such job (or not one of the caller's projects)."""


__all__ = [
    "AuthError",
    "BenchrunError",
    "ConfigError",
    "DeadlineExceeded",
    "DigestMismatch",
    "ImageError",
    "InstructionCountError",
    "JobNotFound",
    "ServerError",
    "ImageNotFound",
    "ProtocolError",
    "RegistryError",
    "RuntimeUnavailable",
    "SandboxError",
    "SysError",
    "UnsafeLayerError",
    "ImageTooLarge",
    "ValgrindNotFound",
    "VmError",
]
