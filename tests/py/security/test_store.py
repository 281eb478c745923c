"""Red team, the image store (issue 11 findings 2, 5, 9 and 10 nul/workdir/blob-size): what an
attacker does with an image, a digest or a shared machine against the store and the pull path."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import benchrun
from support.ocilayout import Layer, busybox_layer, skopeo_push, write_layout
from support.registry import MeddlingProxy

BACKENDS = ["sandbox", pytest.param("vm", marks=pytest.mark.slow)]  # as in conftest.py

pytestmark = pytest.mark.root

WHOAMI = r"""
#include <stdio.h>
#include <unistd.h>
int main(void) { printf("uid=%d euid=%d\n", (int)getuid(), (int)geteuid()); return 0; }
"""


def _compile(tmp_path: Path, source: str) -> bytes:
    src = tmp_path / "prog.c"
    src.write_text(source)
    exe = tmp_path / "prog"
    subprocess.run(
        ["gcc", "-static", "-O1", "-o", str(exe), str(src)], check=True, capture_output=True
    )
    return exe.read_bytes()


@pytest.fixture
def public_dir():
    """A directory every user may traverse (0755), outside the 0700 pytest tree: where a shared
    `--store` or $BENCHRUN_CACHE would live on a real machine."""
    d = Path(tempfile.mkdtemp(prefix="benchrun-sec-", dir="/var/tmp"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _as_nobody(*argv: str) -> subprocess.CompletedProcess:
    """argv run by another local user (uid/gid 65534, no groups, no capabilities)."""
    return subprocess.run(
        list(argv),
        user=65534,
        group=65534,
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=30,
    )


# --- finding 2: setuid binaries reachable in the store ----------------------------------------


def test_setuid_binary_in_store_is_unreachable_by_other_users(tmp_path, public_dir):
    suid = (
        Layer("gzip").dir("attack").file("attack/whoami", _compile(tmp_path, WHOAMI), mode=0o4755)
    )
    info = write_layout(tmp_path / "img", [busybox_layer(), suid])
    store = public_dir / "store"
    img = benchrun.pull(info.ref, store=store)
    target = img.rootfs / "attack/whoami"
    assert target.stat().st_mode & stat.S_ISUID  # the image's mode is kept in the tree
    p = _as_nobody("/bin/sh", "-c", 'exec "$0"', str(target))
    assert "euid=0" not in p.stdout, f"another user ran the image's setuid binary: {p.stdout}"
    assert p.returncode != 0
    assert "Permission denied" in p.stderr
    assert _as_nobody("/bin/ls", str(store)).returncode != 0
    assert _as_nobody("/bin/ls", str(img.rootfs)).returncode != 0
    for d in (store, store / "rootfs", store / "tmp"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d


def test_store_under_world_writable_parent_without_sticky_bit_is_refused(busybox_image, public_dir):
    shared = public_dir / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(benchrun.ConfigError, match="sticky"):
        benchrun.pull(busybox_image.ref, store=shared / "store")
    assert not (shared / "store").exists()


def test_loose_store_is_repaired_when_opened(busybox_image, public_dir):
    store = public_dir / "store"
    benchrun.pull(busybox_image.ref, store=store)
    for d in (store, store / "rootfs", store / "tmp"):
        d.chmod(0o755)
    benchrun.images(store=store)
    for d in (store, store / "rootfs", store / "tmp"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d


# --- finding 5: decompression bombs --------------------------------------------------------------


def _leftovers(store: Path) -> list[str]:
    found = []
    for sub in ("blobs/sha256", "rootfs", "tmp", "images"):
        found += [f"{sub}/{n}" for n in os.listdir(store / sub)]
    return found


def test_zstd_bomb_layer_is_refused_and_leaves_nothing(tmp_path, store, busybox_image):
    # 96 MiB of zeros compress to a few KB with zstd: far beyond 100x, and above the 64 MiB floor.
    bomb = Layer("zstd").file("bomb", bytes(96 << 20))
    info = write_layout(tmp_path / "bomb", [bomb])
    assert (tmp_path / "bomb/blobs").exists()
    compressed = max(p.stat().st_size for p in (tmp_path / "bomb/blobs/sha256").iterdir())
    assert compressed < 64 << 10  # the layer is small on disk
    benchrun.pull(busybox_image.ref, store=store)  # an unrelated image already in the store
    before = set(_leftovers(store))
    with pytest.raises(benchrun.ImageTooLarge, match="decompression bomb"):
        benchrun.pull(info.ref, store=store)
    assert set(_leftovers(store)) == before  # no blob, tree or record of the bomb kept


def test_legit_image_well_under_the_ratio_still_unpacks(tmp_path, store):
    # Very compressible (zeros) but small: under the 64 MiB floor, so it unpacks whatever its ratio;
    # and an ordinary busybox layer is about 2x, far under 100x.
    layers = [busybox_layer(), Layer("zstd").file("data/zeros", bytes(8 << 20))]
    info = write_layout(tmp_path / "ok", layers)
    img = benchrun.pull(info.ref, store=store)
    assert (img.rootfs / "data/zeros").stat().st_size == 8 << 20


@pytest.fixture
def small_fs(tmp_path):
    """A 32 MiB tmpfs holding a store."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=32m,mode=0755", "tmpfs", str(mnt)], check=True
    )
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_store_free_space_is_checked_before_and_during_unpack(tmp_path, small_fs):
    # 20 MiB that do not compress: the download fits, the unpack would not (20 + 20 > 32 - reserve).
    info = write_layout(tmp_path / "big", [Layer("gzip").file("big", os.urandom(20 << 20))])
    store = small_fs / "store"
    with pytest.raises(benchrun.ImageTooLarge, match="MiB free"):
        benchrun.pull(info.ref, store=store)
    assert _leftovers(store) == []
    used = shutil.disk_usage(small_fs).used
    assert used < 4 << 20, f"{used} bytes left on the store's filesystem"
    # Twice as big as the filesystem: refused before a byte is downloaded.
    info2 = write_layout(tmp_path / "huge", [Layer("gzip").file("huge", os.urandom(40 << 20))])
    with pytest.raises(benchrun.ImageTooLarge, match="download image"):
        benchrun.pull(info2.ref, store=store)
    assert _leftovers(store) == []


# --- finding 9: a cached image used for another repository -----------------------------------


@pytest.fixture(scope="module")
def pushed(registry, busybox_image):
    ref = f"{registry.host}/tenant-a/private:1"
    skopeo_push(busybox_image, ref)
    return ref


@pytest.mark.registry
def test_cached_digest_does_not_open_another_repository(pushed, busybox_image, store):
    benchrun.pull(pushed, store=store)
    digest = busybox_image.manifest_digest
    # No registry at 127.0.0.1:1: the store's copy must not stand in for it.
    with pytest.raises(benchrun.BenchrunError) as e:
        benchrun.run(f"127.0.0.1:1/other/private@{digest}", ["true"], store=store, max_attempts=1)
    assert isinstance(e.value, (benchrun.RegistryError, benchrun.ImageNotFound)), e.value
    with pytest.raises(benchrun.ImageNotFound, match="no pull from repository"):
        benchrun.run(f"127.0.0.1:1/other/private@{digest}", ["true"], store=store, pull="never")
    # The repository that served it still runs from the cache, without a pull.
    r = benchrun.run(f"{pushed.rsplit(':', 1)[0]}@{digest}", ["true"], store=store, pull="never")
    assert r.exit_code == 0


@pytest.mark.registry
def test_cached_digest_refused_for_unauthorised_repository_in_same_registry(
    basic_registry, busybox_image, store
):
    creds = "bench:s3cret"
    a = f"{basic_registry.host}/tenant-a/img"
    b = f"{basic_registry.host}/tenant-b/img"
    for ref in (a, b):
        skopeo_push(busybox_image, f"{ref}:1", creds=creds)
    digest = busybox_image.manifest_digest
    benchrun.pull(f"{a}:1", store=store, username="bench", password="s3cret")
    # Same registry, same digest, another repository, no credentials: the registry must decide.
    with pytest.raises(benchrun.AuthError):
        benchrun.run(f"{b}@{digest}", ["true"], store=store, max_attempts=1)
    # --pull always re-checks access even for the repository the cache came from.
    benchrun.pull(f"{a}@{digest}", store=store, username="bench", password="s3cret")
    with pytest.raises(benchrun.AuthError):
        benchrun.run(f"{a}@{digest}", ["true"], store=store, pull="always", max_attempts=1)
    r = benchrun.run(
        f"{a}@{digest}", ["true"], store=store, pull="always", username="bench", password="s3cret"
    )
    assert r.exit_code == 0


@pytest.mark.registry
def test_pull_never_with_empty_cache_errors_clearly(pushed, store):
    with pytest.raises(benchrun.ImageNotFound, match="pull policy 'never'"):
        benchrun.run(pushed, ["true"], store=store, pull="never")
    assert not any((store / "blobs/sha256").iterdir())


@pytest.mark.registry
def test_pull_always_rechecks_with_the_registry(pushed, registry, busybox_image, store):
    proxy = MeddlingProxy(registry.host, "none")  # passes everything through, records requests
    try:
        ref = f"{proxy.host}/tenant-a/private@{busybox_image.manifest_digest}"
        benchrun.pull(ref, store=store)
        proxy.requests.clear()
        assert benchrun.run(ref, ["true"], store=store).exit_code == 0  # missing: the cache
        assert proxy.requests == []
        assert benchrun.run(ref, ["true"], store=store, pull="always").exit_code == 0
        # always: asked the registry, cheaply (one manifest HEAD, no download).
        assert [m for m, _, _ in proxy.requests if m == "HEAD"] == ["HEAD"]
        assert not any("/blobs/" in path for _, path, _ in proxy.requests), proxy.requests
    finally:
        proxy.stop()
    # The registry is gone: "always" is refused, "missing" still runs the cached copy.
    with pytest.raises(benchrun.RegistryError):
        benchrun.run(ref, ["true"], store=store, pull="always", max_attempts=1)
    assert benchrun.run(ref, ["true"], store=store).exit_code == 0


@pytest.mark.registry
def test_cli_pull_flag(pushed, store):
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchrun.cli",
            "run",
            "--store",
            str(store),
            "--pull",
            "never",
            pushed,
            "true",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 125 and "pull policy 'never'" in p.stderr, p.stderr
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchrun.cli",
            "run",
            "--store",
            str(store),
            "--pull",
            "sometimes",
            pushed,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 2 and "--pull" in p.stderr


# --- finding 10: NUL in config strings, WorkingDir through a symlink, cached blob size ------------


@pytest.mark.parametrize(
    "config",
    [
        {"Entrypoint": ["/bin/echo\u0000x"]},
        {"Cmd": ["/bin/sh", "-c", "id\u0000; reboot"]},
        {"Env": ["PATH=/bin\u0000:/attack"]},
        {"WorkingDir": "/tmp\u0000/x"},
        {"User": "0\u0000:65534"},
    ],
)
def test_nul_in_config_strings_refuses_the_image(tmp_path, store, config):
    info = write_layout(tmp_path / "nul", [busybox_layer()], config={"Cmd": ["true"], **config})
    with pytest.raises(benchrun.ImageError, match="NUL"):
        benchrun.run(info.ref, store=store)


@pytest.mark.parametrize("backend", BACKENDS)
def test_workdir_through_symlink_cannot_reach_proc(tmp_path, store, backend):
    layer = Layer("gzip").symlink("w", "/proc/self").symlink("r", "../../proc/self/root")
    info = write_layout(
        tmp_path / "wd", [busybox_layer(), layer], config={"WorkingDir": "/w", "Cmd": ["/bin/pwd"]}
    )
    with pytest.raises(benchrun.ConfigError, match="/proc"):
        benchrun.run(info.ref, store=store, backend=backend)
    with pytest.raises(benchrun.ConfigError, match="/proc"):
        benchrun.run(info.ref, store=store, backend=backend, workdir="/r")


def test_cached_layer_of_wrong_size_is_not_trusted(busybox_image, store):
    benchrun.pull(busybox_image.ref, store=store, unpack=False)
    for digest in busybox_image.layer_digests:
        blob = store / "blobs/sha256" / digest.split(":", 1)[1]
        blob.chmod(0o644)
        data = blob.read_bytes()
        blob.write_bytes(data[: len(data) // 2])  # truncated in the cache
    img = benchrun.pull(busybox_image.ref, store=store)  # fetched again, then unpacked
    assert (img.rootfs / "app/hello.txt").read_text() == "hello from benchrun\n"


def test_cached_config_with_other_bytes_is_not_trusted(busybox_image, store):
    benchrun.pull(busybox_image.ref, store=store)
    blob = store / "blobs/sha256" / busybox_image.config_digest.split(":", 1)[1]
    blob.chmod(0o644)
    blob.write_bytes(blob.read_bytes().replace(b"cat /app/hello.txt", b"cat /etc/passwd   "))
    with pytest.raises(benchrun.DigestMismatch):
        benchrun.run(busybox_image.ref, store=store, pull="never")
