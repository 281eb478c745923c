"""Every backend side by side (issue 16): start-up and measurement fidelity, interleaved, one image.

Backends: sandbox, vm, runc, runsc, crun (those this host can run: benchrun.backend_unavailable
says why not) and the peers `docker run --rm --network none` (Debian's docker.io; dockerd started
here if it is not running, the image loaded with `docker load` of a docker-archive made by skopeo)
and podman (if installed). bwrap is the start-up baseline, the bare host the fidelity baseline.

1. start-up: a warm run of /bin/true: benchrun.run() (API) and `benchrun run` (CLI), ratios to
   `bwrap --unshare-all` over the same unpacked tree; for runc and runsc also the runtime's own
   `run` of a bundle over the same tree (runc spec's config), for the target "the backend adds
   <= 10 ms to the runtime's own run".
2. fidelity: bench/fidelity_loops.c (static, self-timing): cpu, syscall (1M getppid), file (/tmp
   write + read), mem (64 MiB streaming): per backend the median overhead vs bare and the CV
   ratio to bare.

Run as root from the project venv:
    python bench/backends_bench.py [--rounds 10] [--reps 5] [--no-vm] [--no-docker] [--json F]
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "py"))

import benchrun  # noqa: E402
from benchrun import _core  # noqa: E402
from benchrun.options import backend_unavailable  # noqa: E402
from support.ocilayout import Layer, busybox_layer, write_layout  # noqa: E402

LOOPS = ("cpu", "syscall", "file", "mem")
RUNTIMES = ("runc", "runsc", "crun")


def build_image(work: Path) -> tuple[str, Path]:
    exe = work / "loops"
    subprocess.run(
        ["cc", "-O2", "-static", "-o", str(exe), str(HERE / "fidelity_loops.c")], check=True
    )
    layer = (
        Layer("gzip")
        .dir("proc")
        .dir("dev")
        .dir("sys")
        .dir("tmp", mode=0o1777)
        .file("loops", exe.read_bytes(), mode=0o755)
    )
    info = write_layout(work / "layout", [busybox_layer(), layer], config={"Env": ["PATH=/bin"]})
    return info.ref, exe


def stats(xs: list[float]) -> dict:
    m = statistics.mean(xs)
    return {
        "n": len(xs),
        "median": statistics.median(xs),
        "mean": m,
        "min": min(xs),
        "cv": statistics.stdev(xs) / m if len(xs) > 1 and m else 0.0,
    }


def timed(argv: list[str], **kw) -> tuple[float, subprocess.CompletedProcess]:
    t = time.perf_counter()
    p = subprocess.run(argv, capture_output=True, text=True, **kw)
    return time.perf_counter() - t, p


def bundle(work: Path, runtime: str, ref: str, store: Path, rootfs: str) -> Path:
    """benchrun's own bundle for this image and /bin/true (its config.json, captured by running
    the oci backend through a wrapper that copies it), over the image's tree read-only, with its
    own /tmp and cgroup: the runtime's `run` of the same bundle, without benchrun around it."""
    b = work / f"bundle-{runtime}"
    b.mkdir(exist_ok=True)
    wrapper = work / f"capture-{runtime}"
    wrapper.write_text(
        "#!/bin/sh\n"
        'prev=""; for a in "$@"; do [ "$prev" = --bundle ] && cp "$a/config.json" '
        f'{b}/config.json; prev="$a"; done\n'
        f'exec {shutil.which(runtime)} "$@"\n'
    )
    wrapper.chmod(0o755)
    benchrun.run(ref, ["/bin/true"], backend="oci", runtime=str(wrapper), store=store)
    cfg = json.loads((b / "config.json").read_text())
    cfg["root"] = {"path": rootfs, "readonly": True}
    (b / "tmp").mkdir(exist_ok=True)
    for m in cfg["mounts"]:
        if m["destination"] == "/tmp":
            m["source"] = str(b / "tmp")
    for ns in cfg["linux"]["namespaces"]:
        ns.pop("path", None)  # a new network namespace (lo down) instead of benchrun's
    cfg["linux"]["cgroupsPath"] = f"/benchrun-bench-own/{runtime}"
    (b / "config.json").write_text(json.dumps(cfg))
    return b


class Docker:
    """docker.io as a peer: dockerd started if needed (and stopped after), the image loaded."""

    def __init__(self, layout_ref: str, work: Path):
        self.proc = None
        self.why = ""
        if not shutil.which("docker") or not shutil.which("dockerd"):
            self.why = "docker.io not installed"
            return
        if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
            self.proc = subprocess.Popen(
                ["dockerd", "--data-root", str(work / "docker")],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            t = time.monotonic()
            while subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
                if time.monotonic() - t > 60 or self.proc.poll() is not None:
                    self.why = "dockerd did not come up within 60 s"
                    return
                time.sleep(0.5)
        archive = work / "image.tar"
        src = layout_ref.removeprefix("oci:")
        p = subprocess.run(
            ["skopeo", "copy", f"oci:{src}", f"docker-archive:{archive}:bench:1"],
            capture_output=True,
            text=True,
        )
        if p.returncode != 0:
            self.why = f"skopeo copy failed: {p.stderr.strip()[:200]}"
            return
        p = subprocess.run(["docker", "load", "-i", str(archive)], capture_output=True, text=True)
        if p.returncode != 0:
            self.why = f"docker load failed: {p.stderr.strip()[:200]}"

    def argv(self, cmd: list[str]) -> list[str]:
        return ["docker", "run", "--rm", "--network", "none", "bench:1", *cmd]

    def close(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=10, help="start-up rounds")
    ap.add_argument("--reps", type=int, default=5, help="fidelity repetitions per loop")
    ap.add_argument("--no-vm", action="store_true")
    ap.add_argument("--no-docker", action="store_true")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="backends-bench-"))
    store = work / "store"
    ref, exe = build_image(work)
    benchrun.pull(ref, store=store)
    rootfs = _core.load_run_image(store=str(store), reference=ref).rootfs

    backends = ["sandbox"] + ([] if args.no_vm else ["vm"])
    skipped = {}
    for rt in RUNTIMES:
        why = backend_unavailable(rt)
        if why:
            skipped[rt] = why
        else:
            backends.append(rt)
    skipped["podman"] = "not installed" if not shutil.which("podman") else ""
    docker = None
    if not args.no_docker:
        docker = Docker(ref, work)
        atexit.register(docker.close)
        if docker.why:
            skipped["docker"] = docker.why
            docker = None
    print(
        "backends:",
        ", ".join(backends),
        "| peers:",
        "docker" if docker else "-",
        "| skipped:",
        json.dumps({k: v for k, v in skipped.items() if v}),
        flush=True,
    )

    bw = shutil.which("bwrap")
    bwrap = [
        bw,
        "--unshare-all",
        "--die-with-parent",
        "--ro-bind",
        rootfs,
        "/",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--tmpfs",
        "/tmp",
    ]
    own = {rt: bundle(work, rt, ref, store, rootfs) for rt in ("runc", "runsc") if rt in backends}
    own_argv = {
        "runc": lambda i: [
            "runc",
            "--root",
            str(work / "st-runc"),
            "run",
            "--bundle",
            str(own["runc"]),
            f"own-{i}",
        ],
        "runsc": lambda i: [
            "runsc",
            "--root",
            str(work / "st-runsc"),
            "--oci-seccomp",
            "--network",
            "none",
            "run",
            "--bundle",
            str(own["runsc"]),
            f"own-{i}",
        ],
    }
    cli = [sys.executable, "-m", "benchrun.cli", "run", "--store", str(store), "--pull", "never"]
    t_api: dict[str, list[float]] = {b: [] for b in backends}
    t_cli: dict[str, list[float]] = {b: [] for b in backends}
    t_own: dict[str, list[float]] = {rt: [] for rt in own}
    t_bwrap: list[float] = []
    t_docker: list[float] = []
    facts = {}
    # Warm-up: caches (VM kernel/initramfs/ext4, runtime probes, page cache).
    for b in backends:
        facts[b] = {
            k: v
            for k, v in benchrun.run(
                ref, ["/bin/true"], backend=b, store=store, timeout=120
            ).facts.items()
            if k in ("oci_runtime", "oci_runtime_version", "runsc_platform", "accel")
        }
    for i in range(args.rounds):
        t_bwrap.append(timed(bwrap + ["/bin/true"])[0])
        for b in backends:
            t = time.perf_counter()
            r = benchrun.run(ref, ["/bin/true"], backend=b, store=store, timeout=120)
            t_api[b].append(time.perf_counter() - t)
            assert r.exit_code == 0, (b, r.stderr)
            dt, p = timed(cli + ["--backend", b, ref, "/bin/true"])
            assert p.returncode == 0, (b, p.stderr)
            t_cli[b].append(dt)
        for rt in own:
            dt, p = timed(own_argv[rt](i))
            assert p.returncode == 0, (rt, p.stderr)
            t_own[rt].append(dt)
        if docker:
            dt, p = timed(docker.argv(["/bin/true"]))
            t_docker.append(dt)
    bw_med = statistics.median(t_bwrap)
    out = {"startup": {"bwrap": stats(t_bwrap)}, "fidelity": {}, "skipped": skipped, "facts": facts}
    print(
        f"\nstart-up, warm /bin/true, median of {args.rounds} (ratio to bwrap "
        f"{bw_med * 1e3:.1f} ms)"
    )
    for b in backends:
        a, c = statistics.median(t_api[b]), statistics.median(t_cli[b])
        out["startup"][b] = {"api": stats(t_api[b]), "cli": stats(t_cli[b])}
        line = (
            f"  {b:8s} API {a * 1e3:8.1f} ms ({a / bw_med:5.1f}x)   CLI {c * 1e3:8.1f} ms "
            f"({c / bw_med:5.1f}x)"
        )
        if b in own:
            o = statistics.median(t_own[b])
            out["startup"][b]["runtime_own_run"] = stats(t_own[b])
            line += f"   {b} run itself {o * 1e3:7.1f} ms: backend adds {(a - o) * 1e3:+6.1f} ms"
        print(line)
    if docker and t_docker:
        d = statistics.median(t_docker)
        out["startup"]["docker"] = stats(t_docker)
        print(f"  docker   CLI {d * 1e3:8.1f} ms ({d / bw_med:5.1f}x)")

    # Fidelity: bare, each backend and docker, interleaved rep by rep, loop by loop.
    runners = {
        "bare": lambda m: float(
            subprocess.run([str(exe), m], capture_output=True, text=True, check=True).stdout
        )
    }
    for b in backends:
        runners[b] = (
            lambda b: lambda m: float(
                benchrun.run(ref, ["/loops", m], backend=b, store=store, timeout=600).stdout
            )
        )(b)
    if docker:
        runners["docker"] = lambda m: float(
            subprocess.run(
                docker.argv(["/loops", m]), capture_output=True, text=True, check=True
            ).stdout
        )
    times: dict[str, dict[str, list[float]]] = {n: {m: [] for m in LOOPS} for n in runners}
    for _ in range(args.reps):
        for m in LOOPS:
            for n, fn in runners.items():
                times[n][m].append(fn(m))
    print(f"\nfidelity: median overhead vs bare (CV ratio to bare), {args.reps} reps")
    print("  " + " " * 8 + "".join(f"{m:>22s}" for m in LOOPS))
    for n in runners:
        cells = []
        out["fidelity"][n] = {}
        for m in LOOPS:
            s, bare = stats(times[n][m]), stats(times["bare"][m])
            ov = s["median"] / bare["median"] - 1
            cvr = s["cv"] / bare["cv"] if bare["cv"] else float("nan")
            out["fidelity"][n][m] = {**s, "overhead": ov, "cv_ratio": cvr}
            cells.append(
                f"{ov * 100:+8.1f}% ({cvr:5.1f}x)"
                if n != "bare"
                else f"{s['median'] * 1e3:7.1f} ms cv {s['cv'] * 100:4.1f}%"
            )
        print(f"  {n:8s}" + "".join(f"{c:>22s}" for c in cells))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    shutil.rmtree(work, ignore_errors=True)
    for d in Path("/sys/fs/cgroup").glob("*/benchrun-bench-own"):  # the own runs' parents
        for sub in d.iterdir():
            if sub.is_dir():
                sub.rmdir()
        d.rmdir()


if __name__ == "__main__":
    main()
