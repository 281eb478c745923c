"""The `counters` run option (docs/counters.md): what a user types, what the native spec gets,
the names RunSpec.validate() accepts, the CLI notice rule, and the job spec's mapping."""

from __future__ import annotations

import pytest

from benchrun.cli.main import quiet_counter_notice
from benchrun.errors import ConfigError
from benchrun.jobs.protocol import ProtocolError, parse_spec
from benchrun.options import core_spec, parse_counters


@pytest.mark.parametrize(
    "given, want",
    [
        ("task-clock", ["task-clock"]),
        ("default, instructions:u ,", ["default", "instructions:u"]),
        (["cycles", "page-faults"], ["cycles", "page-faults"]),
        ("none", []),
        (["none"], []),
        ([], []),
    ],
)
def test_parse_counters(given, want):
    assert parse_counters(given) == want


@pytest.mark.parametrize("bad", ["", " , ", 3, [""], [1], {"a": 1}])
def test_parse_counters_rejects(bad):
    with pytest.raises(ConfigError, match="counters"):
        parse_counters(bad)


def test_native_spec_default_none_and_lists():
    assert core_spec({}).counters is None  # the default set, decided in C++
    assert core_spec({"counters": "none"}).counters == []
    assert core_spec({"counters": "all"}).counters == ["all"]
    assert core_spec({"counters": "instructions,ref-cycles:k"}).counters == [
        "instructions",
        "ref-cycles:k",
    ]


@pytest.mark.parametrize(
    "bad, match",
    [
        (
            "cycels",
            r"counters: unknown counter 'cycels' \(known: task-clock, .*; default, all, none\)",
        ),
        ("task-clock:u", r"unknown counter 'task-clock:u'"),
        ("none,cycles", r"'none' cannot be combined"),
    ],
)
def test_unknown_counters_are_refused_listing_the_known_ones(bad, match):
    with pytest.raises(ConfigError, match=match):
        core_spec({"counters": bad})


def test_cli_quiets_only_the_default_sets_missing_pmu():
    pmu = "counters absent: cycles.user: no hardware PMU for them here (...)"
    assert quiet_counter_notice(pmu, counters_given=False)
    assert not quiet_counter_notice(pmu, counters_given=True)
    denied = "counters absent: task_clock: not permitted (...)"
    assert not quiet_counter_notice(denied, counters_given=False)


def test_job_spec_carries_counters():
    assert parse_spec({}).counters is None and "counters" not in parse_spec({}).to_json()
    s = parse_spec({"counters": ["page-faults", "instructions"]})
    assert s.counters == ("page-faults", "instructions")
    assert s.to_json()["counters"] == ["page-faults", "instructions"]
    assert "counters" not in s.extra
    with pytest.raises(ProtocolError, match="spec.counters"):
        parse_spec({"counters": "page-faults"})
