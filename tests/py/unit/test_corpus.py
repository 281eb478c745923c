"""The Python parsers of untrusted bytes against the hostile-input corpus (tests/corpus/, written by
tests/corpus/generate.py), and a bounded, seeded fuzz of the same parsers with Hypothesis (Debian's
python3-hypothesis): result files (BMF, Google Benchmark, hyperfine), runner-channel messages in
both directions. Every input must end accepted or in the parser's typed error; "reject-*" corpus
files must end in the typed error, "ok-*" ones must be accepted.

REST bodies are fed to a real server in tests/py/integration/test_rest_corpus.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest

from benchrun import metrics
from benchrun.errors import ConfigError, ProtocolError
from benchrun.jobs import protocol

CORPUS = Path(__file__).resolve().parents[2] / "corpus"
MAX = 1 << 20

hypothesis = pytest.importorskip("hypothesis", reason="python3-hypothesis (scripts/bootstrap.sh)")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def samples(kind: str, prefix: str = "") -> list[Path]:
    return sorted(p for p in (CORPUS / kind).iterdir() if p.name.startswith(prefix))


def check(parse: Callable[[bytes], Any], typed: type[Exception], path: Path) -> None:
    data = path.read_bytes()
    try:
        parse(data)
    except typed:
        assert not path.name.startswith("ok-"), f"{path.name}: refused a valid document"
        return
    assert not path.name.startswith("reject-"), f"{path.name}: accepted a hostile document"


RESULT_PARSERS = {
    "bmf": metrics.parse_bmf,
    "gbench": metrics.parse_gbench,
    "hyperfine": metrics.parse_hyperfine,
}


@pytest.mark.parametrize("path", samples("results"), ids=lambda p: p.name)
def test_result_files(path: Path) -> None:
    fmt = path.name.split("-")[1] if path.name.startswith("reject-") else path.name.split("-")[0]
    check(RESULT_PARSERS[fmt], ConfigError, path)
    # Every result file also goes through auto-detection and the other formats' parsers.
    for parse in [*RESULT_PARSERS.values(), metrics.parse]:
        try:
            parse(path.read_bytes())
        except ConfigError:
            pass


def channel_parser(name: str) -> Callable[[bytes], Any]:
    if name.removeprefix("reject-").removeprefix("ok-").startswith("server-"):
        return lambda data: protocol.parse_server_message(data, MAX)
    return lambda data: protocol.parse_runner_message(data, MAX)


@pytest.mark.parametrize("path", samples("channel"), ids=lambda p: p.name)
def test_channel_messages(path: Path) -> None:
    check(channel_parser(path.name), ProtocolError, path)


# --- Hypothesis: JSON-shaped documents built from the parsers' own vocabulary, and byte-level
# mutations of the corpus. Seeded (derandomize) and bounded, so CI time and results are stable.
FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)

KEYS = [
    "event",
    "job",
    "results",
    "error",
    "poll_timeout",
    "runner",
    "timings",
    "exit_code",
    "stdout",
    "stderr",
    "output",
    "uuid",
    "spec",
    "config",
    "oci_token",
    "timeout",
    "created",
    "version",
    "url",
    "checksum",
    "benchmarks",
    "name",
    "run_type",
    "iterations",
    "real_time",
    "cpu_time",
    "time_unit",
    "aggregate_name",
    "results",
    "command",
    "mean",
    "stddev",
    "median",
    "min",
    "max",
    "times",
    "value",
    "lower_value",
    "upper_value",
    "latency",
    "b",
]
EVENTS = [*protocol.RUNNER_EVENTS, *protocol.SERVER_EVENTS]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(EVENTS + ["ns", "us", "ms", "s", "0b6f8a2e-8a4e-4c4e-9d6e-2f1d0c3b4a59"]),
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=6),
    ),
    max_leaves=30,
)


def as_text(doc: Any) -> str:
    return json.dumps(doc)


def mutated(kind: str) -> st.SearchStrategy[bytes]:
    """A corpus file with a few bytes overwritten, inserted or cut."""
    files = [p.read_bytes() for p in samples(kind)]

    @st.composite
    def build(draw: Any) -> bytes:
        data = bytearray(draw(st.sampled_from(files)))
        for _ in range(draw(st.integers(1, 4))):
            op = draw(st.integers(0, 2))
            pos = draw(st.integers(0, len(data)))
            if op == 0 and pos < len(data):
                data[pos] = draw(st.integers(0, 255))
            elif op == 1:
                data[pos:pos] = draw(st.binary(max_size=8))
            else:
                del data[pos : pos + draw(st.integers(1, 16))]
        return bytes(data)

    return build()


@FUZZ
@given(st.one_of(documents.map(as_text), st.binary(max_size=200), mutated("results")))
def test_fuzz_result_parsers(data: Any) -> None:
    for parse in [*RESULT_PARSERS.values(), metrics.parse]:
        try:
            parse(data)
        except ConfigError:
            pass


@FUZZ
@given(
    st.one_of(
        st.fixed_dictionaries(
            {"event": st.sampled_from(EVENTS)},
            optional={k: documents for k in KEYS if k != "event"},
        ).map(as_text),
        documents.map(as_text),
        st.binary(max_size=200),
        mutated("channel"),
    )
)
def test_fuzz_channel_messages(data: Any) -> None:
    for parse in (protocol.parse_runner_message, protocol.parse_server_message):
        try:
            parse(data, MAX)
        except ProtocolError:
            pass
