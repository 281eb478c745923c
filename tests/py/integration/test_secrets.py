"""Secrets (docs/security.md "Secrets"): /run/secrets/NAME inside a sandbox run, with its mode and
owner, on a read-only tmpfs; the value nowhere else (the --json document, stderr, -v, the store
directory, a refused job's database); redaction; bad names and unsupported places refused."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import benchrun
from benchrun.errors import ConfigError
from benchrun.runner import execute, make_spec

root = pytest.mark.root


def cli(*args: str, store, env_extra=None) -> subprocess.CompletedProcess:
    env = dict(os.environ, BENCHRUN_CACHE=str(store), **(env_extra or {}))
    return subprocess.run(
        [sys.executable, "-m", "benchrun.cli", *args], capture_output=True, env=env, timeout=120
    )


def data_of(path: Path) -> bytes:
    """The file's allocated data only (the store keeps sparse 10 GiB ext4 templates: their holes
    hold nothing, and reading them would take half a minute)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size, out, pos = os.fstat(fd).st_size, [], 0
        while pos < size:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:  # ENXIO: only a hole remains
                break
            end = os.lseek(fd, start, os.SEEK_HOLE)
            out.append(os.pread(fd, end - start, start))
            pos = end
        return b"".join(out)
    finally:
        os.close(fd)


def files_containing(top: Path, needle: bytes) -> list[Path]:
    hits = []
    for dirpath, _, names in os.walk(top):
        for n in names:
            p = Path(dirpath) / n
            if p.is_symlink() or not p.is_file():
                continue
            if needle in data_of(p):
                hits.append(p)
    return hits


def fresh() -> bytes:
    return f"s3cr3t-{uuid.uuid4().hex}".encode()


# busybox_image (tests/py/conftest.py): Entrypoint ["/bin/sh", "-c"], User 65534.
INSIDE = (
    "stat -c '%a %u %g %F' /run/secrets/tok /run/secrets/envtok; id -u; id -g; "
    "sha256sum /run/secrets/tok | cut -d' ' -f1; "
    "grep ' /run/secrets ' /proc/mounts | cut -d' ' -f3,4 | cut -d, -f1; "
    "cat /run/secrets/tok; echo; cat /run/secrets/envtok >&2; "
    "cp /run/secrets/tok /tmp/copy; "
    "(echo x > /run/secrets/new) 2>/dev/null && echo WRITABLE || echo read-only"
)


@root
def test_cli_secret_inside_and_nowhere_else(busybox_image, store, tmp_path):
    value, env_value = fresh(), fresh()
    host_file = tmp_path / "host-secret"
    host_file.write_bytes(value)
    p = cli(
        "run", "-v", "--json", "--secret", f"tok={host_file}", "--secret", "envtok",
        "--output", "/tmp/copy", busybox_image.ref, INSIDE,
        store=store, env_extra={"BENCHRUN_SECRET_envtok": env_value.decode()},
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    lines = doc["stdout"].splitlines()
    uid, gid = lines[2], lines[3]
    assert uid == "65534"
    assert lines[0] == f"400 {uid} {gid} regular file"
    assert lines[1] == f"400 {uid} {gid} regular file"
    assert lines[4] == hashlib.sha256(value).hexdigest()  # the content, exactly
    assert lines[5] == "tmpfs ro"
    assert lines[6] == "***"  # cat of the secret, redacted
    assert lines[7] == "read-only"
    assert doc["stderr"] == "***"
    assert doc["outputs"]["/tmp/copy"] == "***"
    notices = [n for n in doc["notices"] if n.startswith("secret ")]
    assert notices == [
        "secret 'tok' appeared in stdout, output /tmp/copy: redacted as ***",
        "secret 'envtok' appeared in stderr: redacted as ***",
    ]
    for v in (value, env_value):
        assert v not in p.stdout and v not in p.stderr  # the --json document and -v's summary
        assert files_containing(store, v) == []  # the store: runs, images, anything


@root
def test_api_bytes_and_path_redaction_and_spec(busybox_image, store, tmp_path):
    a, b = fresh(), fresh()
    (tmp_path / "b").write_bytes(b)
    spec = make_spec(
        busybox_image.ref,
        ["cat /run/secrets/a; echo; ls /run/secrets; wc -c < /run/secrets/b"],
        store=store,
        secrets={"a": a, "b": tmp_path / "b"},
    )
    # Not a run option: not in options, repr or with_options's copy.
    assert "secrets" not in spec.options
    assert a.decode() not in repr(spec) and a.decode() not in str(spec.options)
    assert spec.with_options(timeout=30).secrets == spec.secrets
    r = execute(spec)
    assert r.exit_code == 0, r.stderr
    assert r.stdout == b"***\na\nb\n" + str(len(b)).encode() + b"\n"
    assert r.notices[-1] == "secret 'a' appeared in stdout: redacted as ***"
    assert a not in json.dumps(r.to_json()).encode()
    # No secrets: no /run/secrets mount at all (the image's /run, if any, as it is).
    r = benchrun.run(
        busybox_image.ref, ["test -e /run/secrets && echo yes || echo no"], store=store
    )
    assert r.stdout == b"no\n"


@root
def test_bad_secrets_refused_before_anything_runs(busybox_image, store, tmp_path):
    value = fresh()
    f = tmp_path / "f"
    f.write_bytes(value)
    for arg, message in [
        (f"../x={f}", b"secret name '../x'"),
        (f"a/b={f}", b"secret name 'a/b'"),
        (f"ok={tmp_path / 'missing'}", b"secret 'ok': cannot read"),
        ("nothere", b"BENCHRUN_SECRET_nothere is not set"),
    ]:
        p = cli("run", "--secret", arg, busybox_image.ref, "true", store=store)
        assert p.returncode == 2, (arg, p.stderr)
        assert message in p.stderr and value not in p.stderr
    p = cli("run", "--secret", f"a={f}", "--secret", f"a={f}", busybox_image.ref, store=store)
    assert p.returncode == 2 and b"given twice" in p.stderr
    assert not store.exists() or files_containing(store, value) == []
    with pytest.raises(ConfigError, match="vm backend does not deliver secrets"):
        make_spec(busybox_image.ref, backend="vm", secrets={"a": value})
    with pytest.raises(ConfigError, match="larger than"):
        make_spec(busybox_image.ref, secrets={"a": b"x" * ((1 << 20) + 1)})


def test_campaign_variant_with_secrets_refused():
    from benchrun.campaign.spec import Variant

    for doc in (
        {"name": "v", "image": "busybox", "secrets": {"a": "VALUE-1"}},
        {"name": "v", "image": "busybox", "options": {"secrets": {"a": "VALUE-1"}}},
    ):
        with pytest.raises(ConfigError, match="campaigns cannot carry secrets yet") as e:
            Variant.from_dict(doc)
        assert "VALUE-1" not in str(e.value)


def test_job_with_secrets_refused_by_the_server(tmp_path):
    aiohttp = pytest.importorskip("aiohttp")
    from benchrun.server.app import make_app, start_site
    from benchrun.server.config import ServerConfig
    from benchrun.server.db import open_database
    from benchrun.server.registries import RegistryPolicy

    value = fresh().decode()
    db_file = tmp_path / "jobs.db"
    image = "127.0.0.1:5000/bench/app@sha256:" + "ab" * 32

    async def body() -> None:
        db = open_database(f"sqlite:///{db_file}")
        await db.migrate()
        cfg = ServerConfig(
            db_url=f"sqlite:///{db_file}", registries=RegistryPolicy.parse(["127.0.0.1:5000"])
        )
        web, port = await start_site(make_app(db, cfg), "127.0.0.1", 0, shutdown_timeout=2)
        try:
            admin = await db.create_token("admin", admin=True)
            url = f"http://127.0.0.1:{port}"
            async with aiohttp.ClientSession() as s:
                h = {"Authorization": f"Bearer {admin}"}
                async with s.post(f"{url}/v0/projects", json={"name": "p1"}, headers=h) as r:
                    project = (await r.json())["id"]
                for job in (
                    {"image": image, "spec": {"secrets": {"tok": value}}},
                    {"image": image, "secrets": {"tok": value}},
                ):
                    async with s.post(
                        f"{url}/v0/projects/{project}/jobs", json=job, headers=h
                    ) as r:
                        text = await r.text()
                        assert r.status == 400, text
                        assert "jobs cannot carry secrets yet" in text and value not in text
        finally:
            await web.cleanup()
            await db.close()

    asyncio.run(asyncio.wait_for(body(), 60))
    assert files_containing(tmp_path, value.encode()) == []
