"""Scenario fixtures: the backend (the benchrun pytest plugin's), and small busybox images built
and pulled per test."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import pytest

import benchrun
from benchrun import pytest_plugin as plugin
from support.ocilayout import ImageInfo, Layer, busybox_layer, write_layout

# Applets the scenarios use beyond support.ocilayout.BUSYBOX_APPLETS (links into /bin/busybox).
EXTRA_APPLETS = (
    "sha256sum",
    "tee",
    "grep",
    "reboot",
    "wget",
    "nc",
    "awk",
    "tail",
    "cut",
    "ps",
    "ln",
)

# Every scenario runs with a timeout, so a broken backend fails a test instead of hanging the suite.
DEFAULT_TIMEOUT = 60.0


def applets_layer(applets: Iterable[str] = EXTRA_APPLETS) -> Layer:
    layer = Layer("gzip")
    for applet in applets:
        layer.symlink(f"bin/{applet}", "busybox")
    return layer


@pytest.fixture(autouse=True)
def nothing_left_behind(tmp_path: Path):
    """After every scenario, whatever its outcome: no cgroup, run directory or mount of this
    process's runs remains (runs are named run-<runner pid>-<random>)."""
    yield
    prefix = f"run-{os.getpid()}-"
    cgroups = [
        str(p)
        for pattern in (f"*/benchrun/{prefix}*", f"benchrun/{prefix}*")
        for p in Path("/sys/fs/cgroup").glob(pattern)
    ]
    run_dirs = [str(p) for p in tmp_path.glob("*/runs/*")]
    qemus = [
        p.name
        for p in Path("/proc").iterdir()
        if p.name.isdigit() and b"qemu-system" in _cmdline(p).split(b"\0")[0]
        and str(tmp_path).encode() in _cmdline(p)
    ]
    mounts = [
        line
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if str(tmp_path) in line
    ]
    assert (cgroups, run_dirs, mounts, qemus) == ([], [], [], [])


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""


# The scenarios run on both backends unless --benchrun-backend narrows the selection (see
# benchrun.pytest_plugin): test_scenarios.py marks its module benchrun_backend("sandbox", "vm").

# When the installed benchrun predates the plugin's entry point and the plugin was not given with
# -p, this conftest carries its fixtures and backend parametrization, so the suite runs the same.
benchrun_backend = plugin.benchrun_backend


def _plugin_active(config: pytest.Config) -> bool:
    return config.pluginmanager.is_registered(plugin)


def pytest_configure(config: pytest.Config) -> None:
    for line in plugin._MARKERS:
        config.addinivalue_line("markers", line)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if not _plugin_active(metafunc.config) and "benchrun_backend" in metafunc.fixturenames:
        params = plugin.backend_params(metafunc.config, metafunc.definition)
        metafunc.parametrize("benchrun_backend", params, indirect=True)


@pytest.fixture
def backend(benchrun_backend: str) -> str:
    """The backend each scenario runs on: the namespace sandbox and the QEMU microVM."""
    return benchrun_backend


@pytest.fixture
def make_image(tmp_path: Path, store: Path) -> Callable[..., ImageInfo]:
    """make_image(config=None, layers=()) -> ImageInfo: busybox + extra applets + ``layers``, with
    ``config`` (PATH=/bin unless config sets Env), written as an OCI layout and pulled into the
    test's own store."""
    counter = itertools.count()

    def make(config: Optional[dict[str, Any]] = None, layers: Iterable[Layer] = ()) -> ImageInfo:
        cfg = {"Env": ["PATH=/bin"], **(config or {})}
        layout = tmp_path / f"layout{next(counter)}"
        info = write_layout(layout, [busybox_layer(), applets_layer(), *layers], config=cfg)
        pulled = benchrun.pull(info.ref, store=store)
        assert pulled.digest == info.manifest_digest
        return info

    return make


@pytest.fixture
def run_image(
    make_image: Callable[..., ImageInfo], backend: str, store: Path
) -> Callable[..., benchrun.Result]:
    """run_image(command=None, *, config=None, layers=(), **run options) -> Result: builds the
    image with make_image and runs it on the scenario's backend (timeout 60 s unless given)."""

    def go(
        command: Any = None,
        *,
        config: Optional[dict[str, Any]] = None,
        layers: Iterable[Layer] = (),
        **kw: Any,
    ) -> benchrun.Result:
        info = make_image(config, layers)
        kw.setdefault("timeout", DEFAULT_TIMEOUT)
        return benchrun.run(info.ref, command, backend=backend, store=store, pull="never", **kw)

    return go
