"""The red-team suite: programs an attacker would put in an image, run through benchrun.

`attacker_image({"name": C source, ...})` compiles each program statically with gcc and returns an
OCI layout with busybox plus /attack/<name>; images are built once per session per source set.
`attack(image, argv, backend=...)` runs it with the defaults a user gets and returns the Result.
"""

from __future__ import annotations

import hashlib
import subprocess
import uuid
from pathlib import Path
from typing import Callable, Optional

import pytest

import benchrun
from support.ocilayout import ImageInfo, Layer, busybox_layer, write_layout

pytestmark = pytest.mark.root

BACKENDS = ["sandbox", pytest.param("vm", marks=pytest.mark.slow)]


@pytest.fixture(scope="session")
def attacker_image(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., ImageInfo]:
    built: dict[str, ImageInfo] = {}
    work = tmp_path_factory.mktemp("attacker")

    def build(
        programs: dict[str, str], *, config: Optional[dict] = None, layers: tuple[Layer, ...] = ()
    ) -> ImageInfo:
        # Images with extra layers are built afresh each time, in a directory of their own.
        key = hashlib.sha256(repr((sorted(programs.items()), config)).encode())
        name = key.hexdigest()[:16]
        if not layers and name in built:
            return built[name]
        if layers:
            name += f"-{len(built)}-{uuid.uuid4().hex[:8]}"
        app = Layer("gzip").dir("attack")
        for prog, source in programs.items():
            src = work / f"{name}-{prog}.c"
            src.write_text(source)
            exe = work / f"{name}-{prog}"
            subprocess.run(
                ["gcc", "-static", "-O1", "-o", str(exe), str(src)], check=True, capture_output=True
            )
            app.file(f"attack/{prog}", exe.read_bytes(), mode=0o755)
        cfg = {"Env": ["PATH=/attack:/bin"], "WorkingDir": "/"}
        cfg.update(config or {})
        info = write_layout(work / name, [busybox_layer(), app, *layers], config=cfg)
        if not layers:
            built[name] = info
        return info

    return build


@pytest.fixture
def attack(store: Path) -> Callable[..., benchrun.Result]:
    def run(image: ImageInfo, argv: list[str], backend: str = "sandbox", **options):
        options.setdefault("timeout", 120)
        return benchrun.run(image.ref, argv, backend=backend, store=store, **options)

    return run
