"""Secrets of a run (docs/security.md "Secrets"): what a user gives, checked, and the redaction of
their values from what a run returns.

A secret is a name and its content. Inside the run it is the file ``/run/secrets/NAME`` (mode
0400, owned by the run's user) on a tmpfs the sandbox's child fills from its own memory: never a
file on the host's disks. The values are kept out of everything benchrun returns or stores: they
are not run options (``RunSpec.options`` never holds them, so campaign stores, ``--json`` and
``-v`` cannot echo them), error messages name secrets, never their content, and redact() replaces
every exact occurrence of a value in the Result's stdout, stderr, collected files and notices by
``***`` with a notice naming the secret.

The rules (name characters and length, count, sizes) are the core's (spec.hpp kMaxSecret*, checked
again by the native validation); they are repeated here so that a bad ``--secret`` is a usage
error before anything is pulled.
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Optional, Union

from benchrun.errors import ConfigError

if TYPE_CHECKING:
    from benchrun.runner import Result

# The core's bounds (cpp/include/benchrun/run/spec.hpp).
MAX_SECRETS = 64
MAX_NAME = 128
MAX_BYTES = 1 << 20
MAX_TOTAL = 4 << 20
ENV_PREFIX = "BENCHRUN_SECRET_"
MASK = b"***"
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")

Secrets = tuple[tuple[str, bytes], ...]
SecretsArg = Union[Mapping[str, Union[bytes, str, "os.PathLike[str]"]], Iterable[str], None]


def check_name(name: Any) -> str:
    if not isinstance(name, str):
        raise ConfigError(f"secret name {name!r}: expected a str")
    if not (1 <= len(name) <= MAX_NAME) or name in (".", "..") or not _NAME_RE.match(name):
        shown = name if len(name) <= MAX_NAME else name[:MAX_NAME] + "..."
        raise ConfigError(
            f"secret name {shown!r}: expected 1-{MAX_NAME} of A-Z a-z 0-9 _ . - "
            "(a file name in /run/secrets; not . or ..)"
        )
    return name


def _read(name: str, path: Union[str, "os.PathLike[str]"]) -> bytes:
    p = os.fspath(path)
    try:
        with open(p, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"secret '{name}': cannot read '{p}': {e.strerror or e}") from None
    return data


def parse_secrets(value: SecretsArg, environ: Optional[Mapping[bytes, bytes]] = None) -> Secrets:
    """(name, content) pairs from a dict ``{NAME: bytes | path}`` (``run(secrets=...)``) or from
    ``--secret`` entries ``NAME=HOSTFILE`` / ``NAME`` (the content of benchrun's environment
    variable ``BENCHRUN_SECRET_NAME``; ``environ`` default os.environb). ConfigError names the
    secret, never its content."""
    if value is None:
        return ()
    env = os.environb if environ is None else environ
    pairs: list[tuple[str, bytes]] = []
    if isinstance(value, Mapping):
        for name, v in value.items():
            check_name(name)
            if isinstance(v, (bytes, bytearray, memoryview)):
                data = bytes(v)
            elif isinstance(v, (str, os.PathLike)):
                data = _read(name, v)
            else:
                raise ConfigError(
                    f"secret '{name}': expected bytes (the content) or a host file path, "
                    f"not {type(v).__name__}"
                )
            pairs.append((name, data))
    elif isinstance(value, (str, bytes)):
        raise ConfigError("secrets: expected a dict or a list of 'NAME=HOSTFILE' / 'NAME' entries")
    else:
        for item in value:
            if not isinstance(item, str):
                raise ConfigError(f"secret {item!r}: expected 'NAME=HOSTFILE' or 'NAME'")
            name, eq, path = item.partition("=")
            check_name(name)
            if eq:
                if not path:
                    raise ConfigError(f"secret '{name}': empty HOSTFILE in '{item}'")
                data = _read(name, path)
            else:
                var = ENV_PREFIX + name
                got = env.get(var.encode())
                if got is None:
                    raise ConfigError(
                        f"secret '{name}': {var} is not set in benchrun's environment "
                        f"(give --secret {name}=HOSTFILE, or set {var})"
                    )
                data = bytes(got)
            pairs.append((name, data))
    names = [n for n, _ in pairs]
    for n in names:
        if names.count(n) > 1:
            raise ConfigError(f"secret '{n}': given twice")
    if len(pairs) > MAX_SECRETS:
        raise ConfigError(f"secrets: {len(pairs)} given; at most {MAX_SECRETS}")
    for n, data in pairs:
        if len(data) > MAX_BYTES:
            raise ConfigError(f"secret '{n}': larger than {MAX_BYTES} bytes")
    total = sum(len(d) for _, d in pairs)
    if total > MAX_TOTAL:
        raise ConfigError(f"secrets: together {total} bytes; at most {MAX_TOTAL}")
    return tuple(pairs)


def _scrub(data: bytes, secrets: Secrets, where: str, found: dict[str, list[str]]) -> bytes:
    for name, value in secrets:
        if value and value in data:
            data = data.replace(value, MASK)
            found.setdefault(name, []).append(where)
    return data


def redact(result: "Result", secrets: Secrets) -> "Result":
    """result with every exact occurrence of a secret's value in stdout, stderr, the collected
    files (content and path), missing_outputs and notices replaced by ``***``, plus one notice
    per secret found naming it and where (never its value). Longer values first, so a secret
    that contains another is masked whole. Empty values are not searched."""
    if not secrets:
        return result
    ordered = tuple(sorted(secrets, key=lambda s: len(s[1]), reverse=True))
    found: dict[str, list[str]] = {}
    stdout = _scrub(result.stdout, ordered, "stdout", found)
    stderr = _scrub(result.stderr, ordered, "stderr", found)
    outputs: dict[str, bytes] = {}
    for path, data in result.outputs.items():
        clean_path = _scrub(path.encode(), ordered, "an output path", found).decode(
            errors="replace"
        )
        outputs[clean_path] = _scrub(data, ordered, f"output {clean_path}", found)
    missing = {
        _scrub(k.encode(), ordered, "an output path", found)
        .decode(errors="replace"): _scrub(v.encode(), ordered, "a missing-output message", found)
        .decode(errors="replace")
        for k, v in result.missing_outputs.items()
    }
    notices = [
        _scrub(n.encode(), ordered, "a notice", found).decode(errors="replace")
        for n in result.notices
    ]
    if not found:
        return result
    for name, places in found.items():
        notices.append(
            f"secret '{name}' appeared in {', '.join(dict.fromkeys(places))}: redacted as "
            f"{MASK.decode()}"
        )
    return replace(
        result,
        stdout=stdout,
        stderr=stderr,
        outputs=outputs,
        missing_outputs=missing,
        notices=tuple(notices),
    )


__all__ = ["MASK", "check_name", "parse_secrets", "redact"]
