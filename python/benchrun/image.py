"""Python API for images: pull, inspect, list, remove, prune (the work happens in benchrun._core)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from benchrun import _core
from benchrun.store import default_docker_config, resolve_store

ProgressFn = Callable[[str, str, int, int], None]
"""progress(event, digest, done, total); event is one of resolved, layer_start, layer_progress,
layer_done, unpack_start, unpack_done, done."""


@dataclass(frozen=True)
class Layer:
    digest: str
    size: int
    media_type: str
    diff_id: str


@dataclass(frozen=True)
class ImageConfig:
    """The parts of the image config that decide how the image runs."""

    os: str
    architecture: str
    variant: str
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    env: tuple[str, ...]
    working_dir: str
    user: str
    stop_signal: str
    labels: dict[str, str]
    created: str


@dataclass(frozen=True)
class Image:
    """An image in the local store. ``rootfs`` is its unpacked tree (read-only: runs overlay it)."""

    reference: str
    digest: str
    config_digest: str
    platform: str
    config: ImageConfig
    layers: tuple[Layer, ...]
    size: int
    rootfs: Optional[Path]
    chain_id: Optional[str]
    source: str
    pulled_at: int
    manifest_media_type: str
    timings: dict[str, float] = field(default_factory=dict)
    manifest_json: bytes = field(default=b"", repr=False)
    config_json: bytes = field(default=b"", repr=False)

    @classmethod
    def _from_core(cls, d: dict[str, Any]) -> "Image":
        c = d["config"]
        config = ImageConfig(
            os=c["os"],
            architecture=c["architecture"],
            variant=c["variant"],
            entrypoint=tuple(c["entrypoint"]),
            cmd=tuple(c["cmd"]),
            env=tuple(c["env"]),
            working_dir=c["working_dir"],
            user=c["user"],
            stop_signal=c["stop_signal"],
            labels=dict(c["labels"]),
            created=c["created"],
        )
        layers = tuple(
            Layer(l["digest"], l["size"], l["media_type"], diff)
            for l, diff in zip(d["layers"], d["diff_ids"])
        )
        return cls(
            reference=d["reference"],
            digest=d["digest"],
            config_digest=d["config_digest"],
            platform=d["platform"],
            config=config,
            layers=layers,
            size=d["size"],
            rootfs=Path(d["rootfs"]) if d["rootfs"] else None,
            chain_id=d["chain_id"],
            source=d["source"],
            pulled_at=d["pulled_at"],
            manifest_media_type=d["manifest_media_type"],
            timings=dict(d.get("timings", {})),
            manifest_json=d["manifest_json"],
            config_json=d["config_json"],
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready description (what `benchrun inspect --json` prints)."""
        return {
            "reference": self.reference,
            "digest": self.digest,
            "config_digest": self.config_digest,
            "platform": self.platform,
            "source": self.source,
            "size": self.size,
            "rootfs": str(self.rootfs) if self.rootfs else None,
            "chain_id": self.chain_id,
            "pulled_at": self.pulled_at,
            "config": {
                "entrypoint": list(self.config.entrypoint),
                "cmd": list(self.config.cmd),
                "env": list(self.config.env),
                "working_dir": self.config.working_dir,
                "user": self.config.user,
                "stop_signal": self.config.stop_signal,
                "labels": self.config.labels,
                "created": self.config.created,
            },
            "layers": [
                {
                    "digest": l.digest,
                    "size": l.size,
                    "media_type": l.media_type,
                    "diff_id": l.diff_id,
                }
                for l in self.layers
            ],
        }


def _env_size(name: str) -> int:
    from benchrun.errors import ConfigError

    text = os.environ[name].strip()
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"${name} '{text}': expected a whole number of bytes") from None
    if value < 0:
        raise ConfigError(f"${name} '{text}': must not be negative")
    return value


def pull(
    ref: str,
    *,
    store: str | os.PathLike[str] | None = None,
    platform: Optional[str] = None,
    insecure_registries: Iterable[str] = (),
    username: Optional[str] = None,
    password: Optional[str] = None,
    registry_token: Optional[str] = None,
    docker_config: Optional[str | os.PathLike[str]] = None,
    ca_file: Optional[str | os.PathLike[str]] = None,
    unpack: bool = True,
    max_parallel: int = 4,
    max_attempts: int = 5,
    backoff_initial_ms: int = 200,
    gzip_engine: str = "isal",
    max_entries: Optional[int] = None,
    max_layer_bytes: Optional[int] = None,
    max_image_ratio: Optional[int] = None,
    max_image_bytes: Optional[int] = None,
    min_free_bytes: Optional[int] = None,
    progress: Optional[ProgressFn] = None,
) -> Image:
    """Pull ``ref`` into the local store, verify it and unpack it; cached by digest.

    ``ref`` is a docker-style reference (``busybox``, ``localhost:5000/app:1``, ``x@sha256:...``,
    ``docker://...``), ``oci:PATH[:TAG]`` (an OCI image layout) or ``docker-archive:PATH``.
    Plain HTTP is used automatically for loopback registries, otherwise only for hosts listed in
    ``insecure_registries``. Credentials: ``username``/``password`` or ``registry_token`` (sent as
    Bearer), else ``docker_config`` (default ``$DOCKER_CONFIG/config.json`` or
    ``~/.docker/config.json``, including credential helpers). Runs without the GIL.

    Decompression bombs: the layers of one image may unpack to at most ``max_image_ratio`` (100)
    times their compressed size (at least 64 MiB), and never more than ``max_image_bytes``
    (32 GiB); ``min_free_bytes`` stay free on the store's filesystem (default 5 % of it, at most
    1 GiB). Defaults come from $BENCHRUN_MAX_IMAGE_RATIO, $BENCHRUN_MAX_IMAGE_BYTES and
    $BENCHRUN_STORE_RESERVE when set. Beyond them: ImageTooLarge, and nothing is kept.
    """
    if max_parallel < 1:
        from benchrun.errors import ConfigError

        raise ConfigError(f"max_parallel {max_parallel}: must be at least 1")
    kwargs: dict[str, Any] = {}
    if max_entries is not None:
        kwargs["max_entries"] = max_entries
    if max_layer_bytes is not None:
        kwargs["max_layer_bytes"] = max_layer_bytes
    for name, value, env in (
        ("max_image_ratio", max_image_ratio, "BENCHRUN_MAX_IMAGE_RATIO"),
        ("max_image_bytes", max_image_bytes, "BENCHRUN_MAX_IMAGE_BYTES"),
        ("min_free_bytes", min_free_bytes, "BENCHRUN_STORE_RESERVE"),
    ):
        if value is None and os.environ.get(env):
            value = _env_size(env)
        if value is not None:
            kwargs[name] = value
    result = _core.pull(
        source=ref,
        store=resolve_store(store),
        platform=platform,
        insecure_registries=list(insecure_registries),
        username=username,
        password=password,
        registry_token=registry_token,
        docker_config=str(docker_config) if docker_config else default_docker_config(),
        ca_file=str(ca_file) if ca_file else "",
        max_attempts=max_attempts,
        backoff_initial_ms=backoff_initial_ms,
        max_parallel=max_parallel,
        unpack=unpack,
        # As root, ownership from the image is kept; otherwise files belong to the caller.
        preserve_ownership=os.geteuid() == 0,
        gzip_engine=gzip_engine,
        progress=progress,
        **kwargs,
    )
    return Image._from_core(result)


def inspect(ref: str, *, store: str | os.PathLike[str] | None = None) -> Image:
    """The image ``ref`` (reference or manifest digest) from the local store; no network."""
    return Image._from_core(_core.load_image(reference=ref, store=resolve_store(store)))


@dataclass(frozen=True)
class ImageSummary:
    references: tuple[str, ...]
    digest: str
    platform: str
    size: int
    layers: int
    rootfs: Optional[Path]
    pulled_at: int


def images(*, store: str | os.PathLike[str] | None = None) -> list[ImageSummary]:
    """Every image in the local store, newest first."""
    out = [
        ImageSummary(
            references=tuple(sorted(d["references"])),
            digest=d["digest"],
            platform=d["platform"],
            size=d["size"],
            layers=len(d["layers"]),
            rootfs=Path(d["rootfs"]) if d["rootfs"] else None,
            pulled_at=d["pulled_at"],
        )
        for d in _core.list_images(store=resolve_store(store))
    ]
    return sorted(out, key=lambda s: s.pulled_at, reverse=True)


def rmi(ref: str, *, store: str | os.PathLike[str] | None = None) -> None:
    """Remove a reference (or, given a manifest digest, the image). Space is freed by prune()."""
    from benchrun.errors import ImageNotFound

    if not _core.remove_image(reference=ref, store=resolve_store(store)):
        raise ImageNotFound(f"image '{ref}' is not in the local store")


def prune(*, store: str | os.PathLike[str] | None = None) -> dict[str, int]:
    """Remove blobs and rootfs trees no image uses, temp files older than a day, and the store's
    microVM root images (``<store>/vm/ext4``) whose rootfs tree is gone."""
    root = resolve_store(store)
    stats = dict(_core.prune(store=root))
    stats["vm_images_removed"] = _prune_vm_images(Path(root))
    return stats


def _prune_vm_images(root: Path) -> int:
    # An ext4 image is named after the ChainID hex of the rootfs it was built from. A run that is
    # booting one keeps its open file (unlinking does not disturb it).
    removed = 0
    ext4 = root / "vm" / "ext4"
    if not ext4.is_dir():
        return 0
    for img in ext4.glob("*.ext4"):
        if not (root / "rootfs" / f"sha256-{img.stem}").exists():
            try:
                img.unlink()
                removed += 1
            except FileNotFoundError:
                pass
    return removed


def resolve_digest(
    ref: str,
    *,
    insecure_registries: Iterable[str] = (),
    username: Optional[str] = None,
    password: Optional[str] = None,
    registry_token: Optional[str] = None,
    docker_config: Optional[str | os.PathLike[str]] = None,
    ca_file: Optional[str | os.PathLike[str]] = None,
) -> str:
    """The manifest digest a registry reference points to now (fetches the manifest only, no
    blobs): what a job pins at submission. Raises RegistryError, AuthError, ImageNotFound."""
    d = _core.resolve_digest(
        reference=ref,
        insecure_registries=list(insecure_registries),
        username=username,
        password=password,
        registry_token=registry_token,
        docker_config=os.fspath(docker_config) if docker_config else default_docker_config(),
        ca_file=os.fspath(ca_file) if ca_file else "",
    )
    return str(d["digest"])


def normalize_reference(ref: str) -> str:
    """The canonical form of a reference: ``busybox`` -> ``docker.io/library/busybox:latest``."""
    return str(_core.normalize_reference(ref))


__all__ = [
    "Image",
    "ImageConfig",
    "ImageSummary",
    "Layer",
    "images",
    "inspect",
    "normalize_reference",
    "resolve_digest",
    "prune",
    "pull",
    "rmi",
]
