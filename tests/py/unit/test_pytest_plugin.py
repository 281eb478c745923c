"""benchrun's pytest plugin, used by generated test files (pytester) against a real busybox OCI
layout: fixtures, markers, backend selection and the assertion helpers' failure messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.ocilayout import ImageInfo, busybox_layer, write_layout

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.root



def _entry_point_installed() -> bool:
    """Once benchrun is pip-installed, pytest loads the plugin by its `benchrun` pytest11 entry
    point; passing -p for it as well would register the module twice."""
    from importlib.metadata import entry_points

    return any(ep.value == "benchrun.pytest_plugin" for ep in entry_points(group="pytest11"))


PLUGIN = ("-p", "no:cacheprovider") if _entry_point_installed() else (
    "-p", "benchrun.pytest_plugin", "-p", "no:cacheprovider")


@pytest.fixture
def image(tmp_path: Path) -> ImageInfo:
    return write_layout(tmp_path / "busybox", [busybox_layer()], config={"Env": ["PATH=/bin"]})


def test_fixtures_and_markers(pytester: pytest.Pytester, image: ImageInfo, tmp_path: Path):
    pytester.makepyfile(
        f"""
        import pytest
        from benchrun.testing import assert_exit, assert_faster_than, assert_ok, assert_stdout

        IMAGE = {image.ref!r}

        @pytest.mark.benchrun_image(IMAGE)
        def test_echo(benchrun_run, benchrun_backend):
            r = assert_ok(benchrun_run(["echo", "hello"]))
            assert_stdout(r, contains="hello")
            assert_stdout(r, equals="hello\\n")
            assert r.backend == benchrun_backend == "sandbox"

        @pytest.mark.benchrun_image(IMAGE)
        def test_exit_code(benchrun_run):
            assert_exit(benchrun_run(["sh", "-c", "exit 3"]), 3)

        @pytest.mark.parametrize("benchrun_image", [IMAGE], indirect=True)
        def test_indirect_image(benchrun_run, benchrun_image, benchrun_store):
            assert benchrun_image == IMAGE
            assert_faster_than(benchrun_run(["true"]), 30)
            assert (benchrun_store / "index.db").exists() or any(benchrun_store.iterdir())

        def test_image_argument(benchrun_run):
            assert_ok(benchrun_run(["true"], image=IMAGE))
        """
    )
    store = tmp_path / "session-store"
    result = pytester.runpytest(*PLUGIN, "-v", f"--benchrun-store={store}")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*test_echo?sandbox? PASSED*"])
    assert any(store.iterdir())  # --benchrun-store was used


def test_backend_selection(pytester: pytest.Pytester):
    pytester.makepyfile(
        """
        import pytest

        def test_default(benchrun_backend):
            pass

        @pytest.mark.benchrun_backend("sandbox", "vm")
        def test_both(benchrun_backend):
            pass

        @pytest.mark.benchrun_backend("vm")
        def test_vm_only(benchrun_backend):
            assert benchrun_backend == "vm"
        """
    )
    ids = pytester.runpytest(*PLUGIN, "--collect-only", "-q")
    ids.stdout.fnmatch_lines([
        "*test_default?sandbox?", "*test_both?sandbox?", "*test_both?vm?", "*test_vm_only?vm?",
    ])
    both = pytester.runpytest(*PLUGIN, "--collect-only", "-q", "--benchrun-backend=sandbox,vm")
    both.stdout.fnmatch_lines(["*test_default?sandbox?", "*test_default?vm?"])
    only = pytester.runpytest(*PLUGIN, "-rs", "--benchrun-backend=sandbox")
    only.assert_outcomes(passed=2, skipped=2)
    only.stdout.fnmatch_lines(["*backend vm not selected by --benchrun-backend*"])
    bad = pytester.runpytest(*PLUGIN, "--benchrun-backend=docker")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--benchrun-backend 'docker': unknown backend docker*"])


def test_missing_image_is_explained(pytester: pytest.Pytester):
    pytester.makepyfile(
        """
        def test_no_image(benchrun_run):
            benchrun_run(["true"])
        """
    )
    result = pytester.runpytest(*PLUGIN)
    result.stdout.fnmatch_lines(["*uses benchrun_image but names no image*"])
    assert result.ret != 0


def test_failing_assertion_is_readable(pytester: pytest.Pytester, image: ImageInfo):
    pytester.makepyfile(
        f"""
        import pytest
        from benchrun.testing import assert_faster_than, assert_ok

        pytestmark = pytest.mark.benchrun_image({image.ref!r})

        def test_fails(benchrun_run):
            script = "for i in $(seq 1 30); do echo out$i; done; echo oops >&2; exit 7"
            assert_ok(benchrun_run(["sh", "-c", script]))

        def test_too_slow(benchrun_run):
            assert_faster_than(benchrun_run(["sleep", "0.3"]), 0.1)
        """
    )
    result = pytester.runpytest(*PLUGIN)
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines([
        "*AssertionError: expected the run to succeed (exit 0)",
        "*run exited 7 on backend 'sandbox' after *s wall time (exit_code=7, signal=0, "
        "timed_out=False, oom_killed=False)",
        "*stdout (last 20 lines):",
        "*... (10 earlier lines)",
        "*| out11",
        "*| out30",
        "*stderr (last 20 lines):",
        "*| oops",
    ])
    out = result.stdout.str()
    assert "| out10\n" not in out  # only the tail
    result.stdout.fnmatch_lines(["*expected a wall time under 0.1s, took *s (*x the limit)"])
