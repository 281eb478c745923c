"""Untrusted input to the job server: the JSON limits (benchrun.jobs.safejson) and the registry
allow-list (benchrun.server.registries)."""

from __future__ import annotations

import json

import pytest

from benchrun.errors import ConfigError, ProtocolError
from benchrun.jobs import protocol as p
from benchrun.jobs.safejson import MAX_DEPTH, UnsafeJson, check_depth, dumps, loads
from benchrun.server.registries import RegistryPolicy


def nested(n: int) -> str:
    return "[" * n + "]" * n


def test_depth_limit_is_exact():
    assert loads(nested(MAX_DEPTH)) == json.loads(nested(MAX_DEPTH))
    with pytest.raises(UnsafeJson, match="deeper than 64"):
        loads(nested(MAX_DEPTH + 1))
    with pytest.raises(UnsafeJson):
        loads('{"a":' * 100_000)  # unterminated too: refused before the parser recurses
    with pytest.raises(UnsafeJson):
        loads(nested(1_000_000))


def test_brackets_inside_strings_do_not_count():
    text = json.dumps({"stdout": "[" * 10_000 + '\\"{' * 1000, "x": [[["ok"]]]})
    check_depth(text)
    assert loads(text)["x"] == [[["ok"]]]
    # An escaped quote does not end the string: the brackets after it are still inside.
    assert loads(json.dumps(['a\\"' + "[" * 100]))


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400", "-1e309",
                                    "1" + "0" * 400, str(2**63), str(-(2**63) - 1)])
def test_numbers_must_be_finite_and_in_range(number):
    with pytest.raises(UnsafeJson):
        loads('{"v": %s}' % number)


def test_numbers_in_range_pass():
    doc = loads('{"a": %d, "b": %d, "c": 1.5e308, "d": -0.0, "e": 1e-400}' % (2**63 - 1, -(2**63)))
    assert doc["a"] == 2**63 - 1 and doc["c"] == 1.5e308 and doc["e"] == 0.0


def test_invalid_json_is_a_protocol_error_not_unsafe():
    with pytest.raises(ProtocolError) as e:
        loads("{not json")
    assert not isinstance(e.value, UnsafeJson)
    with pytest.raises(ProtocolError):
        loads(b"\xff\xfe")


def test_output_is_standard_json():
    with pytest.raises(ValueError):
        dumps({"t": float("nan")})
    with pytest.raises(ValueError):
        p.dumps({"event": "ack", "x": float("inf")})


def test_runner_message_timings_are_checked():
    job = "00000000-0000-4000-8000-000000000000"
    ok = p.parse_runner_message(json.dumps(p.completed(job, [], timings={"pull": 1.5})), 1 << 20)
    assert ok["timings"] == {"pull": 1.5}
    for bad in ({"pull": -1}, {"pull": 1e8}, {"pull": "1"}, {"pull": True}, [1],
                {f"k{i}": 1 for i in range(17)}):
        msg = json.dumps({**p.completed(job, []), "timings": bad})
        with pytest.raises(UnsafeJson, match="timings"):
            p.parse_runner_message(msg, 1 << 20)
    with pytest.raises(ProtocolError, match="claim"):
        p.parse_runner_message(json.dumps({**p.completed(job, []), "claim": "x"}), 1 << 20)


HOST_STATE = {"tuned": False, "differs": ["aslr", "thp_enabled"], "cpus": [1], "journal": True,
              "noise": {"score": 0.012, "measured_at": 1.7e9, "age_s": 3600.0}}


def test_runner_message_host_state_is_checked():
    job = "00000000-0000-4000-8000-000000000000"
    for built in (p.completed(job, [], timings={"pull": 1.5}, host_state=HOST_STATE),
                  p.failed(job, [], "boom", host_state=HOST_STATE)):
        assert built["host_state"] == HOST_STATE
        ok = p.parse_runner_message(p.dumps(built), 1 << 20)
        assert ok["host_state"] == HOST_STATE and ok["event"] == built["event"]
    assert "host_state" not in p.completed(job, [])  # upstream's shape when there is none
    # Exactly at the limit passes; one byte more does not.
    pad = {"tuned": True, "x": ""}
    pad["x"] = "a" * (p.MAX_HOST_STATE - len(p.dumps(pad).encode()))
    assert len(p.dumps(pad).encode()) == p.MAX_HOST_STATE
    p.parse_runner_message(p.dumps(p.completed(job, [], host_state=pad)), 1 << 20)
    big = {**pad, "x": pad["x"] + "a"}
    for event in ("completed", "failed"):
        for bad, why in (([1], "object"), ("tuned", "object"), (1, "object"), (big, "bytes")):
            msg = {**(p.completed(job, []) if event == "completed" else p.failed(job, [], "e")),
                   "host_state": bad}
            with pytest.raises(UnsafeJson, match=f"{event}.host_state: .*{why}"):
                p.parse_runner_message(p.dumps(msg), 1 << 20)
    # Multi-byte characters count as bytes, as the frame limit does.
    wide = {"x": "é" * (p.MAX_HOST_STATE // 2)}
    with pytest.raises(UnsafeJson, match="host_state"):
        p.parse_runner_message(p.dumps(p.completed(job, [], host_state=wide)), 1 << 20)


def test_registry_policy():
    pol = RegistryPolicy.parse(["registry.example.com", "team-a=ghcr.io:443", "Docker.io"])
    assert pol.allows("id-1", "anything", "registry.example.com")
    assert pol.allows("id-1", "anything", "REGISTRY.example.com")
    assert not pol.allows("id-1", "anything", "registry.example.com:5000")
    assert pol.allows("id-2", "team-a", "ghcr.io:443")
    assert pol.allows("id-2", "x", "index.docker.io")
    assert not pol.allows("id-3", "team-b", "ghcr.io:443")
    assert not RegistryPolicy().allows("id", "p", "127.0.0.1:5000")  # the default: none
    for bad in ("", "http://x", "x/y", "a=", "=x", "user@host", "host:port"):
        with pytest.raises(ConfigError):
            RegistryPolicy.parse([bad])
