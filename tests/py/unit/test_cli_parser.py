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
]


@pytest.mark.parametrize("argv", CASES, ids=lambda a: " ".join(a[:2]))
def test_one_command_parser_parses_as_the_full_parser(argv):
    command = cli._command_of(argv)
    assert command == [a for a in argv if not a.startswith("-")][0]
    one = cli.build_parser(command)
    assert list(one._subparsers._group_actions[0].choices) == [command]  # only that one built
    full = vars(cli.build_parser().parse_args(argv))
    lean = vars(one.parse_args(argv))
    # Defaults that are parser objects (run_parser) differ by identity only.
    assert {k: v for k, v in lean.items() if k != "run_parser"} == {
        k: v for k, v in full.items() if k != "run_parser"
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
