"""The benchrun command line: pull, inspect, images, rmi, prune; errors and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def run(*args, store, check=True):
    env = dict(os.environ, BENCHRUN_CACHE=str(store))
    p = subprocess.run([sys.executable, "-m", "benchrun.cli", *args], capture_output=True,
                       text=True, env=env, timeout=120)
    if check and p.returncode != 0:
        raise AssertionError(f"exit {p.returncode}: {p.stderr}")
    return p


def test_pull_inspect_images_rmi_prune(busybox_image, store):
    p = run("pull", "--json", busybox_image.ref, store=store)
    doc = json.loads(p.stdout)
    assert doc["digest"] == busybox_image.manifest_digest
    assert set(doc["timings"]) == {"resolve", "download", "unpack", "total"}
    p = run("inspect", busybox_image.ref, store=store)
    assert busybox_image.manifest_digest in p.stdout and "Entrypoint:" in p.stdout
    assert '["/bin/sh", "-c"]' in p.stdout and "linux/amd64" in p.stdout
    doc = json.loads(run("inspect", "--json", busybox_image.ref, store=store).stdout)
    assert doc["config"]["user"] == "65534" and len(doc["layers"]) == 2
    listing = json.loads(run("images", "--json", store=store).stdout)
    assert [i["digest"] for i in listing] == [busybox_image.manifest_digest]
    assert "REFERENCE" in run("images", store=store).stdout
    assert "Untagged" in run("rmi", busybox_image.ref, store=store).stdout
    stats = json.loads(run("prune", "--json", store=store).stdout)
    assert stats["rootfs_removed"] == 1


def test_errors_are_one_line_with_exit_125(store, tmp_path):
    p = run("pull", f"oci:{tmp_path}/nope", store=store, check=False)
    assert p.returncode == 125
    assert p.stderr.startswith("benchrun: error: ") and p.stderr.count("\n") == 1
    assert "Traceback" not in p.stderr
    p = run("inspect", "--no-pull", "busybox", store=store, check=False)
    assert p.returncode == 125 and "not in the local store" in p.stderr
    p = run("pull", "Bad/Name", store=store, check=False)
    assert p.returncode == 125 and "lowercase" in p.stderr


def test_usage_error_exit_2(store):
    assert run("frobnicate", store=store, check=False).returncode == 2


@pytest.mark.registry
def test_pull_from_registry_cli(registry, busybox_image, store):
    from support.ocilayout import skopeo_push
    skopeo_push(busybox_image, f"{registry.host}/cli/busybox:1")
    p = run("pull", f"{registry.host}/cli/busybox:1", store=store)
    assert busybox_image.manifest_digest in p.stdout
