"""Helpers for tests and examples: assertions on a Result with readable failure messages, and a
small local busybox image (an OCI layout) to run without a registry.

The assertions raise AssertionError whose message shows what a reader needs to see why a run
failed: exit code, signal, timed out / OOM-killed, wall time and the tail of stdout and stderr.
pytest prints it as is (the helpers are registered for assertion rewriting by the plugin).
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from pathlib import Path
from typing import Any, Iterable, Optional, Union

from benchrun.runner import Result

TAIL_LINES = 20

# busybox applets linked in busybox_image(): what shell scripts and benchmarks commonly use.
APPLETS = (
    "sh",
    "echo",
    "cat",
    "ls",
    "true",
    "false",
    "sleep",
    "env",
    "id",
    "pwd",
    "nproc",
    "yes",
    "head",
    "tail",
    "base64",
    "dd",
    "wc",
    "touch",
    "mkdir",
    "rm",
    "test",
    "grep",
    "awk",
    "sed",
    "seq",
    "sha256sum",
    "date",
    "printf",
    "tr",
    "cut",
    "sort",
    "uname",
)


def _tail(data: bytes, lines: int = TAIL_LINES) -> str:
    text = data.decode("utf-8", errors="replace")
    parts = text.splitlines()
    if not parts:
        return "    (empty)"
    shown = parts[-lines:]
    head = f"    ... ({len(parts) - len(shown)} earlier lines)\n" if len(parts) > len(shown) else ""
    return head + "\n".join(f"    | {line}" for line in shown)


def describe(result: Result) -> str:
    """A multi-line account of a run: status, timing, and the tails of stdout and stderr."""
    if result.timed_out:
        status = "timed out"
    elif result.oom_killed:
        status = "OOM-killed"
    elif result.signal:
        status = f"killed by signal {result.signal}"
    else:
        status = f"exited {result.exit_code}"
    flags = [
        f"exit_code={result.exit_code}",
        f"signal={result.signal}",
        f"timed_out={result.timed_out}",
        f"oom_killed={result.oom_killed}",
    ]
    lines = [
        f"run {status} on backend {result.backend!r} after {result.wall_time:.3f}s wall time "
        f"({', '.join(flags)})",
        f"  image: {result.image_digest}",
    ]
    for name, data, truncated in (
        ("stdout", result.stdout, result.stdout_truncated),
        ("stderr", result.stderr, result.stderr_truncated),
    ):
        note = ", truncated by max_output_bytes" if truncated else ""
        lines.append(f"  {name} (last {TAIL_LINES} lines{note}):")
        lines.append(_tail(data))
    for notice in result.notices:
        lines.append(f"  notice: {notice}")
    return "\n".join(lines)


def _fail(what: str, result: Result) -> None:
    __tracebackhide__ = True
    raise AssertionError(f"{what}\n{describe(result)}")


def assert_ok(result: Result) -> Result:
    """The workload exited 0 on its own (not signalled, timed out or OOM-killed)."""
    __tracebackhide__ = True
    if not result.ok:
        _fail("expected the run to succeed (exit 0)", result)
    return result


def assert_exit(result: Result, code: int) -> Result:
    """The workload exited with ``code`` on its own (not signalled, timed out or OOM-killed)."""
    __tracebackhide__ = True
    if result.exit_code != code or result.signal or result.timed_out or result.oom_killed:
        _fail(f"expected exit code {code}", result)
    return result


def assert_stdout(
    result: Result,
    contains: Union[str, bytes, Iterable[Union[str, bytes]], None] = None,
    *,
    equals: Union[str, bytes, None] = None,
) -> Result:
    """stdout contains each of ``contains`` (a string or several), and/or equals ``equals``."""
    __tracebackhide__ = True
    if equals is not None:
        want = equals.encode() if isinstance(equals, str) else equals
        if result.stdout != want:
            _fail(f"expected stdout to be {want!r}", result)
    if contains is not None:
        wanted = [contains] if isinstance(contains, (str, bytes)) else list(contains)
        for item in wanted:
            needle = item.encode() if isinstance(item, str) else item
            if needle not in result.stdout:
                _fail(f"expected stdout to contain {needle!r}", result)
    return result


def assert_stderr(result: Result, contains: Union[str, bytes]) -> Result:
    """stderr contains ``contains``."""
    __tracebackhide__ = True
    needle = contains.encode() if isinstance(contains, str) else contains
    if needle not in result.stderr:
        _fail(f"expected stderr to contain {needle!r}", result)
    return result


def assert_faster_than(result: Result, seconds: float) -> Result:
    """The run succeeded and its workload's wall time is below ``seconds``."""
    __tracebackhide__ = True
    if not result.ok:
        _fail(f"expected the run to succeed in under {seconds:g}s", result)
    if not result.wall_time < seconds:
        _fail(
            f"expected a wall time under {seconds:g}s, took {result.wall_time:.3f}s "
            f"({result.wall_time / seconds:.2f}x the limit)",
            result,
        )
    return result


# --- a local busybox image ------------------------------------------------------------------

_MTIME = 1_700_000_000


def _busybox_tar(busybox: Path, applets: Iterable[str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:

        def add(
            name: str, kind: bytes, mode: int, data: Optional[bytes] = None, link: str = ""
        ) -> None:
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode, ti.mtime, ti.linkname = kind, mode, _MTIME, link
            ti.size = len(data) if data is not None else 0
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)

        for d in ("bin", "etc", "tmp", "root", "work"):
            add(d, tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755)
        add("bin/busybox", tarfile.REGTYPE, 0o755, busybox.read_bytes())
        for applet in applets:
            add(f"bin/{applet}", tarfile.SYMTYPE, 0o777, link="busybox")
        add(
            "etc/passwd",
            tarfile.REGTYPE,
            0o644,
            b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n",
        )
        add("etc/group", tarfile.REGTYPE, 0o644, b"root:x:0:\nnogroup:x:65534:\n")
    return buf.getvalue()


def busybox_image(
    directory: Union[str, "os.PathLike[str]"],
    *,
    tag: str = "latest",
    applets: Iterable[str] = APPLETS,
    busybox: Union[str, "os.PathLike[str]", None] = None,
) -> str:
    """Writes a one-layer image of the host's static busybox (with ``applets`` linked in /bin and
    PATH=/bin) as an OCI layout in ``directory``; returns its reference ``oci:DIR:TAG``.
    The layout is byte-for-byte reproducible for the same busybox binary."""
    bb = Path(busybox or shutil.which("busybox") or "/bin/busybox")
    if not bb.is_file():
        from benchrun.errors import ConfigError

        raise ConfigError(f"busybox '{bb}': no such file (hint: apt-get install busybox-static)")
    from benchrun.layout import write_layer_image

    return write_layer_image(
        directory,
        _busybox_tar(bb, applets),
        env=["PATH=/bin"],
        cmd=["/bin/sh"],
        tag=tag,
        created_by="benchrun.testing.busybox_image",
    )
