"""Pulls from a real registry (Debian's docker-registry on loopback): anonymous, Basic, token auth,
credential files, a connection cut mid-blob, a registry serving wrong bytes."""

from __future__ import annotations

import base64
import json

import pytest

import benchrun
from support.ocilayout import Layer, busybox_layer, skopeo_push, write_layout
from support.registry import MeddlingProxy

pytestmark = pytest.mark.registry


@pytest.fixture(scope="module")
def pushed(registry, busybox_image):
    skopeo_push(busybox_image, f"{registry.host}/bench/busybox:1")
    return f"{registry.host}/bench/busybox:1"


def test_pull_from_registry(pushed, busybox_image, store):
    img = benchrun.pull(pushed, store=store)
    assert img.reference == pushed
    assert img.digest == busybox_image.manifest_digest
    assert (img.rootfs / "app/hello.txt").read_text() == "hello from benchrun\n"
    assert img.source == f"docker://{pushed}"
    # By digest too, and docker:// transport spelling.
    by_digest = benchrun.pull(f"docker://{pushed.rsplit(':', 1)[0]}@{img.digest}", store=store)
    assert by_digest.digest == img.digest and by_digest.rootfs == img.rootfs


def test_multi_platform_index_from_registry(registry, store, tmp_path):
    info = write_layout(tmp_path / "multi", [Layer().file("f", "x")],
                        extra_platforms=("linux/arm64/v8",))
    skopeo_push(info, f"{registry.host}/bench/multi:1")
    img = benchrun.pull(f"{registry.host}/bench/multi:1", store=store)
    assert img.digest == info.manifests["linux/amd64"]
    arm = benchrun.pull(f"{registry.host}/bench/multi:1", store=store, platform="linux/arm64/v8",
                        unpack=False)
    assert arm.digest == info.manifests["linux/arm64/v8"]


def test_unknown_image_and_tag(registry, store):
    with pytest.raises(benchrun.RegistryError) as e:
        benchrun.pull(f"{registry.host}/bench/nothing:1", store=store)
    assert e.value.http_status == 404


def test_basic_auth_with_credentials_and_docker_config(basic_registry, busybox_image, store, tmp_path):
    ref = f"{basic_registry.host}/bench/basic:1"
    skopeo_push(busybox_image, ref, creds="bench:s3cret")
    with pytest.raises(benchrun.AuthError) as e:
        benchrun.pull(ref, store=store, docker_config=tmp_path / "none.json")
    assert e.value.http_status == 401
    with pytest.raises(benchrun.AuthError):
        benchrun.pull(ref, store=store, username="bench", password="wrong")
    img = benchrun.pull(ref, store=store, username="bench", password="s3cret")
    assert img.digest == busybox_image.manifest_digest
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"auths": {basic_registry.host: {
        "auth": base64.b64encode(b"bench:s3cret").decode()}}}))
    store2 = tmp_path / "store2"
    assert benchrun.pull(ref, store=store2, docker_config=cfg).digest == img.digest


def test_credential_helper(basic_registry, busybox_image, tmp_path, monkeypatch):
    ref = f"{basic_registry.host}/bench/helper:1"
    skopeo_push(busybox_image, ref, creds="bench:s3cret")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    helper = bindir / "docker-credential-benchtest"
    helper.write_text('#!/bin/sh\nread url\necho "{\\"ServerURL\\":\\"$url\\",'
                      '\\"Username\\":\\"bench\\",\\"Secret\\":\\"s3cret\\"}"\n')
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"credHelpers": {basic_registry.host: "benchtest"}}))
    img = benchrun.pull(ref, store=tmp_path / "s", docker_config=cfg)
    assert img.digest == busybox_image.manifest_digest


def test_token_auth_anonymous_pull_caches_token(token_registry, busybox_image, store):
    ref = f"{token_registry.host}/bench/token:1"
    skopeo_push(busybox_image, ref, creds="bench:s3cret")
    issuer = token_registry.issuer
    before = len(issuer.requests)
    img = benchrun.pull(ref, store=store)
    assert img.digest == busybox_image.manifest_digest
    anon = issuer.requests[before:]
    # One token for the whole pull (manifest, config and both layers): cached per scope.
    assert len(anon) == 1, anon
    assert anon[0]["user"] == "" and anon[0]["scope"] == ["repository:bench/token:pull"]


def test_token_auth_with_credentials(token_registry, busybox_image, store):
    ref = f"{token_registry.host}/bench/token2:1"
    skopeo_push(busybox_image, ref, creds="bench:s3cret")
    issuer = token_registry.issuer
    before = len(issuer.requests)
    benchrun.pull(ref, store=store, username="bench", password="s3cret")
    assert [r["user"] for r in issuer.requests[before:]] == ["bench"]
    with pytest.raises(benchrun.AuthError):
        benchrun.pull(ref, store=store, username="bench", password="nope")


def test_connection_cut_mid_blob_resumes_with_range(registry, store, tmp_path):
    import os
    info = write_layout(tmp_path / "cut", [Layer().file("payload", os.urandom(4 << 20))])
    skopeo_push(info, f"{registry.host}/bench/cut:1")
    proxy = MeddlingProxy(registry.host, "cut")
    try:
        img = benchrun.pull(f"{proxy.host}/bench/cut:1", store=store, backoff_initial_ms=10)
    finally:
        proxy.stop()
    assert (img.rootfs / "payload").stat().st_size == 4 << 20
    ranged = [r for r in proxy.requests if r[2]]
    assert ranged, proxy.requests
    assert all(r[2].startswith("bytes=") and not r[2].startswith("bytes=0-") for r in ranged)


def test_wrong_bytes_is_digest_mismatch_and_store_stays_clean(registry, store, tmp_path):
    info = write_layout(tmp_path / "corrupt", [Layer().file("f", "some content " * 100)])
    skopeo_push(info, f"{registry.host}/bench/corrupt:1")
    proxy = MeddlingProxy(registry.host, "corrupt")
    try:
        with pytest.raises(benchrun.DigestMismatch):
            benchrun.pull(f"{proxy.host}/bench/corrupt:1", store=store, backoff_initial_ms=10)
    finally:
        proxy.stop()
    for d in info.layer_digests + [info.config_digest]:
        assert not (store / "blobs/sha256" / d.split(":")[1]).exists()
    assert list((store / "tmp").iterdir()) == []
    assert list((store / "rootfs").iterdir()) == []
    assert benchrun.images(store=store) == []


def test_https_required_for_non_loopback_hosts(store):
    # A non-loopback name is spoken to over HTTPS; nothing listens there, so it fails fast and
    # names the URL it tried.
    with pytest.raises(benchrun.RegistryError, match="https://"):
        benchrun.pull("registry.invalid/x:1", store=store, max_attempts=1)


def test_layer_dedup_across_images(registry, store, tmp_path):
    base = busybox_layer()
    a = write_layout(tmp_path / "a", [base, Layer().file("a", "a")])
    b = write_layout(tmp_path / "b", [base, Layer().file("b", "b")])
    skopeo_push(a, f"{registry.host}/bench/a:1")
    skopeo_push(b, f"{registry.host}/bench/b:1")
    events = []
    benchrun.pull(f"{registry.host}/bench/a:1", store=store)
    benchrun.pull(f"{registry.host}/bench/b:1", store=store,
                  progress=lambda kind, digest, done, total: events.append((kind, digest)))
    started = {d for k, d in events if k == "layer_start"}
    assert a.layer_digests[0] not in started  # shared base layer not downloaded again
    assert b.layer_digests[1] in started
