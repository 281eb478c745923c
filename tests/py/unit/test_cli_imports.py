"""The CLI stays lean: building the parser, parsing `run`, and every `--help` import none of the
analysis, server or HTTP libraries, nor benchrun's modules that use them (they cost hundreds of
milliseconds and tens of MiB per invocation). A fresh interpreter per case, so nothing imported by
the test session counts. (`benchrun run` end to end: tests/py/integration/test_cli_run.py.)"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Imported only by the subcommands that need them (and by the Python API for analysis).
HEAVY = (
    "pandas",
    "numpy",
    "matplotlib",
    "scipy",
    "seaborn",
    "aiohttp",
    "asyncpg",
    "requests",
    "rich",
)
LAZY_BENCHRUN = (
    "benchrun.report",
    "benchrun.results",
    "benchrun.stats",
    "benchrun.plots",
    "benchrun.export",
    "benchrun.campaign",
    "benchrun.agent",
    "benchrun.server",
    "benchrun.client",
    "benchrun.jobs.protocol",
    "benchrun.changes",
    "benchrun.resultsets",
)

PROBE = """
import json, sys
from benchrun.cli import main as cli
argv = json.loads(sys.argv[1])
try:
    cli.build_parser(cli._command_of(argv)).parse_args(argv)  # as main() does
except SystemExit as e:
    assert e.code == 0, e.code
print("\\n" + json.dumps(sorted(sys.modules)))
"""


def loaded_after(argv: list[str]) -> tuple[set[str], str]:
    p = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(argv)], capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 0, p.stderr
    text, _, modules = p.stdout.rpartition("\n[")
    return set(json.loads("[" + modules)), text


def offending(modules: set[str]) -> list[str]:
    return sorted(
        m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY + LAZY_BENCHRUN)
    )


def test_run_arguments_parse_without_heavy_imports():
    modules, _ = loaded_after(["run", "-m", "64m", "--timeout", "5", "-e", "A=1", "img", "true"])
    assert "benchrun.cli.main" in modules and "benchrun.runner" in modules  # the probe ran
    assert offending(modules) == []
    # Nor the modules of the other subcommands (the full parser, for --help, needs them).
    assert not modules & {"benchrun.cli.jobs", "benchrun.cli.campaign", "benchrun.cli.report"}


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["run", "--help"],
        ["pull", "--help"],
        ["report", "--help"],
        ["compare", "--help"],
        ["campaign", "run", "--help"],
        ["submit", "--help"],
        ["jobs", "--help"],
        ["serve", "--help"],
        ["agent", "--help"],
        ["host", "--help"],
        ["host", "tune", "--help"],
    ],
    ids=lambda a: " ".join(a),
)
def test_help_without_heavy_imports(argv):
    modules, text = loaded_after(argv)
    assert "usage: benchrun" in text
    assert offending(modules) == []


def test_every_subcommand_is_listed_in_the_top_level_help():
    _, text = loaded_after(["--help"])
    for command in (
        "pull",
        "inspect",
        "images",
        "rmi",
        "prune",
        "run",
        "serve",
        "agent",
        "submit",
        "jobs",
        "job",
        "cancel",
        "project",
        "token",
        "runner",
        "campaign",
        "report",
        "compare",
        "host",
    ):
        assert f"    {command} " in text, command


def test_the_probe_sees_heavy_imports():
    """The check above can fail: the report's implementation does import pandas."""
    p = subprocess.run(
        [sys.executable, "-c", "import sys, benchrun.report; print('pandas' in sys.modules)"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.stdout.strip() == "True", p.stderr


PROGRESS_PROBE = """
import io, sys
class Terminal(io.StringIO):
    def isatty(self):
        return True
sys.stderr = Terminal()
from benchrun.cli.progress import pull_progress
with pull_progress(True) as progress:
    assert progress is not None
    progress("resolved", "sha256:" + "ab" * 32, 0, 0)  # a cached image sends only these
    progress("done", "sha256:" + "ab" * 32, 0, 0)
    print("rich" in sys.modules)
    progress("layer_start", "sha256:" + "cd" * 32, 0, 100)
    print("rich.progress" in sys.modules)
"""


def test_pull_progress_imports_rich_on_the_first_layer_event_only():
    p = subprocess.run(
        [sys.executable, "-c", PROGRESS_PROBE], capture_output=True, text=True, timeout=60
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.split()[-2:] == ["False", "True"]


def test_benchrun_client_is_imported_on_first_use():
    code = (
        "import sys, benchrun; a = 'benchrun.client' in sys.modules; c = benchrun.Client; "
        "print(a, 'benchrun.client' in sys.modules, c.__module__, 'Client' in dir(benchrun))"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.stdout.split() == ["False", "True", "benchrun.client", "True"], p.stderr
