"""benchrun.run()'s option handling, the `benchrun run` command line and the Result document —
all without root and without running anything (the native run is replaced by a fake; the native
RunSpec and its validation are the real ones)."""

from __future__ import annotations

import base64
import importlib
import inspect
import io
import json
import os
import re
import sys
import types
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pytest

import benchrun
from benchrun import _core as real_core
from benchrun.cli import main as cli
from benchrun.errors import ConfigError, ImageNotFound
from benchrun.options import (
    OPTIONS,
    parse_env,
    parse_env_file,
    parse_memory,
    parse_size,
    select_cpus,
)
from benchrun.runner import DEFAULT_MAX_OUTPUT_BYTES, Metric, Result, make_spec

# The run API lives in benchrun.runner (benchrun.run is the function).
run_mod = importlib.import_module("benchrun.runner")

MiB = 1 << 20
DIGEST = "sha256:" + "a" * 64

# Native RunSpec fields that no user-facing option sets today (deliberately C++-only).
CPP_ONLY_OPTIONS = {"max_file_bytes", "max_files", "nofile", "hostname", "kernel_modules"}


# --- memory and sizes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, want",
    [
        ("512m", 512 * MiB),
        ("512M", 512 * MiB),
        ("1g", 1 << 30),
        ("1G", 1 << 30),
        ("1.5g", 3 << 29),
        ("512MiB", 512 * MiB),
        ("512mb", 512 * MiB),
        ("1 g", 1 << 30),
        ("6m", 6 * MiB),
        ("7340032", 7 * MiB),
        ("8192k", 8 * MiB),
        ("1t", 1 << 40),
        (64 * MiB, 64 * MiB),
    ],
)
def test_parse_memory(text, want):
    assert parse_memory(text) == want


@pytest.mark.parametrize(
    "bad", ["", "12x", "m", "-1m", "1.g", "1gg", "0x10m", "one", -1, True, 1.5, None]
)
def test_parse_memory_rejects(bad):
    with pytest.raises(ConfigError, match="memory"):
        parse_memory(bad)


@pytest.mark.parametrize("small", ["512", "5m", 0, 6 * MiB - 1])
def test_memory_below_the_minimum_is_refused(small):
    # The minimum (6m, so "512" meant as megabytes fails loudly) is RunSpec.validate()'s now.
    with pytest.raises(ConfigError, match=r"memory: .*the minimum is 6m"):
        make_spec("img", memory=small)
    assert make_spec("img", memory="6m").core.memory == 6 * MiB


def test_limits_default_when_not_given_and_unlimited_only_when_asked():
    # None: the native default (docs/security.md); "unlimited": no limit, for each limit.
    spec = make_spec("img")
    assert spec.core.memory is None and spec.core.pids_limit is None and spec.core.disk is None
    spec = make_spec("img", memory="unlimited", pids_limit="Unlimited", disk="unlimited")
    assert spec.core.memory == spec.core.pids_limit == spec.core.disk == real_core.UNLIMITED
    assert make_spec("img", disk="1g", pids_limit=64).core.disk == 1 << 30
    with pytest.raises(ConfigError, match=r"disk: .*the minimum is 16m"):
        make_spec("img", disk="1m")
    with pytest.raises(ConfigError, match="pids_limit"):
        make_spec("img", pids_limit="lots")


def test_parse_size_allows_small_and_zero():
    assert parse_size("0") == 0 and parse_size("1k") == 1024 and parse_size(5) == 5
    with pytest.raises(ConfigError):
        parse_size(-1)


# --- environment ------------------------------------------------------------------------------


def test_parse_env_dict_and_list():
    assert parse_env(None) == ()
    assert parse_env({"A": "1", "B": ""}) == ("A=1", "B=")
    assert parse_env(["A=1", "B=x=y", "C="]) == ("A=1", "B=x=y", "C=")
    assert parse_env(("A=1", "A=2")) == ("A=2",)  # later wins, first position kept


def test_parse_env_bare_name_takes_callers_value():
    caller = {"HOME": "/home/me", "SECRET": "s"}
    assert parse_env(["HOME", "UNSET", "X=1"], caller_env=caller) == ("HOME=/home/me", "X=1")


def test_parse_env_bare_name_defaults_to_os_environ(monkeypatch):
    monkeypatch.setenv("BENCHRUN_UNIT_ENV", "v")
    monkeypatch.delenv("BENCHRUN_UNIT_UNSET", raising=False)
    assert parse_env(["BENCHRUN_UNIT_ENV", "BENCHRUN_UNIT_UNSET"]) == ("BENCHRUN_UNIT_ENV=v",)


@pytest.mark.parametrize(
    "bad", ["A=1", ["=x"], [""], [1], {"": "x"}, {"A=B": "x"}, {"A": 1}, ["A=\0"], {"A": "a\0"}]
)
def test_parse_env_rejects(bad):
    with pytest.raises(ConfigError):
        parse_env(bad)


def test_parse_env_file(tmp_path):
    f = tmp_path / "env"
    f.write_text(
        "# a comment\n\n   \nA=1\n  # indented comment\nB=has spaces = and equals \n"
        'EMPTY=\nFROM_CALLER\nNOT_SET\n  LEADING=x\nQUOTED="kept"\n'
    )
    got = parse_env_file(f, caller_env={"FROM_CALLER": "c"})
    assert got == [
        "A=1",
        "B=has spaces = and equals ",
        "EMPTY=",
        "FROM_CALLER=c",
        "LEADING=x",
        'QUOTED="kept"',
    ]


def test_parse_env_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="read env file"):
        parse_env_file(tmp_path / "missing")
    with pytest.raises(ConfigError, match="read env file"):
        parse_env_file(tmp_path)  # a directory
    bad = tmp_path / "bad"
    bad.write_text("GOOD=1\nBAD NAME=2\n")
    with pytest.raises(ConfigError, match="line 2"):
        parse_env_file(bad)
    bad.write_bytes(b"A=\xff\n")
    with pytest.raises(ConfigError, match="UTF-8"):
        parse_env_file(bad)


# --- CPUs -------------------------------------------------------------------------------------


def test_cpu_options():
    c = make_spec("img", store="/s", cpuset_cpus="0", cpu_wait=2).core
    assert c.cpus == [0] and c.cpu_count is None and c.cpu_wait == 2.0
    assert make_spec("img", store="/s", cpuset_cpus=[1, 0]).core.cpus == [1, 0]
    for bad in ("x", "", "3-1"):
        with pytest.raises(ConfigError, match="cpuset_cpus"):
            make_spec("img", store="/s", cpuset_cpus=bad)
    with pytest.raises(ConfigError, match="not both"):
        make_spec("img", store="/s", cpuset_cpus="0", vcpus=1)
    with pytest.raises(ConfigError, match="CPUs are available"):
        make_spec("img", store="/s", vcpus=100000)


def test_select_cpus():
    assert select_cpus(None) == ()
    assert select_cpus(2, available={7, 3, 1, 5}) == (1, 3)
    assert select_cpus(4, available=[7, 3, 1, 5]) == (1, 3, 5, 7)
    assert select_cpus(1) == (min(os.sched_getaffinity(0)),)
    with pytest.raises(ConfigError, match="only 2 CPUs are available"):
        select_cpus(3, available={0, 1})
    for bad in (0, -1, 1.0, True):
        with pytest.raises(ConfigError):
            select_cpus(bad, available={0, 1})


# --- the option table, the native RunSpec and the API agree ------------------------------------


def test_backends_listed_once():
    names = ["sandbox", "vm", "runc", "runsc", "crun", "oci"]
    assert benchrun.backends() == names == list(real_core.backends())


def test_every_option_sets_a_native_runspec_field():
    native = {name for name, *_ in real_core.RunSpec.OPTIONS}
    spec = real_core.RunSpec()
    for o in OPTIONS:
        assert hasattr(spec, o.attr), f"option {o.name}: _core.RunSpec has no {o.attr!r}"
        assert o.attr in native, o.name
    # Every native option is either reachable from the Python table or deliberately C++-only:
    # a new native option must be decided on (added to OPTIONS, or to this set).
    assert native - {o.attr for o in OPTIONS} == CPP_ONLY_OPTIONS


def test_run_and_make_spec_signatures_list_every_option():
    for fn in (benchrun.run, make_spec):
        params = inspect.signature(fn).parameters
        assert {o.name for o in OPTIONS} <= set(params), fn.__name__
        assert {"image", "store", "pull"} <= set(params)
    for o in OPTIONS:
        assert f"``{o.name}``" in (benchrun.run.__doc__ or ""), o.name


# --- make_spec: everything checked, nothing done ----------------------------------------------


def test_make_spec_defaults_and_conversions(tmp_path):
    s = make_spec(
        "img",
        "sh -c 'echo a b'",
        store=tmp_path,
        memory="64m",
        timeout=5,
        env={"A": "1"},
        outputs=["/tmp/a", "/tmp/b", "/tmp/a"],
        user=65534,
        max_output_bytes="1m",
        vcpus=1,
    )
    c = s.core
    assert isinstance(c, real_core.RunSpec)
    assert c.command == ["sh", "-c", "echo a b"]
    assert c.entrypoint is None  # not given
    assert c.memory == 64 * MiB and c.timeout == 5.0 and c.env == ["A=1"]
    assert c.outputs == ["/tmp/a", "/tmp/b"] and c.user == "65534"  # duplicates dropped
    assert c.max_output_bytes == MiB == s.max_output_bytes and c.cpu_count == 1 and c.cpus == []
    assert s.store == str(tmp_path) and c.network is False and s.pull == "missing"
    assert s.backend == c.backend == "sandbox"
    assert s.options["memory"] == "64m" and s.options["command"] == "sh -c 'echo a b'"  # as given
    d = make_spec("img", store=tmp_path)
    assert d.options == {}
    dc = d.core
    assert dc.command is None and dc.timeout == 0.0 and dc.cpus == [] and dc.memory is None
    assert dc.max_output_bytes == DEFAULT_MAX_OUTPUT_BYTES == 64 * MiB
    assert dc.backend == "sandbox" and dc.network is False and dc.accel == "auto"
    assert dc.vm_memory is None and dc.kernel == "" and dc.outputs == [] and dc.env == []


def test_make_spec_env_bare_name_takes_callers_value(monkeypatch):
    # A bare K takes benchrun's own value of K (docker run -e K), whatever the name; "e" and "nv"
    # once went wrong when the option's name was passed where the caller's environment belongs.
    for name in ("B", "e", "nv"):
        monkeypatch.setenv(name, f"v-{name}")
    monkeypatch.delenv("BENCHRUN_UNIT_UNSET", raising=False)
    s = make_spec("img", env=["A=1", "B", "e", "nv", "BENCHRUN_UNIT_UNSET"])
    assert s.core.env == ["A=1", "B=v-B", "e=v-e", "nv=v-nv"]


def test_make_spec_entrypoint_given_empty():
    assert make_spec("img", entrypoint="").core.entrypoint == []
    assert make_spec("img", entrypoint=[]).core.entrypoint == []
    assert make_spec("img", entrypoint=["/bin/x", "a b"]).core.entrypoint == ["/bin/x", "a b"]
    assert make_spec("img", command=[]).core.command == []


def test_make_spec_vm_options(tmp_path):
    kernel = tmp_path / "bzImage"
    kernel.write_bytes(b"k")
    s = make_spec("img", backend="vm", accel="tcg", kernel=kernel, vm_memory="512m")
    assert s.backend == "vm" and s.core.accel == "tcg" and s.core.kernel == str(kernel)
    assert s.core.vm_memory == 512 * MiB


def test_spec_with_options_checks_again():
    s = make_spec("img", memory="64m", timeout=5)
    t = s.with_options(memory="128m", timeout=None)
    assert t.core.memory == 128 * MiB and t.core.timeout == 0.0 and "timeout" not in t.options
    assert s.core.memory == 64 * MiB and s.core.timeout == 5.0  # unchanged
    with pytest.raises(ConfigError, match="timeout"):
        s.with_options(timeout=-1)


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"accel": "kvm"}, r"accel: applies to backend 'vm' only"),
        ({"kernel": "/nonexistent/bzImage"}, r"kernel"),
        ({"vm_memory": "1g"}, r"vm_memory: applies to backend 'vm' only"),
        ({"backend": "vm", "accel": "hvf"}, r"accel 'hvf': unknown"),
        ({"backend": "vm", "kernel": "/nonexistent/bzImage"}, r"kernel '/nonexistent/bzImage': no such"),
        ({"backend": "vm", "vm_memory": "lots"}, r"vm_memory"),
        ({"backend": "vm", "vm_memory": "32m"}, r"vm_memory: .*at least 64m"),
        ({"backend": "docker"}, r"backend 'docker': unknown"),
        ({"network": "host"}, r"network 'host': only 'none' is supported"),
        ({"network": "bridge"}, r"only 'none' is supported"),
        ({"timeout": 0}, r"timeout"),
        ({"timeout": -1}, r"timeout"),
        ({"timeout": float("nan")}, r"timeout"),
        ({"timeout": float("inf")}, r"timeout"),
        ({"timeout": "abc"}, r"timeout"),
        ({"timeout": True}, r"timeout"),
        ({"memory": "lots"}, r"memory"),
        ({"pids_limit": 0}, r"pids_limit"),
        ({"pids_limit": 1.5}, r"pids_limit"),
        ({"cpu_quota": 0}, r"cpu_quota"),
        ({"cpu_quota": -1.5}, r"cpu_quota"),
        ({"cpu_quota": float("inf")}, r"cpu_quota"),
        ({"vcpus": 0}, r"vcpus"),
        ({"vcpus": 10**6}, r"CPUs are available"),
        ({"outputs": "/tmp/x"}, r"not a single string"),
        ({"outputs": ["tmp/x"]}, r"outputs: .*absolute"),
        ({"outputs": ["/a\0b"]}, r"outputs: .*NUL"),
        ({"workdir": "relative"}, r"workdir: .*absolute"),
        ({"user": ""}, r"user"),
        ({"user": True}, r"user"),
        ({"command": [1]}, r"command"),
        ({"entrypoint": ["a\0b"]}, r"entrypoint: .*NUL"),
        ({"command": "unterminated 'quote"}, r"command"),
        ({"env": "A=1"}, r"env"),
        ({"max_output_bytes": -1}, r"max_output_bytes"),
    ],
)
def test_make_spec_rejects(kw, match):
    with pytest.raises(ConfigError, match=match):
        make_spec("img", **kw)


def test_make_spec_unknown_keyword():
    with pytest.raises(TypeError, match="colour"):
        make_spec("img", colour="red")
    # pull's own options are accepted and kept for the pull.
    s = make_spec("img", platform="linux/arm64", insecure_registries=["h:5000"], max_parallel=2)
    assert s.pull_kwargs == {
        "platform": "linux/arm64",
        "insecure_registries": ["h:5000"],
        "max_parallel": 2,
    }


# --- run() with the native side replaced ------------------------------------------------------


def core_result(**over: Any) -> dict[str, Any]:
    """What _core.run returns: metrics as name -> (value, unit), facts, no fixed figures."""
    d: dict[str, Any] = dict(
        exit_code=0,
        signal=0,
        stdout=b"out",
        stderr=b"err",
        stdout_truncated=False,
        stderr_truncated=False,
        outputs={"/tmp/o": b"x"},
        missing_outputs={},
        timed_out=False,
        oom_killed=False,
        metrics={
            "wall_time": (0.5, "s"),
            "cpu_user": (0.25, "s"),
            "cpu_system": (0.125, "s"),
            "peak_memory": (4096, "bytes"),
        },
        facts={},
        start_time=1000.0,
        end_time=1000.5,
        phases={"prepare": 0.01, "start": 0.02, "run": 0.5, "collect": 0.03},
        image_digest=DIGEST,
        backend="sandbox",
    )
    d.update(over)
    return d


def vm_core_result(**over: Any) -> dict[str, Any]:
    metrics = dict(core_result()["metrics"])
    metrics.update(
        boot_time=(0.75, "s"),
        guest_boot_time=(0.5, "s"),
        rootfs_time=(0.125, "s"),
        vmm_cpu=(0.375, "s"),
        vmm_peak_memory=(64 * MiB, "bytes"),
    )
    facts = dict(kernel_release="6.1.0-cloud", accel="kvm", vcpus=1, memory_mib=1024,
                 rootfs_cached=True)
    return core_result(**{"backend": "vm", "metrics": metrics, "facts": facts, **over})


class FakeNative:
    """Stands in for benchrun._core.load_run_image, benchrun._core.run and benchrun.pull; the
    native RunSpec (and so every validation) stays the real one."""

    def __init__(
        self,
        cached: bool = True,
        result: Optional[dict[str, Any]] = None,
        results: Optional[Iterator[Optional[dict[str, Any]]]] = None,
    ) -> None:
        self.cached = cached
        self.result = result or core_result()
        self.results = results  # one per run; None in it: the run raises SandboxError
        self.calls: list[dict[str, Any]] = []
        self.loads: list[str] = []
        self.loaded: list[Any] = []
        self.pulls: list[tuple[str, dict[str, Any]]] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> "FakeNative":
        fake_core = types.SimpleNamespace(
            run=self.run,
            load_run_image=self.load_run_image,
            RunSpec=real_core.RunSpec,
            backends=real_core.backends,
        )
        monkeypatch.setattr(run_mod, "_core", fake_core)
        monkeypatch.setattr(run_mod._image, "pull", self.pull)
        return self

    @property
    def anything_done(self) -> bool:
        return bool(self.calls or self.loads or self.pulls)

    def run(self, **kw: Any) -> dict[str, Any]:
        if self.results is not None:
            r = next(self.results)
            if r is None:
                raise benchrun.SandboxError("clone: Operation not permitted", stage="clone")
            self.calls.append(kw)
            return dict(r)
        self.calls.append(kw)
        return dict(self.result)

    def load_run_image(self, *, store: str, reference: str) -> Any:
        self.loads.append(reference)
        if not self.cached:
            raise ImageNotFound(f"image '{reference}' is not in the local store")
        image = types.SimpleNamespace(digest=DIGEST, chain_id="sha256:" + "c" * 64,
                                      rootfs=Path("/x"))
        self.loaded.append(image)
        return image

    def pull(self, ref: str, *, store: str, **kw: Any) -> Any:
        self.pulls.append((ref, kw))
        self.cached = True
        return types.SimpleNamespace(digest=DIGEST, rootfs=Path("/x"))


def test_run_passes_options_through(monkeypatch, tmp_path):
    fake = FakeNative().install(monkeypatch)
    r = benchrun.run(
        "img",
        ["echo", "hi"],
        store=tmp_path,
        env={"A": "1"},
        memory="32m",
        pids_limit=64,
        vcpus=1,
        timeout=5,
        outputs=["/tmp/o"],
        workdir="/w",
        user="nobody",
        cpu_quota=0.5,
        max_output_bytes=MiB,
    )
    (kw,) = fake.calls
    (image,) = fake.loaded
    assert fake.loads == ["img"]
    assert kw["image"] is image and kw["image"].digest == DIGEST  # the image loaded once
    spec = kw["spec"]
    assert isinstance(spec, real_core.RunSpec)
    assert spec.command == ["echo", "hi"] and spec.entrypoint is None
    assert spec.env == ["A=1"] and spec.memory == 32 * MiB and spec.pids_limit == 64
    assert spec.cpu_count == 1 and spec.cpus == [] and spec.timeout == 5.0
    assert spec.outputs == ["/tmp/o"] and spec.workdir == "/w" and spec.user == "nobody"
    assert spec.cpu_quota == 0.5 and spec.max_output_bytes == MiB
    assert spec.network is False and spec.backend == "sandbox"
    assert kw["store"] == str(tmp_path) and kw["init_binary"] == ""
    assert fake.pulls == []
    assert r.phases == {"pull": 0.0, "prepare": 0.01, "start": 0.02, "run": 0.5, "collect": 0.03}
    assert list(r.phases) == ["pull", "prepare", "start", "run", "collect"]
    assert r.stdout == b"out" and r.outputs == {"/tmp/o": b"x"} and r.ok
    assert r.wall_time == 0.5 and r.cpu_user == 0.25 and r.cpu_system == 0.125
    assert r.peak_memory == 4096 and isinstance(r.peak_memory, int)
    assert r.metrics["wall_time"] == Metric(0.5, "s") and r.vm is None


def test_run_entrypoint_none_vs_empty(monkeypatch):
    fake = FakeNative().install(monkeypatch)
    benchrun.run("img")
    benchrun.run("img", entrypoint="")
    benchrun.run("img", ["x"], entrypoint=[])
    assert [(c["spec"].entrypoint, c["spec"].command) for c in fake.calls] == [
        (None, None),
        ([], None),
        ([], ["x"]),
    ]


def test_run_pulls_a_missing_image(monkeypatch):
    fake = FakeNative(cached=False).install(monkeypatch)
    r = benchrun.run("img", platform="linux/amd64")
    assert fake.pulls == [("img", {"platform": "linux/amd64"})]
    assert fake.loads == ["img", DIGEST]  # not cached; after the pull, by the pulled digest
    assert fake.calls[0]["image"] is fake.loaded[0]
    assert r.phases["pull"] > 0
    fake.cached = False
    with pytest.raises(ImageNotFound, match="pull policy 'never'"):
        benchrun.run("img", pull="never")
    assert len(fake.pulls) == 1 and len(fake.calls) == 1


def test_pull_policies(monkeypatch):
    fake = FakeNative(cached=True).install(monkeypatch)
    benchrun.run("img")  # missing: cached, so no pull
    assert fake.pulls == []
    benchrun.run("img", pull="always")  # always: the registry is asked even when cached
    assert [r for r, _ in fake.pulls] == ["img"]
    for bad in (True, False, "sometimes", None):
        with pytest.raises(ConfigError, match="always, missing, never"):
            make_spec("img", pull=bad)


def test_run_validates_before_any_work(monkeypatch):
    fake = FakeNative(cached=False).install(monkeypatch)
    for kw in (
        {"backend": "vm", "accel": "x"},
        {"accel": "kvm"},
        {"memory": "1x"},
        {"memory": "5m"},
        {"network": "host"},
        {"timeout": -5},
        {"workdir": "rel"},
        {"backend": "qemu"},
    ):
        with pytest.raises(ConfigError):
            benchrun.run("img", **kw)
    assert not fake.anything_done


def test_run_vm_result(monkeypatch):
    fake = FakeNative(result=vm_core_result()).install(monkeypatch)
    monkeypatch.setenv("BENCHRUN_GUEST_INIT", "/bin/sh")  # any file: the guest init's path
    r = benchrun.run("img", backend="vm", accel="kvm", vm_memory="1g")
    (kw,) = fake.calls
    assert kw["spec"].backend == "vm" and kw["spec"].accel == "kvm"
    assert kw["spec"].vm_memory == 1 << 30 and kw["init_binary"] == "/bin/sh"
    assert r.backend == "vm" and r.facts["accel"] == "kvm"
    assert set(r.facts["host_state"]) >= {"tuned", "differs", "cpus", "journal", "noise"}
    assert r.vm == {
        "kernel_release": "6.1.0-cloud",
        "accel": "kvm",
        "vcpus": 1,
        "memory_mib": 1024,
        "rootfs_cached": True,
        "boot_time": 0.75,
        "guest_boot_time": 0.5,
        "rootfs_time": 0.125,
        "vmm_cpu": 0.375,
        "vmm_peak_memory": 64 * MiB,
    }


# --- Result and its JSON document -------------------------------------------------------------


def make_result(core: Callable[..., dict[str, Any]] = core_result, **over: Any) -> Result:
    return Result._from_core(core(**over), 0.25)


def test_result_ok():
    assert make_result().ok
    assert not make_result(exit_code=1).ok
    assert not make_result(exit_code=-1, signal=9).ok
    assert not make_result(timed_out=True).ok
    assert not make_result(oom_killed=True).ok


def test_result_metrics():
    r = make_result()
    assert r.metrics == {
        "wall_time": Metric(0.5, "s"),
        "cpu_user": Metric(0.25, "s"),
        "cpu_system": Metric(0.125, "s"),
        "peak_memory": Metric(4096.0, "bytes"),
    }
    assert (r.wall_time, r.cpu_user, r.cpu_system, r.peak_memory) == (0.5, 0.25, 0.125, 4096)
    assert r.metric("instructions") == 0.0 and r.metric("instructions", -1.0) == -1.0
    assert r.facts == {} and r.vm is None
    with pytest.raises(AttributeError):
        r.wall_time = 1.0  # type: ignore[misc]


def test_result_json_round_trip_utf8():
    r = make_result(stdout="héllo ✓\n".encode(), outputs={"/tmp/a.json": b'{"a": 1}'})
    doc = json.loads(json.dumps(r.to_json()))
    assert doc["schema"] == 3 and doc["ok"] is True
    assert doc["stdout"] == "héllo ✓\n" and doc["stdout_base64"] is None
    assert doc["stderr"] == "err" and doc["stderr_base64"] is None
    assert doc["outputs"] == {"/tmp/a.json": '{"a": 1}'} and doc["outputs_base64"] == {}
    assert doc["phases"]["pull"] == 0.25
    assert doc["metrics"]["wall_time"] == {"value": 0.5, "unit": "s"}
    assert doc["metrics"]["peak_memory"] == {"value": 4096, "unit": "bytes"}
    # The four figures stay top-level, as in schema 1.
    assert (doc["wall_time"], doc["cpu_user"], doc["cpu_system"], doc["peak_memory"]) == (
        0.5, 0.25, 0.125, 4096)
    assert doc["facts"] == {} and "vm" not in doc
    assert Result.from_json(doc) == r


def test_result_json_round_trip_binary():
    blob = bytes(range(256))
    r = make_result(
        stdout=b"ok\xff\xfe",
        stderr=b"\x80",
        outputs={"/b": blob, "/t": b"text"},
        missing_outputs={"/m": "No such file or directory"},
        exit_code=-1,
        signal=9,
        timed_out=True,
        stdout_truncated=True,
    )
    doc = json.loads(json.dumps(r.to_json()))
    # Each stream and file once: text or base64, never both (issue 11, finding 6).
    assert doc["stdout"] is None and doc["stdout_base64"] == "b2v//g=="
    assert doc["stderr"] is None and doc["stderr_base64"] == "gA=="
    assert doc["outputs"] == {"/t": "text"} and set(doc["outputs_base64"]) == {"/b"}
    assert doc["ok"] is False and doc["signal"] == 9
    back = Result.from_json(doc)
    assert back == r and back.outputs["/b"] == blob and back.stdout == b"ok\xff\xfe"


def schema2_doc(r: Result) -> dict[str, Any]:
    """What benchrun wrote before finding 6: every stream and file as lossy text, and base64 too
    when not UTF-8."""
    doc = r.to_json()
    doc["schema"] = 2

    def lossy(data: bytes) -> str:
        return data.decode("utf-8", errors="replace")

    for k in ("stdout", "stderr"):
        data = getattr(r, k)
        doc[k] = lossy(data)
        doc[f"{k}_base64"] = None if data.decode("utf-8", "ignore").encode() == data else (
            base64.b64encode(data).decode())
    doc["outputs"] = {p: lossy(v) for p, v in r.outputs.items()}
    return json.loads(json.dumps(doc))


def test_result_from_json_reads_schema_2():
    r = make_result(stdout=b"ok\xff", stderr="é\n".encode(), outputs={"/b": b"\x80", "/t": b"t"})
    old = schema2_doc(r)
    assert old["stdout"] == "ok\ufffd" and old["stdout_base64"] == "b2v/"
    assert set(old["outputs"]) == {"/b", "/t"} and set(old["outputs_base64"]) == {"/b"}
    assert Result.from_json(old) == r


@pytest.mark.parametrize(
    "data,as_text",
    [
        (b"", True),
        ("héllo ✓ \U0001f600\n".encode() * 1000, True),
        (b'"\\\n\t' * 100, True),  # escapes that double the size: still text
        (b"\x1b[1mbold\x1b[0m\n", True),  # a few control characters: text
        (b"\x01" * 100, False),  # \u0001 is six bytes for one: base64
        (b"\xff" * 10, False),
        ("é".encode()[:1], False),  # cut in the middle of a character
    ],
    ids=["empty", "unicode", "escapes", "ansi", "controls", "invalid", "cut"],
)
def test_blob_json_text_or_base64_and_streamed_equal(data, as_text):
    r = make_result(stdout=data, outputs={"/f": data})
    doc = r.to_json()
    assert (doc["stdout"] is not None) == as_text and (doc["stdout_base64"] is None) == as_text
    buf = io.BytesIO()
    r.write_json(buf)
    assert json.loads(buf.getvalue()) == json.loads(json.dumps(doc))
    assert Result.from_json(json.loads(buf.getvalue())) == r
    empty = io.BytesIO()
    make_result(stdout=b"", outputs={"/f": b""}).write_json(empty)
    # Each copy of data (stdout, the file) costs at most twice its size (+ base64 padding).
    assert len(buf.getvalue()) - len(empty.getvalue()) <= 2 * (2 * len(data) + 4)


def test_blob_json_chunks_at_character_boundaries(monkeypatch):
    from benchrun import blobjson

    monkeypatch.setattr(blobjson, "CHUNK", 7)
    monkeypatch.setattr(blobjson, "_B64_CHUNK", 6)
    for data in ("aé✓\U0001f600\"x\n".encode() * 9, bytes(range(256)) * 3):
        r = make_result(stdout=data)
        buf = io.BytesIO()
        r.write_json(buf, prefix="  ")
        assert Result.from_json(json.loads(buf.getvalue())) == r


def test_result_json_round_trip_keeps_every_metric_and_fact():
    metrics = dict(vm_core_result()["metrics"], instructions=(123456789, "count"))
    r = make_result(vm_core_result, metrics=metrics)
    doc = json.loads(json.dumps(r.to_json()))
    assert doc["metrics"]["instructions"] == {"value": 123456789, "unit": "count"}
    assert doc["facts"]["kernel_release"] == "6.1.0-cloud"
    back = Result.from_json(doc)
    assert back == r
    assert back.metrics == r.metrics and back.metrics["instructions"] == Metric(123456789, "count")
    assert back.facts == r.facts and back.vm == r.vm


def schema1_doc(r: Result) -> dict[str, Any]:
    """The document benchrun wrote before metrics were a map (schema 1): the four figures
    top-level, backend "vm"'s facts and VMM figures in "vm", no "metrics"/"facts"."""
    doc = r.to_json()
    del doc["metrics"], doc["facts"]
    doc["schema"] = 1
    doc["vm"] = None
    if r.backend == "vm":
        doc["vm"] = {
            "kernel_release": "6.1.0-cloud",
            "accel": "kvm",
            "vcpus": 1,
            "memory_mib": 1024,
            "rootfs_cached": True,
            "boot_time": 0.75,
            "guest_boot_time": 0.5,
            "rootfs_time": 0.125,
            "vmm_cpu": 0.375,
            "vmm_peak_memory": 64 * MiB,
        }
    return json.loads(json.dumps(doc))


@pytest.mark.parametrize("core", [core_result, vm_core_result])
def test_result_from_json_reads_schema_1(core):
    r = make_result(core)
    old = schema1_doc(r)
    assert "metrics" not in old and old["schema"] == 1
    back = Result.from_json(old)
    assert back.metrics == r.metrics and back.facts == r.facts and back.vm == r.vm
    assert back == r
    assert (back.wall_time, back.cpu_user, back.cpu_system, back.peak_memory) == (
        0.5, 0.25, 0.125, 4096)


def test_result_json_schema_checked():
    doc = make_result().to_json()
    for bad in (4, 0, None, "3"):
        doc["schema"] = bad
        with pytest.raises(ConfigError, match="schema"):
            Result.from_json(doc)
    doc["schema"] = 3
    doc["a_future_key"] = 1  # unknown keys are ignored
    assert Result.from_json(doc) == make_result()


def test_result_is_frozen():
    with pytest.raises(AttributeError):
        make_result().exit_code = 3  # type: ignore[misc]


def test_package_exports():
    assert {
        "Result", "run", "pull", "inspect", "images", "rmi", "prune", "ConfigError", "backends"
    } <= set(benchrun.__all__)
    assert benchrun.Result is Result and callable(benchrun.run)


# --- the command line -------------------------------------------------------------------------


def parse(*argv: str) -> Any:
    return cli.build_parser().parse_args(["run", *argv])


def test_cli_positional_image_and_remainder_command():
    a = parse("img", "sh", "-c", "echo $X --json")
    assert cli._split_image_command(a) == ("img", ["sh", "-c", "echo $X --json"])
    a = parse("--json", "img", "ls", "-l", "--timeout", "3")  # after IMAGE: the command's
    assert a.json and a.timeout is None
    assert cli._split_image_command(a) == ("img", ["ls", "-l", "--timeout", "3"])
    assert cli._split_image_command(parse("img")) == ("img", None)
    assert cli._split_image_command(parse("--", "img", "x")) == ("img", ["x"])


def test_cli_image_option_makes_every_positional_the_command():
    a = parse("--image", "img", "sh", "-c", "x")
    assert cli._split_image_command(a) == ("img", ["sh", "-c", "x"])
    assert cli._split_image_command(parse("--image", "img")) == ("img", None)


def test_cli_missing_image_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        cli._split_image_command(parse())
    assert e.value.code == 2 and "IMAGE is required" in capsys.readouterr().err


def test_cli_help_lists_every_option_flag(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["run", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    flagged = [o for o in OPTIONS if o.flags]
    assert flagged
    for o in flagged:
        for flag in o.flags:
            assert re.search(rf"(?<![\w-]){re.escape(flag)}\b", text), f"{o.name}: {flag}"


def test_cli_options_parsed(monkeypatch):
    monkeypatch.setenv("B", "from-caller")
    a = parse(
        "-e",
        "A=1",
        "--env",
        "B",
        "-w",
        "/w",
        "--entrypoint",
        "",
        "-u",
        "1:2",
        "--memory",
        "1g",
        "--pids-limit",
        "64",
        "--vcpus",
        "1",
        "--cpus",
        "1.5",
        "--timeout",
        "2.5",
        "--output",
        "/a",
        "--output",
        "/b",
        "--iterations",
        "3",
        "--max-output",
        "1m",
        "--network",
        "none",
        "--store",
        "/s",
        "--platform",
        "linux/arm64",
        "img",
    )
    # The values stay text until make_spec; argparse only collects them.
    assert a.env == ["A=1", "B"] and a.workdir == "/w" and a.entrypoint == ""
    assert a.user == "1:2" and a.memory == "1g" and a.pids_limit == "64" and a.vcpus == "1"
    assert a.cpu_quota == "1.5" and a.timeout == "2.5" and a.outputs == ["/a", "/b"]
    assert a.iterations == 3 and a.max_output_bytes == "1m" and a.store == "/s"
    assert a.platform == "linux/arm64" and a.network == "none" and a.backend is None
    options = cli.run_options(a)
    assert options["entrypoint"] == []  # --entrypoint "": no entrypoint
    c = make_spec("img", store=a.store, **options).core
    assert c.env == ["A=1", "B=from-caller"] and c.workdir == "/w" and c.entrypoint == []
    assert c.user == "1:2" and c.memory == 1 << 30 and c.pids_limit == 64 and c.cpu_count == 1
    assert c.cpu_quota == 1.5 and c.timeout == 2.5 and c.outputs == ["/a", "/b"]
    assert c.max_output_bytes == MiB and c.network is False and c.backend == "sandbox"
    # Nothing given: every option is the native default.
    assert cli.run_options(parse("img")) == {}


def test_cli_entrypoint_is_one_executable():
    options = cli.run_options(parse("--entrypoint", "/bin/sh -c", "img"))
    assert options["entrypoint"] == ["/bin/sh -c"]  # as docker: not split


def test_cli_verbose_either_side():
    assert cli.build_parser().parse_args(["-v", "run", "img"]).verbose is True
    assert cli.build_parser().parse_args(["run", "-v", "img"]).verbose is True
    assert cli.build_parser().parse_args(["run", "img"]).verbose is False


class Streams:
    def __init__(self) -> None:
        self.out, self.err = io.BytesIO(), io.BytesIO()

    def install(self, monkeypatch: pytest.MonkeyPatch) -> "Streams":
        monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(self.out, write_through=True))
        monkeypatch.setattr(sys, "stderr", io.TextIOWrapper(self.err, write_through=True))
        return self


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--memory", "12x", "img"], "memory '12x'"),
        (["--memory", "512", "img"], "memory: .*minimum is 6m"),
        (["--timeout", "0", "img"], "timeout"),
        (["--timeout", "-1", "img"], "timeout"),
        (["--timeout", "abc", "img"], "timeout 'abc'"),
        (["--vcpus", "0", "img"], "vcpus"),
        (["--cpus", "0", "img"], "cpu_quota"),
        (["--pids-limit", "0", "img"], "pids_limit"),
        (["--pids-limit", "x", "img"], "pids_limit"),
        (["--max-output", "-1", "img"], "max_output_bytes"),
        (["--iterations", "0", "img"], "--iterations 0"),
        (["--env-file", "/nonexistent", "img"], "env file '/nonexistent'"),
        (["-e", "=x", "img"], "environment"),
        (["--output", "rel", "img"], "outputs: .*absolute"),
        (["-w", "rel", "img"], "workdir: .*absolute"),
        (["--network", "host", "img"], "network 'host'"),
        (["--backend", "qemu", "img"], "backend 'qemu': unknown"),
        (["--accel", "kvm", "img"], "accel: applies to backend 'vm' only"),
        (["--backend", "vm", "--accel", "hvf", "img"], "accel 'hvf': unknown"),
        (["--entrypoint", "a\0b", "img"], "entrypoint: .*NUL"),
    ],
)
def test_cli_bad_values_are_usage_errors(argv, match, monkeypatch):
    fake = FakeNative(cached=False).install(monkeypatch)
    s = Streams().install(monkeypatch)
    with pytest.raises(SystemExit) as e:
        cli.main(["run", *argv])
    assert e.value.code == 2
    err = s.err.getvalue().decode()
    assert "benchrun run: error:" in err and re.search(match, err), err
    assert not fake.anything_done  # nothing was pulled, loaded or run


def test_cli_env_file_then_env(tmp_path, monkeypatch):
    f = tmp_path / "env"
    f.write_text("# c\nA=file\nB=file\nC\n")
    monkeypatch.setenv("C", "caller")
    fake = FakeNative().install(monkeypatch)
    Streams().install(monkeypatch)
    assert cli.main(["run", "--env-file", str(f), "-e", "B=cli", "img"]) == 0
    (kw,) = fake.calls
    assert kw["spec"].env == ["A=file", "B=cli", "C=caller"]  # the file first; -e wins


def test_exit_code_precedence():
    code = cli.exit_code_for
    assert code(make_result()) == 0
    assert code(make_result(exit_code=42)) == 42
    assert code(make_result(exit_code=-1, signal=15)) == 143
    assert code(make_result(exit_code=-1, signal=9, oom_killed=True)) == 126
    assert code(make_result(exit_code=1, oom_killed=True)) == 126
    assert code(make_result(exit_code=-1, signal=9, timed_out=True)) == 124
    assert code(make_result(exit_code=-1, signal=9, timed_out=True, oom_killed=True)) == 124


def test_cli_run_writes_bytes_and_exits_with_the_workload_code(monkeypatch):
    fake = FakeNative(
        result=core_result(stdout=b"\xffraw\n", stderr=b"e\n", exit_code=3)
    ).install(monkeypatch)
    s = Streams().install(monkeypatch)
    assert cli.main(["run", "img", "sh", "-c", "exit 3"]) == 3
    assert s.out.getvalue() == b"\xffraw\n" and s.err.getvalue() == b"e\n"  # no summary
    (kw,) = fake.calls
    assert kw["spec"].command == ["sh", "-c", "exit 3"] and kw["image"] is fake.loaded[0]


def test_cli_run_summary_on_notable_outcome(monkeypatch):
    fake = FakeNative(
        result=core_result(timed_out=True, exit_code=-1, signal=9, stdout=b"", stderr=b"")
    ).install(monkeypatch)
    s = Streams().install(monkeypatch)
    assert cli.main(["run", "--timeout", "1", "img"]) == 124
    assert fake.calls[0]["spec"].timeout == 1.0
    err = s.err.getvalue().decode()
    assert err.startswith("benchrun: timed out") and err.count("\n") == 1


def test_cli_run_summary_names_truncation_in_binary_units(monkeypatch):
    FakeNative(result=core_result(stdout_truncated=True)).install(monkeypatch)
    s = Streams().install(monkeypatch)
    assert cli.main(["run", "--max-output", "1m", "img"]) == 0
    err = s.err.getvalue().decode()
    assert err.startswith("err") and "benchrun: stdout truncated at 1MiB; exit 0;" in err


def test_cli_run_verbose_summary(monkeypatch):
    FakeNative(result=core_result(stderr=b"")).install(monkeypatch)
    s = Streams().install(monkeypatch)
    assert cli.main(["run", "-v", "img"]) == 0
    assert s.err.getvalue().decode().startswith("benchrun: exit 0; wall 0.500s;")


def test_cli_run_json_single_and_iterations(monkeypatch):
    fake = FakeNative(cached=False).install(monkeypatch)
    s = Streams().install(monkeypatch)
    assert cli.main(["run", "--json", "img", "x"]) == 0
    doc = json.loads(s.out.getvalue())
    assert doc["schema"] == 3 and doc["stdout"] == "out" and doc["phases"]["pull"] > 0
    assert doc["metrics"]["wall_time"] == {"value": 0.5, "unit": "s"}
    assert s.err.getvalue() == b""
    assert fake.loads == ["img", DIGEST] and len(fake.pulls) == 1
    s = Streams().install(monkeypatch)
    assert cli.main(["run", "--json", "--iterations", "3", "img"]) == 0
    doc = json.loads(s.out.getvalue())
    assert len(doc["iterations"]) == 3 and doc["schema"] == 3
    assert [i["phases"]["pull"] for i in doc["iterations"]] == [0.0, 0.0, 0.0]
    # The image was loaded once for the three iterations, and every iteration ran it.
    assert fake.loads == ["img", DIGEST, "img"]
    assert [c["image"] for c in fake.calls[1:]] == [fake.loaded[-1]] * 3
    assert len(fake.pulls) == 1


def test_cli_run_iterations_stop_on_error(monkeypatch):
    fake = FakeNative(results=iter([core_result(exit_code=1), None])).install(monkeypatch)
    s = Streams().install(monkeypatch)
    assert cli.main(["run", "--json", "--iterations", "5", "img"]) == 125
    doc = json.loads(s.out.getvalue())
    assert len(doc["iterations"]) == 1 and "Operation not permitted" in doc["error"]
    assert doc["schema"] == 3
    assert s.err.getvalue().decode() == "benchrun: error: clone: Operation not permitted\n"
    assert len(fake.calls) == 1  # the second run failed; no third was started


def test_cli_run_vm_options_checked_before_work(monkeypatch):
    fake = FakeNative().install(monkeypatch)
    s = Streams().install(monkeypatch)
    with pytest.raises(SystemExit) as e:
        cli.main(["run", "--kernel", "/nonexistent/bzImage", "img"])
    assert e.value.code == 2
    assert b"kernel" in s.err.getvalue()
    s = Streams().install(monkeypatch)
    with pytest.raises(SystemExit) as e:
        cli.main(["run", "--backend", "vm", "--kernel", "/nonexistent/bzImage", "img"])
    assert e.value.code == 2
    assert b"kernel '/nonexistent/bzImage': no such file" in s.err.getvalue()
    s = Streams().install(monkeypatch)
    with pytest.raises(SystemExit) as e:
        cli.main(["run", "--vm-memory", "1g", "img"])
    assert e.value.code == 2
    assert b"vm_memory: applies to backend 'vm' only" in s.err.getvalue()
    assert not fake.anything_done


def test_init_and_stop_timeout_options():
    from benchrun.cli.run_options import add_run_options, run_options
    import argparse

    p = argparse.ArgumentParser()
    add_run_options(p)
    p.add_argument("args", nargs=argparse.REMAINDER)
    got = run_options(p.parse_args(["--init", "busybox", "true"]))
    assert got["init"] == "on"
    spec = make_spec("busybox", None, init=got["init"], stop_timeout="2.5")
    assert spec.core.init is True and spec.core.stop_timeout == 2.5
    assert make_spec("busybox", None).core.init is False
    assert make_spec("busybox", None).core.stop_timeout == 10.0
    assert make_spec("busybox", None, init="off").core.init is False
    with pytest.raises(ConfigError, match="expected on or off"):
        make_spec("busybox", None, init="maybe")
    with pytest.raises(ConfigError, match="stop_timeout"):
        make_spec("busybox", None, stop_timeout=-1)
