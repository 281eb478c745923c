"""Shared fixtures: a store per test, real registries on loopback, test images."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from support.ocilayout import ImageInfo, Layer, busybox_layer, write_layout  # noqa: E402
from support.registry import RegistryServer, TokenIssuer, htpasswd_auth  # noqa: E402


# MicroVM artefacts (Debian's kernel, initramfs, ext4 images) are keyed by content, so the whole
# test run shares one cache, kept between runs: the kernel is downloaded once per machine.
VM_CACHE = Path(os.environ.get("BENCHRUN_TEST_CACHE", "/var/tmp/benchrun-test-cache")) / "vm"


@pytest.fixture(autouse=True, scope="session")
def shared_vm_cache():
    os.environ["BENCHRUN_VM_CACHE"] = str(VM_CACHE)
    os.environ["BENCHRUN_TEST_CACHE_VM"] = str(VM_CACHE)  # stays when a test unsets the first
    yield VM_CACHE


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory):
    """An open docker-registry on 127.0.0.1 (plain HTTP, as loopback allows)."""
    server = RegistryServer(tmp_path_factory.mktemp("registry"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def basic_registry(tmp_path_factory: pytest.TempPathFactory):
    """A registry with htpasswd (HTTP Basic) auth; user 'bench' password 's3cret'."""
    work = tmp_path_factory.mktemp("basic-registry")
    server = RegistryServer(work, auth=htpasswd_auth(work, "bench", "s3cret"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory):
    """A registry with token auth; the issuer grants anonymous pull, and push to 'bench'."""
    work = tmp_path_factory.mktemp("token-registry")
    issuer = TokenIssuer(work, users={"bench": "s3cret"})
    server = RegistryServer(work, auth=issuer.registry_auth())
    server.issuer = issuer
    yield server
    server.stop()
    issuer.stop()


@pytest.fixture(scope="session")
def busybox_image(tmp_path_factory: pytest.TempPathFactory) -> ImageInfo:
    """A two-layer runnable image (busybox + an app layer) in an OCI layout."""
    layout = tmp_path_factory.mktemp("layouts") / "busybox"
    app = Layer("gzip").dir("app").file("app/hello.txt", "hello from benchrun\n")
    return write_layout(layout, [busybox_layer(), app], config={
        "Entrypoint": ["/bin/sh", "-c"], "Cmd": ["cat /app/hello.txt"],
        "Env": ["PATH=/bin", "GREETING=hi"], "WorkingDir": "/app", "User": "65534"})


def pytest_collection_modifyitems(config, items):
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="needs root (CI runs as root)")
        for item in items:
            if "root" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL 15 cluster for the session (support/postgres.py); skips if absent."""
    from support.postgres import PostgresServer, available

    reason = available()
    if reason:
        pytest.skip(reason)
    server = PostgresServer()
    yield server
    server.stop()


@pytest.fixture
def pg_dsn(postgres) -> str:
    """A fresh, empty database on the session cluster."""
    import uuid

    return postgres.create_database(f"t_{uuid.uuid4().hex}")
