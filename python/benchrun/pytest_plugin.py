"""pytest plugin (entry point ``benchrun``): fixtures and markers for scenario suites run on images.

Fixtures
  benchrun_store    session-wide image store directory (``--benchrun-store DIR``, else a temp dir)
  benchrun_backend  the backend this test runs on; tests that use it are parametrized per backend
  benchrun_image    the test's image reference, pulled into benchrun_store once per session: from
                    ``@pytest.mark.benchrun_image(REF)`` or ``parametrize("benchrun_image", [...],
                    indirect=True)``; REF is ``oci:PATH[:TAG]``, a registry reference, ...
  benchrun_run      ``benchrun_run(command=None, *, image=None, **run options) -> Result``: runs the
                    test's image (or ``image``) on its backend, with a timeout unless given

Backend selection: ``--benchrun-backend=sandbox,vm`` selects the backends of the session; the
marker ``@pytest.mark.benchrun_backend("sandbox", "vm")`` (on a test, class or module) names the
backends a test runs on. With both, a test runs on the marker's backends, those not selected being
skipped with a reason; with neither, on "sandbox". A backend this host cannot run (an OCI runtime
not installed, crun on a cgroup v1 hybrid host: benchrun.backend_unavailable) is skipped with
the reason. Assertion helpers are in benchrun.testing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

import pytest

from benchrun.options import backends as registered_backends

if TYPE_CHECKING:
    import benchrun

DEFAULT_BACKENDS = ("sandbox",)
DEFAULT_TIMEOUT = 60.0

_MARKERS = (
    "benchrun_backend(*backends): the backends (benchrun.backends()) this test runs on; "
    "--benchrun-backend selects among them",
    "benchrun_image(ref): the image benchrun_image / benchrun_run use for this test",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("benchrun", "benchrun scenario suites")
    group.addoption(
        "--benchrun-backend",
        metavar="LIST",
        default=None,
        help="comma-separated backends to run benchrun_backend tests on (sandbox,vm); "
        "default: each test's benchrun_backend marker, else sandbox",
    )
    group.addoption(
        "--benchrun-store",
        metavar="DIR",
        default=None,
        help="image store for benchrun fixtures (default: a fresh directory per session)",
    )
    group.addoption(
        "--benchrun-timeout",
        metavar="SECONDS",
        type=float,
        default=DEFAULT_TIMEOUT,
        help="timeout of each benchrun_run unless the test gives one "
        f"(default {DEFAULT_TIMEOUT:g})",
    )


def pytest_configure(config: pytest.Config) -> None:
    for line in _MARKERS:
        config.addinivalue_line("markers", line)
    selected_backends(config)  # a bad --benchrun-backend is a usage error before collection


def parse_backends(text: str) -> tuple[str, ...]:
    """``"sandbox,vm"`` -> ``("sandbox", "vm")``; unknown names are a pytest.UsageError."""
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in registered_backends()]
    if unknown or not names:
        raise pytest.UsageError(
            f"--benchrun-backend '{text}': unknown backend {', '.join(unknown) or '(none)'} "
            f"(hint: choose from {', '.join(registered_backends())})"
        )
    return names


def selected_backends(config: pytest.Config) -> Optional[tuple[str, ...]]:
    """The backends --benchrun-backend selects, or None when it was not given."""
    text = config.getoption("benchrun_backend", None)
    return parse_backends(text) if text else None


_UNAVAILABLE: dict[str, str] = {}


def _unavailable(backend: str) -> str:
    """Why backend cannot run here ("" when it can), asked once per session."""
    if backend not in _UNAVAILABLE:
        from benchrun.options import backend_unavailable

        _UNAVAILABLE[backend] = backend_unavailable(backend)
    return _UNAVAILABLE[backend]


def backend_params(config: pytest.Config, node: Any) -> list[Any]:
    """pytest.param per backend ``node`` (an item or metafunc.definition) runs on: the
    benchrun_backend marker's backends (else the selection, else sandbox); those the selection
    leaves out are skipped."""
    selected = selected_backends(config)
    marked: Optional[tuple[str, ...]] = None
    for mark in node.iter_markers("benchrun_backend"):  # closest first: a test's own mark wins
        names = tuple(str(a) for a in mark.args)
        bad = [n for n in names if n not in registered_backends()]
        if bad or not names:
            raise pytest.UsageError(
                f"benchrun_backend marker on '{node.nodeid}': unknown backend "
                f"{', '.join(bad) or '(none)'} (hint: choose from {', '.join(registered_backends())})"
            )
        marked = names
        break
    backends = marked or selected or DEFAULT_BACKENDS
    params = []
    for b in backends:
        marks: tuple[Any, ...] = ()
        if selected is not None and b not in selected:
            marks = (pytest.mark.skip(reason=f"backend {b} not selected by --benchrun-backend"),)
        elif why := _unavailable(b):
            marks = (pytest.mark.skip(reason=f"backend {b} unavailable here: {why}"),)
        params.append(pytest.param(b, id=b, marks=marks))
    return params


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "benchrun_backend" not in metafunc.fixturenames:
        return
    # An explicit parametrize("benchrun_backend", ...) by the test itself takes precedence.
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0] if mark.args else mark.kwargs.get("argnames", "")
        if "benchrun_backend" in (names.split(",") if isinstance(names, str) else names):
            return
    metafunc.parametrize(
        "benchrun_backend", backend_params(metafunc.config, metafunc.definition), indirect=True
    )


@pytest.fixture(scope="session")
def benchrun_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The image store the benchrun fixtures pull into and run from, shared by the session."""
    given = request.config.getoption("benchrun_store", None)
    if given:
        path = Path(given).resolve()
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("benchrun-store")


@pytest.fixture
def benchrun_backend(request: pytest.FixtureRequest) -> str:
    """The backend this test runs on (tests using it are parametrized per backend)."""
    return str(getattr(request, "param", DEFAULT_BACKENDS[0]))


@pytest.fixture(scope="session")
def _benchrun_pulled() -> dict[tuple[str, str], str]:
    return {}


@pytest.fixture
def benchrun_image(
    request: pytest.FixtureRequest,
    benchrun_store: Path,
    _benchrun_pulled: dict[tuple[str, str], str],
) -> str:
    """The test's image reference (marker benchrun_image or an indirect parameter), pulled into
    benchrun_store once per session."""
    ref = getattr(request, "param", None)
    if ref is None:
        mark = request.node.get_closest_marker("benchrun_image")
        if mark is None or not mark.args:
            raise pytest.UsageError(
                f"'{request.node.nodeid}' uses benchrun_image but names no image "
                '(hint: @pytest.mark.benchrun_image("oci:PATH:TAG") or '
                "parametrize('benchrun_image', [...], indirect=True))"
            )
        ref = mark.args[0]
    ref = os.fspath(ref)
    key = (ref, str(benchrun_store))
    if key not in _benchrun_pulled:
        import benchrun

        _benchrun_pulled[key] = benchrun.pull(ref, store=benchrun_store).digest
    return ref


@pytest.fixture
def benchrun_run(
    request: pytest.FixtureRequest, benchrun_backend: str, benchrun_store: Path
) -> Callable[..., "benchrun.Result"]:
    """``benchrun_run(command=None, *, image=None, **options) -> Result`` on the test's backend;
    the image is the test's benchrun_image unless ``image`` is given; options as benchrun.run()."""
    timeout = float(request.config.getoption("benchrun_timeout", DEFAULT_TIMEOUT))

    def run(
        command: Optional[Sequence[str] | str] = None, *, image: Optional[str] = None, **kw: Any
    ) -> "benchrun.Result":
        import benchrun

        ref = image if image is not None else request.getfixturevalue("benchrun_image")
        kw.setdefault("timeout", timeout)
        kw.setdefault("backend", benchrun_backend)
        kw.setdefault("store", benchrun_store)
        return benchrun.run(os.fspath(ref), command, **kw)

    return run
