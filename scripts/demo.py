"""The main job, end to end: a local docker-registry, a busybox image built from Debian's
busybox-static and pushed with skopeo, then `benchrun pull`, `inspect` and `run` against it, in the
sandbox and in a microVM. Every step's output is checked against what the demo says it shows; the
first mismatch stops the demo with exit 1."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "py"))

from support.ocilayout import Layer, busybox_layer, skopeo_push, write_layout  # noqa: E402
from support.registry import RegistryServer  # noqa: E402

# The image's entrypoint, as in many benchmark images: run the given command, else the default
# benchmark (so `benchrun run IMAGE CMD...` runs CMD, as `docker run` would with this image).
RUN_SH = """#!/bin/sh
[ $# -gt 0 ] || set -- echo hello
exec "$@"
"""


class DemoFailed(Exception):
    pass


def step(store: str, args: list[str], claim: str, check: Callable[[str], bool]) -> None:
    """Runs `benchrun ARGS` (with --store), shows its output, and checks `claim` on its stdout."""
    args = [args[0], "--store", store, *args[1:]]  # options before IMAGE
    print(f"$ benchrun {shlex.join(args)}", flush=True)
    proc = subprocess.run([sys.executable, "-m", "benchrun.cli", *args], capture_output=True,
                          text=True)
    sys.stdout.write(proc.stdout)
    sys.stdout.flush()
    sys.stderr.write(proc.stderr)
    sys.stderr.flush()
    if proc.returncode != 0:
        raise DemoFailed(f"`benchrun {args[0]}` exited {proc.returncode}, expected 0")
    if not check(proc.stdout):
        raise DemoFailed(f"`benchrun {args[0]}`: expected {claim}; its stdout is above")
    print(f"-- ok: {claim}\n", flush=True)


def demo(work: Path) -> None:
    registry = RegistryServer(work / "registry")
    try:
        app = Layer("gzip").dir("bench").file("bench/run.sh", RUN_SH, mode=0o755)
        info = write_layout(work / "layout", [busybox_layer(), app], config={
            "Entrypoint": ["/bench/run.sh"], "Env": ["PATH=/bin"], "WorkingDir": "/bench"})
        ref = f"{registry.host}/demo/busybox:1"
        skopeo_push(info, ref)
        print(f"== registry at {registry.url}, image {info.manifest_digest} pushed as {ref}\n",
              flush=True)
        store = str(work / "store")

        step(store, ["pull", ref], f"{ref} pulled and verified as {info.manifest_digest}",
             lambda out: out.startswith(f"{ref}: {info.manifest_digest} "))
        step(store, ["inspect", ref], "the entrypoint /bench/run.sh",
             lambda out: 'Entrypoint:  ["/bench/run.sh"]' in out.splitlines())
        step(store, ["images"], f"{ref} in the store",
             lambda out: any(line.split()[:1] == [ref] for line in out.splitlines()))
        step(store, ["run", "--vcpus", "1", "--memory", "64m", "--timeout", "30", ref],
             "the image's default benchmark printing 'hello'", lambda out: out == "hello\n")
        # The command replaces the image's Cmd and is passed to its entrypoint; the image names no
        # User, so the workload runs as the image's root (uid 0 inside its user namespace).
        step(store, ["run", "--json", "--timeout", "30", ref, "sh", "-c", "echo benchmark; id -u"],
             "a JSON result whose stdout is the command's output: 'benchmark', then uid 0",
             lambda out: _json_stdout(out) == "benchmark\n0\n")
        # The same image in a QEMU microVM, which boots its own kernel (Debian's cloud kernel,
        # fetched on the first run).
        step(store, ["run", "--backend", "vm", "--timeout", "120", ref, "cat", "/proc/version"],
             "the microVM's own kernel: Debian's cloud kernel",
             lambda out: out.startswith("Linux version ") and "-cloud-amd64 " in out)
    finally:
        registry.stop()


def _json_stdout(out: str) -> object:
    doc = json.loads(out)
    return doc["stdout"] if doc.get("exit_code") == 0 else None


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="benchrun-demo-") as tmp:
        try:
            demo(Path(tmp))
        except DemoFailed as e:
            print(f"demo: FAILED: {e}", file=sys.stderr)
            return 1
    print("demo: every step showed what it claims")
    return 0


if __name__ == "__main__":
    sys.exit(main())
