"""benchrun.run()'s option handling, the `benchrun run` command line and the Result document —
all without root and without running anything (the native run is replaced by a fake)."""

from __future__ import annotations

import importlib
import io
import json
import os
import sys
import types
from pathlib import Path
from typing import Any

import pytest

import benchrun
from benchrun.cli import main as cli
from benchrun.errors import ConfigError, ImageNotFound
from benchrun.runner import (
    DEFAULT_MAX_OUTPUT_BYTES,
    Result,
    make_spec,
    parse_env,
    parse_env_file,
    parse_memory,
    parse_size,
    select_cpus,
)

# The run API lives in benchrun.runner (benchrun.run is the function).
run_mod = importlib.import_module("benchrun.runner")

MiB = 1 << 20


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
    "bad",
    ["", "12x", "m", "-1m", "1.g", "1gg", "0x10m", "one", "512", "5m", 0, -1, True, 1.5, None],
)
def test_parse_memory_rejects(bad):
    with pytest.raises(ConfigError, match="memory"):
        parse_memory(bad)


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


def test_select_cpus():
    assert select_cpus(None) == ()
    assert select_cpus(2, available={7, 3, 1, 5}) == (1, 3)
    assert select_cpus(4, available=[7, 3, 1, 5]) == (1, 3, 5, 7)
    assert select_cpus(1) == (min(os.sched_getaffinity(0)),)
    with pytest.raises(ConfigError, match="only 2 CPUs are available"):
        select_cpus(3, available={0, 1})
    for bad in (0, -1, 1.0, True, "1"):
        with pytest.raises(ConfigError):
            select_cpus(bad, available={0, 1})


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
    assert s.command == ("sh", "-c", "echo a b")
    assert s.entrypoint is None  # not given
    assert s.memory == 64 * MiB and s.timeout == 5.0 and s.env == ("A=1",)
    assert s.outputs == ("/tmp/a", "/tmp/b") and s.user == "65534"
    assert s.max_output_bytes == MiB and len(s.cpus) == 1
    assert s.store == str(tmp_path) and s.network == "none" and s.pull is True
    d = make_spec("img", store=tmp_path)
    assert d.command is None and d.timeout == 0.0 and d.cpus == () and d.memory is None
    assert d.max_output_bytes == DEFAULT_MAX_OUTPUT_BYTES == 64 * MiB


def test_make_spec_entrypoint_given_empty():
    assert make_spec("img", entrypoint="").entrypoint == ()
    assert make_spec("img", entrypoint=[]).entrypoint == ()
    assert make_spec("img", entrypoint=["/bin/x", "a b"]).entrypoint == ("/bin/x", "a b")
    assert make_spec("img", command=[]).command == ()


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"accel": "kvm"}, "apply to backend 'vm' only"),
        ({"backend": "vm", "accel": "hvf"}, "accel 'hvf': unknown"),
        ({"backend": "vm", "kernel": "/nonexistent/bzImage"}, "kernel '/nonexistent/bzImage': no such"),
        ({"backend": "vm", "vm_memory": "lots"}, "memory"),
        ({"backend": "docker"}, "backend 'docker': unknown"),
        ({"network": "host"}, "only 'none' is supported"),
        ({"network": "bridge"}, "only 'none' is supported"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": -1}, "timeout"),
        ({"timeout": float("nan")}, "timeout"),
        ({"timeout": "5"}, "timeout"),
        ({"memory": "lots"}, "memory"),
        ({"pids_limit": 0}, "pids_limit"),
        ({"pids_limit": 1.5}, "pids_limit"),
        ({"cpu_quota": 0}, "cpu_quota"),
        ({"vcpus": 0}, "vcpus"),
        ({"vcpus": 10**6}, "CPUs are available"),
        ({"outputs": "/tmp/x"}, "not a single string"),
        ({"outputs": ["tmp/x"]}, "absolute"),
        ({"workdir": "relative"}, "absolute"),
        ({"user": ""}, "user"),
        ({"user": True}, "user"),
        ({"command": [1]}, "command"),
        ({"entrypoint": ["a\0b"]}, "NUL"),
        ({"command": "unterminated 'quote"}, "command"),
        ({"env": "A=1"}, "env"),
        ({"max_output_bytes": -1}, "max_output_bytes"),
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
        wall_time=0.5,
        cpu_user=0.25,
        cpu_system=0.125,
        peak_memory=4096,
        start_time=1000.0,
        end_time=1000.5,
        phases={"prepare": 0.01, "start": 0.02, "run": 0.5, "collect": 0.03},
        image_digest="sha256:" + "a" * 64,
        backend="sandbox",
    )
    d.update(over)
    return d


class FakeNative:
    """Stands in for benchrun._core.run, benchrun.inspect and benchrun.pull."""

    def __init__(self, cached: bool = True, result: dict[str, Any] | None = None) -> None:
        self.cached = cached
        self.result = result or core_result()
        self.calls: list[dict[str, Any]] = []
        self.pulls: list[tuple[str, dict[str, Any]]] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> "FakeNative":
        monkeypatch.setattr(run_mod, "_core", types.SimpleNamespace(run=self.run))
        monkeypatch.setattr(run_mod._image, "inspect", self.inspect)
        monkeypatch.setattr(run_mod._image, "pull", self.pull)
        return self

    def run(self, **kw: Any) -> dict[str, Any]:
        self.calls.append(kw)
        return dict(self.result)

    def inspect(self, ref: str, *, store: str) -> Any:
        if not self.cached:
            raise ImageNotFound(f"image '{ref}' is not in the local store")
        return types.SimpleNamespace(digest="sha256:" + "a" * 64, rootfs=Path("/x"))

    def pull(self, ref: str, *, store: str, **kw: Any) -> Any:
        self.pulls.append((ref, kw))
        self.cached = True
        return types.SimpleNamespace(digest="sha256:" + "a" * 64, rootfs=Path("/x"))


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
    assert kw["image"] == "sha256:" + "a" * 64  # the digest that was checked, not the name
    assert kw["command"] == ["echo", "hi"] and kw["entrypoint"] is None
    assert kw["env"] == ["A=1"] and kw["memory"] == 32 * MiB and kw["pids_limit"] == 64
    assert kw["cpus"] == [min(os.sched_getaffinity(0))] and kw["timeout"] == 5.0
    assert kw["outputs"] == ["/tmp/o"] and kw["workdir"] == "/w" and kw["user"] == "nobody"
    assert kw["cpu_quota"] == 0.5 and kw["max_output_bytes"] == MiB
    assert kw["network"] is False and kw["store"] == str(tmp_path)
    assert fake.pulls == []
    assert r.phases == {"pull": 0.0, "prepare": 0.01, "start": 0.02, "run": 0.5, "collect": 0.03}
    assert list(r.phases) == ["pull", "prepare", "start", "run", "collect"]
    assert r.stdout == b"out" and r.outputs == {"/tmp/o": b"x"} and r.ok


def test_run_entrypoint_none_vs_empty(monkeypatch):
    fake = FakeNative().install(monkeypatch)
    benchrun.run("img")
    benchrun.run("img", entrypoint="")
    benchrun.run("img", ["x"], entrypoint=[])
    assert [(c["entrypoint"], c["command"]) for c in fake.calls] == [
        (None, None),
        ([], None),
        ([], ["x"]),
    ]


def test_run_pulls_a_missing_image(monkeypatch):
    fake = FakeNative(cached=False).install(monkeypatch)
    r = benchrun.run("img", platform="linux/amd64")
    assert fake.pulls == [("img", {"platform": "linux/amd64"})]
    assert r.phases["pull"] > 0
    fake.cached = False
    with pytest.raises(ImageNotFound):
        benchrun.run("img", pull=False)


def test_run_validates_before_any_work(monkeypatch):
    fake = FakeNative(cached=False).install(monkeypatch)
    for kw in ({"backend": "vm", "accel": "x"}, {"memory": "1x"}, {"network": "host"}, {"timeout": -5}):
        with pytest.raises(ConfigError):
            benchrun.run("img", **kw)
    assert fake.calls == [] and fake.pulls == []


# --- Result and its JSON document -------------------------------------------------------------


def make_result(**over: Any) -> Result:
    return Result._from_core(core_result(**over), 0.25)


def test_result_ok():
    assert make_result().ok
    assert not make_result(exit_code=1).ok
    assert not make_result(exit_code=-1, signal=9).ok
    assert not make_result(timed_out=True).ok
    assert not make_result(oom_killed=True).ok


def test_result_json_round_trip_utf8():
    r = make_result(stdout="héllo ✓\n".encode(), outputs={"/tmp/a.json": b'{"a": 1}'})
    doc = json.loads(json.dumps(r.to_json()))
    assert doc["schema"] == 1 and doc["ok"] is True
    assert doc["stdout"] == "héllo ✓\n" and doc["stdout_base64"] is None
    assert doc["stderr"] == "err" and doc["stderr_base64"] is None
    assert doc["outputs"] == {"/tmp/a.json": '{"a": 1}'} and doc["outputs_base64"] == {}
    assert doc["phases"]["pull"] == 0.25
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
    assert doc["stdout"] == "ok\ufffd\ufffd" and doc["stdout_base64"] == "b2v//g=="
    assert doc["stderr"] == "\ufffd" and doc["stderr_base64"] == "gA=="
    assert set(doc["outputs"]) == {"/b", "/t"} and set(doc["outputs_base64"]) == {"/b"}
    assert doc["ok"] is False and doc["signal"] == 9
    back = Result.from_json(doc)
    assert back == r and back.outputs["/b"] == blob and back.stdout == b"ok\xff\xfe"


def test_result_json_schema_checked():
    doc = make_result().to_json()
    doc["schema"] = 2
    with pytest.raises(ConfigError, match="schema"):
        Result.from_json(doc)
    doc["schema"] = 1
    doc["a_future_key"] = 1  # unknown keys are ignored
    assert Result.from_json(doc) == make_result()


def test_result_is_frozen():
    with pytest.raises(AttributeError):
        make_result().exit_code = 3  # type: ignore[misc]


def test_package_exports():
    assert {"Result", "run", "pull", "inspect", "images", "rmi", "prune", "ConfigError"} <= set(
        benchrun.__all__
    )
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


def test_cli_options_parsed():
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
        "--store",
        "/s",
        "--platform",
        "linux/arm64",
        "img",
    )
    assert a.env == ["A=1", "B"] and a.workdir == "/w" and a.entrypoint == ""
    assert a.user == "1:2" and a.memory == 1 << 30 and a.pids_limit == 64 and a.vcpus == 1
    assert a.cpu_quota == 1.5 and a.timeout == 2.5 and a.output == ["/a", "/b"]
    assert a.iterations == 3 and a.max_output == MiB and a.store == "/s"
    assert a.platform == "linux/arm64" and a.network == "none" and a.backend == "sandbox"


def test_cli_verbose_either_side():
    assert cli.build_parser().parse_args(["-v", "run", "img"]).verbose is True
    assert cli.build_parser().parse_args(["run", "-v", "img"]).verbose is True
    assert cli.build_parser().parse_args(["run", "img"]).verbose is False


@pytest.mark.parametrize(
    "argv",
    [
        ["--memory", "12x", "img"],
        ["--timeout", "0", "img"],
        ["--timeout", "-1", "img"],
        ["--timeout", "abc", "img"],
        ["--vcpus", "0", "img"],
        ["--pids-limit", "0", "img"],
        ["--iterations", "0", "img"],
        ["--env-file", "/nonexistent", "img"],
        ["--output", "rel", "img"],
        ["-w", "rel", "img"],
        ["--network", "host", "img"],
        ["--backend", "qemu", "img"],
    ],
)
def test_cli_bad_values_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as e:
        parse(*argv)
    assert e.value.code == 2


def test_cli_env_file_then_env(tmp_path, monkeypatch):
    f = tmp_path / "env"
    f.write_text("# c\nA=file\nB=file\nC\n")
    monkeypatch.setenv("C", "caller")
    a = parse("--env-file", str(f), "-e", "B=cli", "img")
    assert a.env_file == [["A=file", "B=file", "C=caller"]]


def test_exit_code_precedence():
    code = cli.exit_code_for
    assert code(make_result()) == 0
    assert code(make_result(exit_code=42)) == 42
    assert code(make_result(exit_code=-1, signal=15)) == 143
    assert code(make_result(exit_code=-1, signal=9, oom_killed=True)) == 126
    assert code(make_result(exit_code=1, oom_killed=True)) == 126
    assert code(make_result(exit_code=-1, signal=9, timed_out=True)) == 124
    assert code(make_result(exit_code=-1, signal=9, timed_out=True, oom_killed=True)) == 124


class Streams:
    def __init__(self) -> None:
        self.out, self.err = io.BytesIO(), io.BytesIO()

    def install(self, monkeypatch: pytest.MonkeyPatch) -> "Streams":
        monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(self.out, write_through=True))
        monkeypatch.setattr(sys, "stderr", io.TextIOWrapper(self.err, write_through=True))
        return self


def test_cli_run_writes_bytes_and_exits_with_the_workload_code(monkeypatch):
    FakeNative(result=core_result(stdout=b"\xffraw\n", stderr=b"e\n", exit_code=3)).install(
        monkeypatch
    )
    s = Streams().install(monkeypatch)
    assert cli.main(["run", "img"]) == 3
    assert s.out.getvalue() == b"\xffraw\n" and s.err.getvalue() == b"e\n"  # no summary


def test_cli_run_summary_on_notable_outcome(monkeypatch):
    FakeNative(
        result=core_result(timed_out=True, exit_code=-1, signal=9, stdout=b"", stderr=b"")
    ).install(monkeypatch)
    s = Streams().install(monkeypatch)
    assert cli.main(["run", "--timeout", "1", "img"]) == 124
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
    assert doc["schema"] == 1 and doc["stdout"] == "out" and doc["phases"]["pull"] > 0
    assert s.err.getvalue() == b""
    s = Streams().install(monkeypatch)
    assert cli.main(["run", "--json", "--iterations", "3", "img"]) == 0
    doc = json.loads(s.out.getvalue())
    assert len(doc["iterations"]) == 3 and doc["schema"] == 1
    assert [i["phases"]["pull"] for i in doc["iterations"]] == [0.0, 0.0, 0.0]
    # Every iteration ran the digest resolved once.
    assert {c["image"] for c in fake.calls} == {"sha256:" + "a" * 64}
    assert len(fake.pulls) == 1


def test_cli_run_iterations_stop_on_error(monkeypatch):
    fake = FakeNative().install(monkeypatch)
    results = iter([core_result(exit_code=1), None])

    def run(**kw: Any) -> dict[str, Any]:
        r = next(results)
        if r is None:
            raise benchrun.SandboxError("clone: Operation not permitted", stage="clone")
        return r

    monkeypatch.setattr(run_mod, "_core", types.SimpleNamespace(run=run))
    s = Streams().install(monkeypatch)
    assert cli.main(["run", "--json", "--iterations", "5", "img"]) == 125
    doc = json.loads(s.out.getvalue())
    assert len(doc["iterations"]) == 1 and "Operation not permitted" in doc["error"]
    assert s.err.getvalue().decode() == "benchrun: error: clone: Operation not permitted\n"
    assert fake.calls == []


def test_cli_run_vm_options_checked_before_work(monkeypatch):
    fake = FakeNative().install(monkeypatch)
    s = Streams().install(monkeypatch)
    assert cli.main(["run", "--kernel", "/nonexistent/bzImage", "img"]) == 125
    assert b"apply to backend 'vm' only" in s.err.getvalue()
    assert cli.main(["run", "--backend", "vm", "--kernel", "/nonexistent/bzImage", "img"]) == 125
    assert b"no such file" in s.err.getvalue()
    assert fake.calls == []
