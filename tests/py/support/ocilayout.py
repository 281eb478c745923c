"""A small OCI image-layout writer for tests: layers built entry by entry, written deterministically.

Hostile layers are built with Layer.raw(), which takes any tarfile.TarInfo as is.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = {
    "none": "application/vnd.oci.image.layer.v1.tar",
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}
MTIME = 1_700_000_000


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Layer:
    def __init__(self, compression: str = "gzip") -> None:
        assert compression in MT_LAYER
        self.compression = compression
        self._entries: list[tuple[tarfile.TarInfo, Optional[bytes]]] = []

    def _info(self, path: str, type_: bytes, mode: int, uid: int, gid: int) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(path)
        ti.type = type_
        ti.mode = mode
        ti.uid, ti.gid = uid, gid
        ti.mtime = MTIME
        return ti

    def dir(self, path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> "Layer":
        self._entries.append((self._info(path, tarfile.DIRTYPE, mode, uid, gid), None))
        return self

    def file(self, path: str, data: bytes | str = b"", mode: int = 0o644, uid: int = 0,
             gid: int = 0, xattrs: Optional[dict[str, str]] = None) -> "Layer":
        if isinstance(data, str):
            data = data.encode()
        ti = self._info(path, tarfile.REGTYPE, mode, uid, gid)
        ti.size = len(data)
        if xattrs:
            ti.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in xattrs.items()}
        self._entries.append((ti, data))
        return self

    def symlink(self, path: str, target: str, uid: int = 0, gid: int = 0) -> "Layer":
        ti = self._info(path, tarfile.SYMTYPE, 0o777, uid, gid)
        ti.linkname = target
        self._entries.append((ti, None))
        return self

    def hardlink(self, path: str, target: str) -> "Layer":
        ti = self._info(path, tarfile.LNKTYPE, 0o644, 0, 0)
        ti.linkname = target
        self._entries.append((ti, None))
        return self

    def fifo(self, path: str, mode: int = 0o644) -> "Layer":
        self._entries.append((self._info(path, tarfile.FIFOTYPE, mode, 0, 0), None))
        return self

    def device(self, path: str, major: int = 1, minor: int = 3) -> "Layer":
        ti = self._info(path, tarfile.CHRTYPE, 0o666, 0, 0)
        ti.devmajor, ti.devminor = major, minor
        self._entries.append((ti, None))
        return self

    def whiteout(self, path: str) -> "Layer":
        parent, _, name = path.rstrip("/").rpartition("/")
        return self.file(f"{parent}/.wh.{name}" if parent else f".wh.{name}")

    def opaque(self, dir_path: str) -> "Layer":
        return self.file(f"{dir_path.rstrip('/')}/.wh..wh..opq")

    def raw(self, info: tarfile.TarInfo, data: Optional[bytes] = None) -> "Layer":
        self._entries.append((info, data))
        return self

    def tar_bytes(self) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
            for info, data in self._entries:
                tf.addfile(info, io.BytesIO(data) if data is not None else None)
        return buf.getvalue()

    def blob(self) -> tuple[bytes, bytes]:
        """(compressed blob, uncompressed tar)."""
        tar = self.tar_bytes()
        if self.compression == "none":
            return tar, tar
        if self.compression == "gzip":
            return gzip.compress(tar, compresslevel=6, mtime=0), tar
        out = subprocess.run(["zstd", "-q", "-c", "-3"], input=tar, capture_output=True, check=True)
        return out.stdout, tar


@dataclass
class ImageInfo:
    layout: Path
    tag: str
    manifest_digest: str
    config_digest: str
    layer_digests: list[str]
    diff_ids: list[str]
    index_digest: Optional[str] = None
    manifests: dict[str, str] = field(default_factory=dict)  # platform -> manifest digest

    @property
    def ref(self) -> str:
        return f"oci:{self.layout}:{self.tag}"


def _put_blob(layout: Path, data: bytes) -> dict:
    digest = sha256(data)
    p = layout / "blobs" / "sha256" / digest.split(":", 1)[1]
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return {"digest": digest, "size": len(data)}


def _image_manifest(layout: Path, layers: list[Layer], config: dict, os_: str, arch: str,
                    variant: str = "") -> tuple[dict, str, list[str], list[str]]:
    layer_descs, diff_ids = [], []
    for layer in layers:
        blob, tar = layer.blob()
        d = _put_blob(layout, blob)
        layer_descs.append({"mediaType": MT_LAYER[layer.compression], **d})
        diff_ids.append(sha256(tar))
    cfg = {
        "created": "2026-01-01T00:00:00Z",
        "architecture": arch,
        "os": os_,
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "benchrun tests"} for _ in layers],
    }
    if variant:
        cfg["variant"] = variant
    cfg_blob = json.dumps(cfg, sort_keys=True).encode()
    cfg_desc = {"mediaType": MT_CONFIG, **_put_blob(layout, cfg_blob)}
    manifest = {"schemaVersion": 2, "mediaType": MT_MANIFEST, "config": cfg_desc,
                "layers": layer_descs}
    mbytes = json.dumps(manifest, sort_keys=True).encode()
    mdesc = {"mediaType": MT_MANIFEST, **_put_blob(layout, mbytes)}
    return mdesc, cfg_desc["digest"], [l["digest"] for l in layer_descs], diff_ids


def write_layout(layout: Path, layers: list[Layer], config: Optional[dict] = None,
                 tag: str = "latest", arch: str = "amd64", os_: str = "linux",
                 extra_platforms: tuple[str, ...] = ()) -> ImageInfo:
    """Writes (or adds to) an OCI layout. With extra_platforms ("linux/arm64/v8", ...), the tag
    names an index holding the main platform plus a manifest per extra platform."""
    layout = Path(layout)
    layout.mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    config = dict(config or {})
    mdesc, cfg_digest, layer_digests, diff_ids = _image_manifest(layout, layers, config, os_, arch)
    info = ImageInfo(layout, tag, mdesc["digest"], cfg_digest, layer_digests, diff_ids)
    top = dict(mdesc)
    if extra_platforms:
        entries = [{**mdesc, "platform": {"os": os_, "architecture": arch}}]
        info.manifests[f"{os_}/{arch}"] = mdesc["digest"]
        for plat in extra_platforms:
            pos, parch, *pvar = plat.split("/")
            label = dict(config.get("Labels") or {})
            label["platform"] = plat
            d, *_ = _image_manifest(layout, layers, {**config, "Labels": label}, pos, parch,
                                    pvar[0] if pvar else "")
            p = {"os": pos, "architecture": parch}
            if pvar:
                p["variant"] = pvar[0]
            entries.append({**d, "platform": p})
            info.manifests[plat] = d["digest"]
        index = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": entries}
        top = {"mediaType": MT_INDEX, **_put_blob(layout, json.dumps(index, sort_keys=True).encode())}
        info.index_digest = top["digest"]
    index_path = layout / "index.json"
    outer = json.loads(index_path.read_text()) if index_path.exists() else {
        "schemaVersion": 2, "mediaType": MT_INDEX, "manifests": []}
    outer["manifests"] = [m for m in outer["manifests"]
                          if m.get("annotations", {}).get("org.opencontainers.image.ref.name") != tag]
    outer["manifests"].append({**top, "annotations": {"org.opencontainers.image.ref.name": tag}})
    index_path.write_text(json.dumps(outer, sort_keys=True))
    return info


BUSYBOX_APPLETS = ("sh", "echo", "cat", "ls", "true", "false", "sleep", "env", "id", "pwd",
                   "nproc", "yes", "head", "base64", "dd", "wc", "touch", "mkdir", "rm", "test")


def busybox_layer(compression: str = "gzip") -> Layer:
    """A runnable userland: Debian's static busybox plus applet links and passwd/group files."""
    bb = Path(shutil.which("busybox") or "/bin/busybox").read_bytes()
    layer = Layer(compression)
    for d in ("bin", "etc", "tmp", "root", "home", "work"):
        layer.dir(d, mode=0o1777 if d == "tmp" else 0o755)
    layer.file("bin/busybox", bb, mode=0o755)
    for applet in BUSYBOX_APPLETS:
        layer.symlink(f"bin/{applet}", "busybox")
    layer.file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"
               "nobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n")
    layer.file("etc/group", "root:x:0:\nnogroup:x:65534:\n")
    return layer


def skopeo_push(info: ImageInfo, dest: str, creds: Optional[str] = None) -> None:
    """Copies the image to a registry (dest like 127.0.0.1:5000/name:tag) with skopeo."""
    cmd = ["skopeo", "copy", "--quiet", "--dest-tls-verify=false"]
    if creds:
        cmd += ["--dest-creds", creds]
    # --all keeps indexes; a single-platform image is copied as is either way.
    cmd += ["--all", f"oci:{info.layout}:{info.tag}", f"docker://{dest}"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
