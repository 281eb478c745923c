"""JSON from untrusted peers (runner channel frames, REST bodies): bounded nesting and numbers that
every consumer can store and serve.

Design: Python's json parser recurses once per nesting level, so a frame of 100k '[' raises
RecursionError deep inside it; the depth is therefore checked on the raw text *before* parsing,
with C-level passes (strings dropped, brackets weighted, a running sum; a frame without 65
brackets skips it), about as fast as parsing it.
Numbers are checked while parsing (parse_float / parse_int / parse_constant hooks): NaN and
Infinity are not JSON (RFC 8259 section 6) and 1e400 parses to inf, so both are refused; integers
must fit in 64 bits (every store holds them, and a 400-digit integer made float() overflow).
Output is always standard JSON (allow_nan=False): a value that got past the checks cannot be
served as `NaN`.
"""

from __future__ import annotations

import itertools
import json
import math
import operator
import re
from typing import Any

from benchrun.errors import ProtocolError

MAX_DEPTH = 64
INT_RANGE = (-(2**63), 2**63 - 1)
_MAX_INT_DIGITS = 20  # 2**63 has 19 digits: anything longer is out of range without int()

_STRING = re.compile(r'"[^"]*"')  # a string literal once its escapes are gone
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
# Brackets -> weights: an opener counts 2, a closer 0, so the running sum minus the position is the
# depth at each bracket (computed by C iterators: no Python-level loop per character).
_WEIGHTS = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")


class UnsafeJson(ProtocolError):
    """Valid-looking JSON that the server refuses: nested deeper than MAX_DEPTH, or a number that
    is not finite or not in range. A runner channel closes on it (1008); REST answers 400."""


def max_depth_of(text: str) -> int:
    """The deepest nesting of arrays/objects in a JSON text (brackets inside strings do not count),
    in time linear in its length."""
    # In valid JSON a backslash only occurs in strings and escapes the next character: dropping
    # escaped backslashes, then escaped quotes, leaves strings as '"' [^"]* '"'.
    bare = _STRING.sub("", text.replace("\\\\", "").replace('\\"', ""))
    brackets = _NOT_BRACKET.sub("", bare).encode("ascii").translate(_WEIGHTS)
    if not brackets:
        return 0
    return max(
        0, max(map(operator.sub, itertools.accumulate(brackets), range(1, len(brackets) + 1)))
    )


def check_depth(text: str, max_depth: int = MAX_DEPTH) -> None:
    """UnsafeJson if arrays/objects nest deeper than max_depth. Cheap for ordinary messages: fewer
    brackets than the limit cannot exceed it."""
    if text.count("[") + text.count("{") <= max_depth:
        return
    if max_depth_of(text) > max_depth:
        raise UnsafeJson(f"JSON nested deeper than {max_depth} levels")


def _float(s: str) -> float:
    v = float(s)
    if not math.isfinite(v):
        raise UnsafeJson(f"number {s[:32]} is out of range (not a finite double)")
    return v


def _int(s: str) -> int:
    digits = s.lstrip("-")
    if len(digits) > _MAX_INT_DIGITS:
        raise UnsafeJson(f"integer {s[:32]}... ({len(digits)} digits) is out of the 64-bit range")
    v = int(s)
    if not INT_RANGE[0] <= v <= INT_RANGE[1]:
        raise UnsafeJson(f"integer {s} is out of the 64-bit range")
    return v


def _constant(s: str) -> Any:
    raise UnsafeJson(f"{s} is not a JSON number (only finite numbers are accepted)")


def loads(text: str | bytes, max_depth: int = MAX_DEPTH) -> Any:
    """json.loads with the depth and number checks. ProtocolError for invalid JSON, UnsafeJson
    (a ProtocolError) for too deep or out-of-range."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as e:
            raise ProtocolError(f"invalid JSON: {e}") from None
    check_depth(text, max_depth)
    try:
        return json.loads(text, parse_float=_float, parse_int=_int, parse_constant=_constant)
    except UnsafeJson:
        raise
    except RecursionError:  # unreachable after check_depth; never let it escape as a crash
        raise UnsafeJson(f"JSON nested deeper than {max_depth} levels") from None
    except ValueError as e:
        raise ProtocolError(f"invalid JSON: {e}") from None


def dumps(value: Any, **kw: Any) -> str:
    """Standard JSON only: ValueError for NaN/Infinity instead of writing them."""
    return json.dumps(value, allow_nan=False, **kw)


def finite(value: Any, where: str, lo: float, hi: float) -> float:
    """A JSON number (not a boolean) in [lo, hi], as float; UnsafeJson otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UnsafeJson(f"{where}: expected a number, got {type(value).__name__}")
    v = float(value)
    if not (math.isfinite(v) and lo <= v <= hi):
        raise UnsafeJson(f"{where}: {value!r:.32} is outside [{lo:g}, {hi:g}]")
    return v
