"""A run's Result as upstream's per-iteration output, and terminal messages cut to the size limit.

Upstream's JsonIterationOutput is {exit_code, stdout?, stderr?, output?: {path: text}}, texts being
UTF-8 with invalid sequences replaced (as Rust's from_utf8_lossy). A message that would exceed the
channel's limit has its largest texts cut in half until it fits (docs/agent.md).
"""

from __future__ import annotations

import codecs
import copy
from typing import Any, Optional

from benchrun.jobs import protocol
from benchrun.runner import Result

TIMEOUT_EXIT_CODE = 124  # as `benchrun run` (and GNU timeout)
OOM_EXIT_CODE = 126  # as `benchrun run`
TRUNCATED_MARK = "\n[benchrun agent: truncated to fit the message limit]\n"


def exit_code(result: Result) -> int:
    """The run's exit code as `benchrun run` reports it (docs/cli.md): 124 if it timed out, 126 if
    it was OOM-killed, 128+N if signal N killed it, else its own exit status."""
    if result.timed_out:
        return TIMEOUT_EXIT_CODE
    if result.oom_killed:
        return OOM_EXIT_CODE
    if result.signal:
        return 128 + result.signal
    return result.exit_code


_CHUNK = 1 << 20


def _text(data: bytes, limit: Optional[int] = None) -> str:
    """data as text (invalid sequences -> U+FFFD), cut to at most ``limit`` bytes of UTF-8 (a
    message cannot carry more), decoded a chunk at a time: 64 MiB of invalid bytes would otherwise
    become 64 Mi U+FFFD characters (192 MiB of UTF-8) before being cut (issue 11, finding 6)."""
    if limit is None or len(data) <= limit // 3:
        return data.decode("utf-8", errors="replace")
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    view = memoryview(data)
    pieces: list[str] = []
    size = 0
    for i in range(0, len(data) + 1, _CHUNK):
        final = i + _CHUNK >= len(data)
        piece = decoder.decode(view[i : i + _CHUNK], final=final)
        encoded = len(piece.encode("utf-8"))
        if size + encoded > limit:
            piece = piece.encode("utf-8")[: limit - size].decode("utf-8", errors="ignore")
            pieces.append(piece + TRUNCATED_MARK if len(TRUNCATED_MARK) < len(piece) else piece)
            break
        pieces.append(piece)
        size += encoded
        if final:
            break
    return "".join(pieces)


def iteration_output(result: Result, max_bytes: Optional[int] = None) -> dict[str, Any]:
    """The iteration as upstream reports it; each text at most ``max_bytes`` of UTF-8."""
    return protocol.iteration_output(
        exit_code(result),
        _text(result.stdout, max_bytes),
        _text(result.stderr, max_bytes),
        {path: _text(data, max_bytes) for path, data in result.outputs.items()},
    )


def was_cut(iteration: dict[str, Any]) -> bool:
    """An iteration_output() one of whose texts was cut to the message limit."""
    texts = [
        iteration.get("stdout"),
        iteration.get("stderr"),
        *iteration.get("output", {}).values(),
    ]
    return any(isinstance(t, str) and t.endswith(TRUNCATED_MARK) for t in texts)


def message_size(msg: dict[str, Any]) -> int:
    return len(protocol.dumps(msg).encode("utf-8"))


def fit(msg: dict[str, Any], max_bytes: int) -> tuple[dict[str, Any], bool]:
    """(msg, False) if it fits in ``max_bytes``, else (a copy with results cut to fit, True).

    Each round cuts every stdout/stderr/output text longer than half the longest one to that
    half, so short texts survive and the rounds are few (at most ~64: the longest text at least
    halves each time); if texts alone cannot make room (thousands of iterations), the results
    are dropped."""
    if message_size(msg) <= max_bytes:
        return msg, False
    out = copy.deepcopy(msg)
    results: list[dict[str, Any]] = out.get("results", [])
    budget = max_bytes - 1024  # room for the error text the caller adds
    while message_size(out) > budget:
        texts = _texts(results)
        if not texts:
            out["results"] = []
            break
        limit = max(len(holder[key]) for holder, key in texts) // 2
        for holder, key in texts:
            if len(holder[key]) > limit:
                keep = limit - len(TRUNCATED_MARK)
                holder[key] = holder[key][:keep] + TRUNCATED_MARK if keep > 0 else ""
                if not holder[key] and key in ("stdout", "stderr"):
                    del holder[key]
    return out, True


def _texts(results: list[dict[str, Any]]) -> list[tuple[dict[str, Any], str]]:
    """(holder, key) of every non-empty stdout/stderr/output text."""
    found = []
    for it in results:
        found += [(it, k) for k in ("stdout", "stderr") if it.get(k)]
        out = it.get("output", {})
        found += [(out, path) for path, text in out.items() if text]
    return found
