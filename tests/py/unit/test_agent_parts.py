"""The agent's pure parts, without root or a server: configuration and key loading, backoff,
the job -> run mapping, exit codes and the message-size cut."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from benchrun.agent import config as cfg
from benchrun.agent import executor, results
from benchrun.agent.connection import Backoff
from benchrun.errors import ConfigError
from benchrun.jobs import protocol
from benchrun.runner import Result

FIXTURES = Path(__file__).parent.parent / "fixtures" / "bencher"


def claimed(**spec_and_config):
    msg = json.loads((FIXTURES / "server_job_minimal.json").read_text())
    for k, v in spec_and_config.items():
        where, _, key = k.partition("__")
        msg[where][key] = v
    return protocol.parse_server_message(json.dumps(msg), 1 << 20)["claimed"]


def test_channel_url():
    assert cfg.channel_url("http://h:8080", "box1") == "ws://h:8080/v0/runners/box1/channel"
    assert cfg.channel_url("https://h/api/", "a b") == "wss://h/api/v0/runners/a%20b/channel"
    with pytest.raises(ConfigError):
        cfg.channel_url("ftp://h", "r")


def test_key_from_file_or_env_never_in_repr(tmp_path):
    f = tmp_path / "key"
    f.write_text("bencher_runner_abc\n")
    assert cfg.load_key(str(f), {}) == "bencher_runner_abc"
    assert cfg.load_key(None, {cfg.KEY_ENV: "k2"}) == "k2"
    with pytest.raises(ConfigError, match="--key-file"):
        cfg.load_key(None, {})
    with pytest.raises(ConfigError, match="read key file"):
        cfg.load_key(str(tmp_path / "none"), {})
    c = cfg.make_config("http://h", "box1", "s3cret-key")
    assert "s3cret-key" not in repr(c)


@pytest.mark.parametrize("bad", [{"poll_timeout": 0}, {"poll_timeout": 901}, {"backend": "x"},
                                 {"max_message": 10}, {"ack_timeout": 0}, {"once_wait": 0}])
def test_make_config_rejects(bad):
    with pytest.raises(ConfigError):
        cfg.make_config("http://h", "box1", "k", **bad)


def test_backoff_doubles_to_the_cap_with_jitter():
    lo = Backoff(0.5, 30, rng=lambda: 0.0)
    hi = Backoff(0.5, 30, rng=lambda: 1.0)
    assert [lo.next() for _ in range(3)] == [0.25, 0.5, 1.0]
    assert [hi.next() for _ in range(9)][-1] == 45.0  # 30 s * 1.5
    hi.reset()
    assert hi.next() == 0.75


def test_plan_maps_the_spec():
    p = executor.plan(claimed(), default_backend="sandbox", insecure_registries=(),
                      available_cpus=4)
    assert p.backend == "sandbox"
    assert p.reference == ("registry.bencher.dev/b2e5a8f0-1c3d-4e5f-8a9b-0c1d2e3f4a5b@sha256:"
                           "5b0bcabd1ed22e9fb1310cf6c2dec7cdef19f0ad69efa1f392e94a4333501270")
    assert p.pull_kwargs == {"insecure_registries": [],
                             "registry_token": "eyJhbGciOiJIUzI1NiJ9.e30.c2ln"}
    vm = executor.plan(claimed(spec__sandbox="firecracker"), default_backend="sandbox",
                       insecure_registries=(), available_cpus=4)
    assert vm.backend == "vm"
    http = executor.plan(claimed(config__registry="http://10.0.0.1:5000"), default_backend="vm",
                         insecure_registries=("a:1",), available_cpus=4)
    assert http.backend == "vm"
    assert http.pull_kwargs["insecure_registries"] == ["a:1", "10.0.0.1:5000"]
    for job, why in [(claimed(spec__network=True), "network"),
                     (claimed(spec__sandbox="gvisor"), "sandbox"),
                     (claimed(spec__cpu=8), "8 CPUs; this runner has 4")]:
        with pytest.raises(ConfigError, match=why):
            executor.plan(job, default_backend="sandbox", insecure_registries=(), available_cpus=4)


def test_image_reference_pins_config_image():
    d = "sha256:" + "5b0bcabd1ed22e9fb1310cf6c2dec7cdef19f0ad69efa1f392e94a4333501270"
    assert executor.image_reference(claimed(config__image="h:5000/app:1")) == f"h:5000/app@{d}"
    assert executor.image_reference(claimed(config__image=f"h/app@{d}")) == f"h/app@{d}"
    with pytest.raises(ConfigError, match="names digest"):
        executor.image_reference(claimed(config__image="h/app@sha256:" + "0" * 64))


def test_refused_job_fails_without_running():
    called = []
    out = executor.JobExecutor().run(claimed(spec__network=True), threading.Event(),
                                     lambda: called.append(1))
    assert out.event == "failed" and "network" in out.error and called == []
    assert set(out.message("0f8fad5b-d9cb-469f-a165-70867728950e")) == \
        {"event", "job", "results", "error", "timings"}


def result(**kw) -> Result:
    base = dict(exit_code=0, signal=0, stdout=b"", stderr=b"", stdout_truncated=False,
                stderr_truncated=False, outputs={}, missing_outputs={}, timed_out=False,
                oom_killed=False, image_digest="sha256:" + "0" * 64, backend="sandbox", start_time=0.0,
                end_time=0.0)
    base.update(kw)
    return Result(**base)


def test_exit_codes_and_iteration_output():
    assert results.exit_code(result(exit_code=3)) == 3
    assert results.exit_code(result(exit_code=-1, signal=9, timed_out=True)) == 124
    assert results.exit_code(result(exit_code=-1, signal=9, oom_killed=True)) == 126
    assert results.exit_code(result(exit_code=-1, signal=15)) == 143
    it = results.iteration_output(result(stdout=b"a\xff", outputs={"/o": b"x"}))
    assert it == {"exit_code": 0, "stdout": "a\ufffd", "output": {"/o": "x"}}


def test_fit_cuts_the_longest_texts_until_the_message_fits():
    big = protocol.completed("0f8fad5b-d9cb-469f-a165-70867728950e", [
        protocol.iteration_output(0, "s" * 3_000_000, "e" * 10, {"/a": "o" * 1_500_000}),
        protocol.iteration_output(0, "small")])
    same, cut = results.fit(big, 8 << 20)
    assert same is big and not cut
    fitted, cut = results.fit(big, 1 << 20)
    assert cut and results.message_size(fitted) <= 1 << 20
    assert results.TRUNCATED_MARK in fitted["results"][0]["stdout"]
    assert fitted["results"][1] == {"exit_code": 0, "stdout": "small"}
    assert fitted["results"][0]["stderr"] == "e" * 10
    assert len(big["results"][0]["stdout"]) == 3_000_000  # the original is untouched
    # thousands of iterations: the texts cannot make room, the results go
    many = protocol.completed("0f8fad5b-d9cb-469f-a165-70867728950e",
                              [protocol.iteration_output(0)] * 100_000)
    fitted, cut = results.fit(many, 1 << 20)
    assert cut and fitted["results"] == []


def test_iteration_text_is_cut_before_it_is_decoded_whole():
    """Finding 6: 8 MiB of invalid bytes with a 1 MiB message limit become at most 1 MiB of text
    (not 8 Mi U+FFFD characters, 24 MiB of UTF-8), and short texts are kept whole."""
    from benchrun.agent import results as agent_results

    limit = 1 << 20
    text = agent_results._text(b"\xff" * (8 << 20), limit)
    assert len(text.encode("utf-8")) <= limit + len(agent_results.TRUNCATED_MARK)
    assert text.startswith("\ufffd" * 1000) and text.endswith(agent_results.TRUNCATED_MARK)
    assert agent_results._text("é✓".encode() * 10, limit) == "é✓" * 10
    assert agent_results._text(b"ok\xff", None) == "ok\ufffd"
    cut = agent_results._text("é".encode() * limit, limit)  # cut inside no character
    assert cut.rstrip(agent_results.TRUNCATED_MARK).strip("é") == ""


def test_plan_maps_instructions():
    p = executor.plan(claimed(spec__instructions="cache"), default_backend="sandbox",
                      insecure_registries=(), available_cpus=4)
    assert p.instructions == "cache"
    assert executor.plan(claimed(), default_backend="sandbox", insecure_registries=(),
                         available_cpus=4).instructions == ""
    with pytest.raises(ConfigError, match="spec instructions 'cycles'"):
        executor.plan(claimed(spec__instructions="cycles"), default_backend="sandbox",
                      insecure_registries=(), available_cpus=4)


def test_plan_maps_init_and_stop_timeout():
    p = executor.plan(claimed(spec__init=True, spec__stop_timeout=3), default_backend="sandbox",
                      insecure_registries=(), available_cpus=4)
    assert (p.init, p.stop_timeout) == (True, 3.0)
    p = executor.plan(claimed(), default_backend="sandbox", insecure_registries=(),
                      available_cpus=4)
    assert (p.init, p.stop_timeout) == (False, None)
    with pytest.raises(ConfigError, match="spec init 'yes'"):
        executor.plan(claimed(spec__init="yes"), default_backend="sandbox",
                      insecure_registries=(), available_cpus=4)
    with pytest.raises(ConfigError, match="spec stop_timeout"):
        executor.plan(claimed(spec__stop_timeout="10s"), default_backend="sandbox",
                      insecure_registries=(), available_cpus=4)
