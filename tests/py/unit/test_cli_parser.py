"""The CLI builds only the parser of the command it runs: the same arguments, the same result."""

from __future__ import annotations

import pytest

from benchrun.cli import main as cli

CASES = [
    ["run", "--memory", "64m", "-e", "A=1", "--timeout", "5", "img", "sh", "-c", "true"],
    ["-v", "run", "--json", "--iterations", "3", "img"],
    ["pull", "-q", "--parallel", "2", "oci:/tmp/x:1"],
    ["report", "store.db", "--markdown", "--baseline", "a"],
    ["campaign", "run", "c.toml", "--batch", "4"],
    ["submit", "--project", "p", "--vcpus", "2", "img", "--", "echo", "hi"],
    ["jobs", "--status", "running", "--limit", "5"],
    ["host", "tune", "--cpus", "1-3", "--keep-smt"],
]


@pytest.mark.parametrize("argv", CASES, ids=lambda a: " ".join(a[:2]))
def test_one_command_parser_parses_as_the_full_parser(argv):
    command = cli._command_of(argv)
    assert command == [a for a in argv if not a.startswith("-")][0]
    one = cli.build_parser(command)
    assert list(one._subparsers._group_actions[0].choices) == [command]  # only that one built
    full = vars(cli.build_parser().parse_args(argv))
    lean = vars(one.parse_args(argv))
    # Defaults that are parser objects (run_parser, submit_parser) differ by identity only.
    parsers = ("run_parser", "submit_parser")
    assert {k: v for k, v in lean.items() if k not in parsers} == {
        k: v for k, v in full.items() if k not in parsers
    }


@pytest.mark.parametrize(
    "argv, command",
    [
        ([], None),
        (["--help"], None),
        (["-h", "run"], None),
        (["--version"], None),
        (["-v", "report", "x"], "report"),
        (["--verbose", "run", "-e", "A", "i"], "run"),
        (["--", "run"], None),
    ],
)
def test_command_of(argv, command):
    assert cli._command_of(argv) == command


def test_an_unknown_command_gets_the_full_parser_and_its_error(capsys):
    parser = cli.build_parser("nosuch")
    assert "report" in parser._subparsers._group_actions[0].choices
    with pytest.raises(SystemExit) as e:
        cli.main(["nosuch"])
    assert e.value.code == 2
    assert "invalid choice: 'nosuch' (choose from 'pull'," in capsys.readouterr().err


def test_subcommand_modules_table_matches_what_the_modules_register():
    import argparse
    import importlib

    for module, commands in cli.SUBCOMMAND_MODULES.items():
        parser = argparse.ArgumentParser()
        importlib.import_module(module).add_parsers(parser.add_subparsers())
        assert tuple(parser._subparsers._group_actions[0].choices) == commands, module
    full = cli.build_parser()._subparsers._group_actions[0].choices
    listed = [c for commands in cli.SUBCOMMAND_MODULES.values() for c in commands]
    own = ["pull", "inspect", "images", "rmi", "prune", "run"]  # main.py's own
    assert list(full) == own + listed


class FakeClient:
    def __init__(self) -> None:
        self.submitted: list[tuple[tuple, dict]] = []

    def __enter__(self) -> "FakeClient":
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def submit(self, *args: object, **kw: object) -> dict:
        self.submitted.append((args, kw))
        return {"id": "job-1"}


def test_submit_takes_the_run_flags_a_job_spec_carries(monkeypatch, capsys):
    from benchrun.cli import jobs

    fake = FakeClient()
    monkeypatch.setattr(jobs, "_client", lambda args: fake)
    argv = ["submit", "--project", "p", "-e", "A=1", "--entrypoint", "/bin/sh", "--timeout",
            "1.5", "--output", "/o", "--vcpus", "2", "-m", "64m", "--backend", "vm", "img", "--",
            "echo", "hi"]
    assert cli.main(argv) == 0
    ((args, kw),) = fake.submitted
    assert args == ("img", ["echo", "hi"])
    assert kw["env"] == {"A": "1"} and kw["entrypoint"] == ["/bin/sh"]
    assert kw["timeout"] == 2 and kw["outputs"] == ["/o"] and kw["cpus"] == 2  # whole seconds
    assert kw["memory"] == 64 << 20 and kw["backend"] == "vm"
    assert capsys.readouterr().out == "job-1\n"
    # Defaults of a job: 60 s, 1 CPU (the runner's, not this machine's).
    assert cli.main(["submit", "--project", "p", "img"]) == 0
    kw = fake.submitted[-1][1]
    assert kw["timeout"] == 60 and kw["cpus"] == 1 and kw["backend"] is None


@pytest.mark.parametrize(
    "flags, message",
    [(["--backend", "qemu"], "--backend"), (["--timeout", "0"], "--timeout"),
     (["-m", "lots"], "--memory"), (["--vcpus", "0"], "--vcpus")],
)
def test_submit_bad_values_are_usage_errors(monkeypatch, capsys, flags, message):
    from benchrun.cli import jobs

    fake = FakeClient()
    monkeypatch.setattr(jobs, "_client", lambda args: fake)
    with pytest.raises(SystemExit) as e:
        cli.main(["submit", "--project", "p", *flags, "img"])
    assert e.value.code == 2 and message in capsys.readouterr().err and fake.submitted == []
