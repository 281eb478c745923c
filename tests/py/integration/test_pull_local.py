"""Pulling from OCI layouts and docker-archive tarballs into the store: caching, rmi, prune,
platform selection, concurrency, hostile layouts."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess

import pytest

import benchrun
from support.ocilayout import Layer, busybox_layer, write_layout


def test_pull_layout_unpacks_and_records(busybox_image, store):
    img = benchrun.pull(busybox_image.ref, store=store)
    assert img.digest == busybox_image.manifest_digest
    assert img.config_digest == busybox_image.config_digest
    assert [l.digest for l in img.layers] == busybox_image.layer_digests
    assert [l.diff_id for l in img.layers] == busybox_image.diff_ids
    assert img.config.entrypoint == ("/bin/sh", "-c")
    assert img.config.working_dir == "/app" and img.config.user == "65534"
    assert img.platform == "linux/amd64"
    assert (img.rootfs / "app/hello.txt").read_text() == "hello from benchrun\n"
    assert os.readlink(img.rootfs / "bin/sh") == "busybox"
    assert (img.rootfs / "bin/busybox").stat().st_mode & 0o777 == 0o755
    # Inspect needs no network and no layout.
    again = benchrun.inspect(busybox_image.ref, store=store)
    assert again.digest == img.digest and again.rootfs == img.rootfs
    assert benchrun.inspect(img.digest, store=store).digest == img.digest
    # Nothing left in tmp/.
    assert list((store / "tmp").iterdir()) == []


def test_second_pull_is_a_cache_hit(busybox_image, store):
    first = benchrun.pull(busybox_image.ref, store=store)
    mtime = first.rootfs.stat().st_mtime_ns
    second = benchrun.pull(busybox_image.ref, store=store)
    assert second.rootfs == first.rootfs and second.rootfs.stat().st_mtime_ns == mtime
    assert second.timings["download"] == 0.0


def test_images_rmi_prune(busybox_image, store):
    img = benchrun.pull(busybox_image.ref, store=store)
    listing = benchrun.images(store=store)
    assert [s.digest for s in listing] == [img.digest]
    assert listing[0].references == (img.reference,)
    benchrun.rmi(busybox_image.ref, store=store)
    assert benchrun.images(store=store) == []
    with pytest.raises(benchrun.ImageNotFound):
        benchrun.inspect(busybox_image.ref, store=store)
    with pytest.raises(benchrun.ImageNotFound):
        benchrun.rmi(busybox_image.ref, store=store)
    stats = benchrun.prune(store=store)
    assert stats["blobs_removed"] >= 4 and stats["rootfs_removed"] == 1
    assert not img.rootfs.exists()
    assert list((store / "blobs" / "sha256").iterdir()) == []


def test_prune_keeps_what_is_referenced(busybox_image, store, tmp_path):
    img = benchrun.pull(busybox_image.ref, store=store)
    other = write_layout(tmp_path / "other", [Layer().file("x", "x")], tag="t")
    benchrun.pull(other.ref, store=store)
    benchrun.rmi(other.ref, store=store)
    benchrun.prune(store=store)
    assert benchrun.inspect(busybox_image.ref, store=store).rootfs == img.rootfs
    assert (img.rootfs / "app/hello.txt").exists()


def test_zstd_and_uncompressed_layers(store, tmp_path):
    info = write_layout(tmp_path / "mixed", [
        Layer("zstd").dir("a").file("a/z", "zstd layer"),
        Layer("none").file("a/n", "plain layer"),
        Layer("gzip").whiteout("a/z"),
    ])
    img = benchrun.pull(info.ref, store=store)
    assert (img.rootfs / "a/n").read_text() == "plain layer"
    assert not (img.rootfs / "a/z").exists()
    assert not (img.rootfs / "a/.wh.z").exists()


def test_platform_selection_from_index(store, tmp_path):
    info = write_layout(tmp_path / "multi", [Layer().file("f", "x")],
                        extra_platforms=("linux/arm64/v8", "linux/s390x"))
    img = benchrun.pull(info.ref, store=store)
    assert img.digest == info.manifests["linux/amd64"]
    arm = benchrun.pull(info.ref, store=store, platform="linux/arm64", unpack=False)
    assert arm.digest == info.manifests["linux/arm64/v8"]
    assert arm.config.labels["platform"] == "linux/arm64/v8"
    with pytest.raises(benchrun.ImageError, match="linux/riscv64.*available.*linux/arm64"):
        benchrun.pull(info.ref, store=store, platform="linux/riscv64")


def test_docker_archive(busybox_image, store, tmp_path):
    archive = tmp_path / "busybox.tar"
    subprocess.run(["skopeo", "copy", "--quiet", busybox_image.ref,
                    f"docker-archive:{archive}:bench/busybox:1"], check=True, timeout=60)
    img = benchrun.pull(f"docker-archive:{archive}", store=store)
    assert (img.rootfs / "app/hello.txt").read_text() == "hello from benchrun\n"
    assert img.config_digest == busybox_image.config_digest
    assert [l.diff_id for l in img.layers] == busybox_image.diff_ids
    assert benchrun.inspect(f"docker-archive:{archive}", store=store).digest == img.digest
    # Selecting by the (short, as docker save writes it) name or by index.
    assert benchrun.pull(f"docker-archive:{archive}:bench/busybox:1", store=store).digest == img.digest
    assert benchrun.pull(f"docker-archive:{archive}:@0", store=store).digest == img.digest
    with pytest.raises(benchrun.ImageError, match="no image tagged"):
        benchrun.pull(f"docker-archive:{archive}:other:2", store=store)


def test_missing_tag_and_missing_layout(busybox_image, store, tmp_path):
    with pytest.raises(benchrun.ImageError, match="no image named 'nope'.*available: latest"):
        benchrun.pull(f"oci:{busybox_image.layout}:nope", store=store)
    with pytest.raises(benchrun.ImageError, match="oci-layout"):
        benchrun.pull(f"oci:{tmp_path}/missing", store=store)


def test_tampered_layout_blob_is_digest_mismatch_and_leaves_nothing(store, tmp_path):
    info = write_layout(tmp_path / "bad", [Layer().file("f", "original content")])
    blob = info.layout / "blobs" / "sha256" / info.layer_digests[0].split(":")[1]
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.raises(benchrun.DigestMismatch):
        benchrun.pull(info.ref, store=store)
    assert not (store / "blobs/sha256" / info.layer_digests[0].split(":")[1]).exists()
    assert list((store / "rootfs").iterdir()) == []
    assert list((store / "tmp").iterdir()) == []


def test_config_diff_id_mismatch_publishes_no_rootfs(store, tmp_path):
    info = write_layout(tmp_path / "diff", [Layer().file("f", "x")])
    # Rewrite the config with a wrong diff_id and re-point the manifest and index at it.
    blobs = info.layout / "blobs" / "sha256"
    cfg = json.loads((blobs / info.config_digest.split(":")[1]).read_text())
    cfg["rootfs"]["diff_ids"] = ["sha256:" + "0" * 64]
    from support.ocilayout import _put_blob
    cdesc = _put_blob(info.layout, json.dumps(cfg).encode())
    man = json.loads((blobs / info.manifest_digest.split(":")[1]).read_text())
    man["config"].update(cdesc)
    mdesc = _put_blob(info.layout, json.dumps(man).encode())
    index = json.loads((info.layout / "index.json").read_text())
    index["manifests"][0].update(mdesc)
    (info.layout / "index.json").write_text(json.dumps(index))
    with pytest.raises(benchrun.DigestMismatch, match="diff_id"):
        benchrun.pull(info.ref, store=store)
    assert list((store / "rootfs").iterdir()) == []
    assert list((store / "tmp").iterdir()) == []
    assert benchrun.images(store=store) == []


def test_hostile_layer_fails_naming_entry_and_host_untouched(store, tmp_path):
    import tarfile
    victim = tmp_path / "victim"
    victim.mkdir()
    evil = tarfile.TarInfo("../../../../../../" + str(victim).lstrip("/") + "/pwned")
    evil.size = 5
    info = write_layout(tmp_path / "evil", [Layer().raw(evil, b"owned")])
    with pytest.raises(benchrun.UnsafeLayerError, match="pwned"):
        benchrun.pull(info.ref, store=store)
    assert list(victim.iterdir()) == []
    assert list((store / "rootfs").iterdir()) == []
    assert list((store / "tmp").iterdir()) == []


def _pull_in_child(ref: str, store: str, q) -> None:
    try:
        q.put(benchrun.pull(ref, store=store).digest)
    except Exception as e:  # pragma: no cover - reported to the parent
        q.put(f"error: {e!r}")


def test_two_processes_pull_the_same_image_at_once(store, tmp_path):
    layers = [busybox_layer(), Layer().file("big", os.urandom(8 << 20))]
    info = write_layout(tmp_path / "race", layers)
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_pull_in_child, args=(info.ref, str(store), q)) for _ in range(3)]
    for p in procs:
        p.start()
    results = [q.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert results == [info.manifest_digest] * 3
    assert len(list((store / "rootfs").iterdir())) == 1
    assert list((store / "tmp").iterdir()) == []
    img = benchrun.inspect(info.ref, store=store)
    assert (img.rootfs / "big").stat().st_size == 8 << 20


def test_pull_releases_the_gil(busybox_image, store):
    """Two threads can pull at once (the core drops the GIL while it works)."""
    import threading
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        benchrun.pull(busybox_image.ref, store=store).digest)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert results == [busybox_image.manifest_digest] * 2
