"""Captured bytes in a Result's JSON document, bounded (issue 11, finding 6).

A stream or file is written either as JSON text (when it is valid UTF-8 and JSON's escaping at most
doubles it) or as base64 (4/3 of it), never both: the document grows by at most twice the bytes
whatever they are. ``dump()`` writes a document holding large byte strings in chunks, so neither
the base64 nor the escaped text is ever held whole in memory.
"""

from __future__ import annotations

import base64
import codecs
import json
import re
import uuid
from typing import IO, Any, Iterator, Mapping, Optional

CHUNK = 1 << 20  # bytes read from a blob at a time (a multiple of 3 for base64, below)
_B64_CHUNK = 3 * (CHUNK // 3)
# Bytes JSON escapes: '"' and '\\' and \b \t \n \f \r take 2 characters, other C0 controls 6.
_SHORT = b'"\\\b\t\n\f\r'
_CONTROL = bytes(range(0x20))
_OTHER = bytes(b for b in range(256) if b not in _CONTROL and b not in _SHORT)


def is_text(data: bytes) -> bool:
    """True when ``data`` goes into JSON as text: valid UTF-8 whose escaped form is at most twice
    its size (binary data and most control characters go as base64)."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    escaped = 0
    view = memoryview(data)
    try:
        for i in range(0, len(data), CHUNK):
            chunk = view[i : i + CHUNK]
            decoder.decode(chunk)
            special = bytes(chunk).translate(None, _OTHER)
            short = sum(special.count(c) for c in _SHORT)
            escaped += len(chunk) + short + 5 * (len(special) - short)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return escaped <= 2 * len(data)


def encode(data: bytes) -> tuple[Optional[str], Optional[str]]:
    """(text, None) or (None, base64): the two JSON fields of one blob, exactly one set."""
    if is_text(data):
        return data.decode("utf-8"), None
    return None, base64.b64encode(data).decode("ascii")


def decode(text: Optional[str], b64: Optional[str]) -> bytes:
    """The bytes back from either field (base64 wins: schema 2 wrote both, the text lossy)."""
    if b64 is not None:
        return base64.b64decode(b64)
    return (text or "").encode("utf-8")


class Blob:
    """A placeholder in a document for ``data``, written as text or base64 by dump()."""

    def __init__(self, data: bytes, as_text: bool):
        self.data = data
        self.as_text = as_text

    def chunks(self) -> Iterator[bytes]:
        view = memoryview(self.data)
        if self.as_text:
            decoder = codecs.getincrementaldecoder("utf-8")("strict")
            for i in range(0, len(self.data), CHUNK):
                s = decoder.decode(view[i : i + CHUNK])
                yield json.dumps(s, ensure_ascii=False)[1:-1].encode("utf-8")
        else:
            for i in range(0, len(self.data), _B64_CHUNK):
                yield base64.b64encode(view[i : i + _B64_CHUNK])


def blob_fields(data: bytes) -> tuple[Optional[Blob], Optional[Blob]]:
    """(text blob, None) or (None, base64 blob), as encode() but written lazily by dump()."""
    as_text = is_text(data)
    blob = Blob(data, as_text)
    return (blob, None) if as_text else (None, blob)


def dump(doc: Any, fp: IO[bytes], indent: Optional[int] = 2, prefix: str = "") -> None:
    """Writes ``doc`` as JSON to the binary ``fp``; Blob values anywhere in it are streamed in
    chunks. ``prefix`` is put after each newline (to nest the document in another one)."""
    token = f"@benchrun-blob-{uuid.uuid4().hex}-"
    blobs: list[Blob] = []
    skeleton = json.dumps(_swap(doc, token, blobs), indent=indent)
    if prefix:
        skeleton = skeleton.replace("\n", "\n" + prefix)  # JSON strings hold no raw newline
    parts = re.split('"' + re.escape(token) + r'(\d+)@"', skeleton)
    for i, part in enumerate(parts):
        if i % 2 == 0:
            fp.write(part.encode("utf-8"))
            continue
        fp.write(b'"')
        for chunk in blobs[int(part)].chunks():
            fp.write(chunk)
        fp.write(b'"')


def _swap(value: Any, token: str, blobs: list[Blob]) -> Any:
    """``value`` with each Blob replaced by a placeholder string, the Blob appended to blobs. (A
    function of its own, not a closure: a recursive closure is a reference cycle that would keep
    the blobs' bytes alive until the garbage collector runs.)"""
    if isinstance(value, Blob):
        blobs.append(value)
        return f"{token}{len(blobs) - 1}@"
    if isinstance(value, Mapping):
        return {k: _swap(v, token, blobs) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_swap(v, token, blobs) for v in value]
    return value
