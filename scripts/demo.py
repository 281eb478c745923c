"""The main job, end to end: a local docker-registry, a busybox image built from Debian's
busybox-static and pushed with skopeo, then `benchrun pull`, `inspect` and `run` against it."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "py"))

from support.ocilayout import Layer, busybox_layer, skopeo_push, write_layout  # noqa: E402
from support.registry import RegistryServer  # noqa: E402


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="benchrun-demo-") as tmp:
        work = Path(tmp)
        registry = RegistryServer(work / "registry")
        try:
            app = Layer("gzip").dir("bench").file("bench/run.sh", "#!/bin/sh\necho hello\n", mode=0o755)
            info = write_layout(work / "layout", [busybox_layer(), app], config={
                "Entrypoint": ["/bench/run.sh"], "Env": ["PATH=/bin"], "WorkingDir": "/bench"})
            ref = f"{registry.host}/demo/busybox:1"
            skopeo_push(info, ref)
            print(f"== registry at {registry.url}, image pushed as {ref}\n", flush=True)
            store = str(work / "store")
            for args in (["pull", ref], ["inspect", ref], ["images"],
                         ["run", "--vcpus", "1", "--memory", "64m", "--timeout", "30", ref],
                         ["run", "--json", "--timeout", "30", ref, "sh", "-c", "echo benchmark; id -u"],
                         # The same image in a QEMU microVM (the first run fetches the kernel).
                         ["run", "--backend", "vm", "--entrypoint", "cat", "--timeout", "60", ref,
                          "/proc/version"]):
                args = [args[0], "--store", store, *args[1:]]  # options before IMAGE
                print(f"$ benchrun {' '.join(args)}", flush=True)
                subprocess.run([sys.executable, "-m", "benchrun.cli", *args], check=True)
                print(flush=True)
        finally:
            registry.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
