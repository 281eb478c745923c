"""Writes a one-layer OCI image layout from files in memory: how benchrun ships its own small
workloads (the calibration binary of `benchrun host noise`) without a registry. The layout is
byte-for-byte reproducible for the same files, so the store keeps one copy of it."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any, Mapping, Sequence, Union

_MTIME = 1_700_000_000


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _put_blob(layout: Path, data: bytes) -> dict[str, Any]:
    digest = _sha256(data)
    path = layout / "blobs" / "sha256" / digest.split(":", 1)[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"digest": digest, "size": len(data)}


def _layer_tar(files: Mapping[str, tuple[int, bytes]], dirs: Sequence[str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for d in dirs:
            ti = tarfile.TarInfo(d)
            ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755, _MTIME
            tf.addfile(ti)
        for name, (mode, data) in sorted(files.items()):
            ti = tarfile.TarInfo(name.lstrip("/"))
            ti.mode, ti.mtime, ti.size = mode, _MTIME, len(data)
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def write_image(
    directory: Union[str, "os.PathLike[str]"],
    files: Mapping[str, tuple[int, bytes]],
    *,
    cmd: Sequence[str],
    tag: str = "latest",
    dirs: Sequence[str] = ("tmp",),
    created_by: str = "benchrun",
) -> str:
    """Writes an OCI layout with one layer holding ``files`` ({path: (mode, content)}) and the
    directories ``dirs``, for this machine's architecture, with Cmd ``cmd``; returns the
    reference ``oci:DIR:TAG`` (another tag already in ``directory`` is kept)."""
    return write_layer_image(
        directory, _layer_tar(files, dirs), env=["PATH=/"], cmd=cmd, tag=tag, created_by=created_by
    )


def write_layer_image(
    directory: Union[str, "os.PathLike[str]"],
    tar: bytes,
    *,
    env: Sequence[str],
    cmd: Sequence[str],
    tag: str = "latest",
    created_by: str = "benchrun",
) -> str:
    """Writes the one-layer image of the uncompressed layer ``tar`` (gzip'd reproducibly), with
    ``env`` and Cmd ``cmd``, for this machine's architecture, as ``tag`` of the OCI layout in
    ``directory`` (other tags there are kept; this one is replaced); returns ``oci:DIR:TAG``."""
    layout = Path(directory)
    layout.mkdir(parents=True, exist_ok=True)
    layer = {
        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
        **_put_blob(layout, gzip.compress(tar, compresslevel=6, mtime=0)),
    }
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
    config = {
        "created": "2026-01-01T00:00:00Z",
        "architecture": arch,
        "os": "linux",
        "config": {"Env": list(env), "Cmd": list(cmd)},
        "rootfs": {"type": "layers", "diff_ids": [_sha256(tar)]},
        "history": [{"created_by": created_by}],
    }
    cfg = {
        "mediaType": "application/vnd.oci.image.config.v1+json",
        **_put_blob(layout, json.dumps(config, sort_keys=True).encode()),
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": cfg,
        "layers": [layer],
    }
    mdesc = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        **_put_blob(layout, json.dumps(manifest, sort_keys=True).encode()),
        "annotations": {"org.opencontainers.image.ref.name": tag},
    }
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    index_path = layout / "index.json"
    index = (
        json.loads(index_path.read_text())
        if index_path.exists()
        else {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json"}
    )
    index["manifests"] = [
        m
        for m in index.get("manifests", [])
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") != tag
    ] + [mdesc]
    index_path.write_text(json.dumps(index, sort_keys=True))
    return f"oci:{layout}:{tag}"


__all__ = ["write_image"]
