"""CLI start-up (issue 10): `benchrun run IMAGE true` against `docker run --rm --network none IMAGE
true`, in the same interleaved rounds, with `benchrun.run()` in-process and `bwrap` over the same
unpacked rootfs as the floor, and `benchrun --help`. Medians, ratios to docker, and the CLI's peak
RSS. Never a pass/fail test: read docs/performance.md ("CLI start-up vs docker run").

Run as root from the project venv:  python bench/cli_bench.py [--rounds N]

Each contender runs once per round, in an order that rotates every round, timed from process start
to exit (fork/exec included; `benchrun.run()` around the call). The image is one busybox layer
written by tests/py/support/ocilayout.py, pulled into a fresh benchrun store from its OCI layout
and loaded into docker from a docker-archive of the same blobs (`docker load`), so both run the
same bytes. Docker is Debian's docker.io: a daemon that answers is used as is; otherwise this script
starts its own `dockerd` (data, exec root and socket in a temp dir; no bridge, no iptables) and
stops it at the end. If docker is missing or its daemon cannot start, docker is skipped with the
reason and the other contenders still run. The script installs nothing.
"""

from __future__ import annotations

import argparse
import compileall
import io
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "py"))

import benchrun  # noqa: E402
from support.ocilayout import Layer, busybox_layer, write_layout  # noqa: E402

DOCKER_TAG = "benchrun-bench/cli:1"


def build_image(work: Path) -> tuple[str, Path, Path]:
    """(benchrun ref of the OCI layout, the layout, a docker-archive of the same blobs)."""
    # proc/dev/sys mount points: bwrap --ro-bind cannot create them in a read-only root.
    mounts = Layer("gzip").dir("proc").dir("dev").dir("sys")
    info = write_layout(work / "layout", [busybox_layer(), mounts], config={"Env": ["PATH=/bin"]})
    archive = work / "image.docker.tar"
    manifest = json.loads(_blob(info.layout, info.manifest_digest))
    with tarfile.open(archive, "w") as tar:
        entries = {"config.json": _blob(info.layout, manifest["config"]["digest"])}
        names = []
        for i, layer in enumerate(manifest["layers"]):  # docker load takes gzip layers as they are
            names.append(f"layer{i}.tar.gz")
            entries[names[-1]] = _blob(info.layout, layer["digest"])
        entries["manifest.json"] = json.dumps(
            [{"Config": "config.json", "RepoTags": [DOCKER_TAG], "Layers": names}]
        ).encode()
        for name, data in entries.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
    return info.ref, info.layout, archive


def _blob(layout: Path, digest: str) -> bytes:
    return (layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()


class Docker:
    """Debian's docker CLI against a daemon that answers, or one started (and stopped) here."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.daemon: Optional[subprocess.Popen[bytes]] = None
        self.cli = "/usr/bin/docker" if os.access("/usr/bin/docker", os.X_OK) else None
        self.cli = self.cli or shutil.which("docker")
        self.host: list[str] = []
        self.skipped = ""
        self.log = work / "docker" / "dockerd.log"

    def cmd(self, *args: str) -> list[str]:
        assert self.cli is not None
        return [self.cli, *self.host, *args]

    def _answers(self) -> bool:
        p = subprocess.run(
            self.cmd("version", "--format", "{{.Server.Version}}"), capture_output=True, timeout=20
        )
        return p.returncode == 0

    def start(self) -> bool:
        if self.cli is None:
            self.skipped = "no docker CLI (apt-get install docker.io)"
            return False
        if self._answers():
            return True
        dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
        if not os.access(dockerd, os.X_OK):
            self.skipped = "no daemon answers and there is no dockerd (apt-get install docker.io)"
            return False
        d = self.work / "docker"
        d.mkdir()
        sock = d / "docker.sock"
        self.daemon = subprocess.Popen(
            [
                dockerd,
                "--host",
                f"unix://{sock}",
                "--data-root",
                str(d / "data"),
                "--exec-root",
                str(d / "exec"),
                "--pidfile",
                str(d / "dockerd.pid"),
                "--bridge",
                "none",
                "--iptables=false",
                "--ip-masq=false",
            ],
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.host = ["--host", f"unix://{sock}"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.daemon.poll() is not None:
                break
            if sock.exists() and self._answers():
                return True
            time.sleep(0.25)
        tail = self.log.read_text(errors="replace").strip().splitlines()[-3:]
        self.skipped = "dockerd did not start: " + " | ".join(tail)
        self.stop()
        return False

    def stop(self) -> None:
        if self.daemon is None:
            return
        if self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                self.daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()
        self.daemon = None


def timed(cmd: list[str], env: Optional[dict[str, str]] = None) -> float:
    """Wall seconds from fork to exit of ``cmd`` (which must succeed)."""
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(
            f"{cmd}: exit {p.returncode}: {p.stderr.decode(errors='replace')[-500:]}"
        )
    return dt


def peak_rss(
    cmd: list[str], times: int = 5, env: Optional[dict[str, str]] = None
) -> Optional[float]:
    """Median peak RSS (bytes) of ``cmd``, measured by GNU time. Not from this process's wait4:
    a child forked from this (large) interpreter inherits its RSS high-water mark across exec."""
    gnu_time = "/usr/bin/time"
    if not os.access(gnu_time, os.X_OK):
        return None
    kib = []
    with tempfile.NamedTemporaryFile("r") as out:
        for _ in range(times):
            subprocess.run(
                [gnu_time, "-f", "%M", "-o", out.name, *cmd],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
            )
            out.seek(0)
            kib.append(int(out.read().split()[-1]))
    return statistics.median(kib) * 1024.0


def stats(xs: list[float]) -> dict[str, float]:
    qs = statistics.quantiles(xs, n=10) if len(xs) > 1 else [xs[0]] * 9
    return {
        "n": len(xs),
        "median": statistics.median(xs),
        "mean": statistics.mean(xs),
        "min": min(xs),
        "p90": qs[8],
        "max": max(xs),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--no-docker", action="store_true", help="skip docker")
    ap.add_argument(
        "--before",
        metavar="DIR",
        help="also time `python -m benchrun.cli run` from the python/ directory of "
        "another checkout (e.g. the commit before a change; it needs its _core .so)",
    )
    args = ap.parse_args()
    cli = Path(sys.executable).with_name("benchrun")
    if not cli.exists():
        cli = Path(shutil.which("benchrun") or "benchrun")
    # As pip leaves an installed package: byte-compiled. (An editable install under
    # PYTHONDONTWRITEBYTECODE=1 would otherwise compile every module from source on every start.)
    compileall.compile_dir(str(Path(benchrun.__file__).parent), quiet=1)
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="benchrun-clibench-") as tmp:
        work = Path(tmp)
        ref, _, archive = build_image(work)
        store = work / "store"
        img = benchrun.pull(ref, store=store)
        bwrap = shutil.which("bwrap")
        runs: dict[str, Callable[[], float]] = {}
        cmd_cli = [str(cli), "run", "--store", str(store), ref, "/bin/true"]
        runs["benchrun_cli"] = lambda: timed(cmd_cli)

        def api() -> float:
            t0 = time.perf_counter()
            r = benchrun.run(ref, ["/bin/true"], store=store)
            dt = time.perf_counter() - t0
            assert r.exit_code == 0, r
            return dt

        runs["benchrun_run_api"] = api
        if args.before:
            before = str(Path(args.before).resolve())
            compileall.compile_dir(str(Path(before) / "benchrun"), quiet=1)
            env_before = dict(os.environ, PYTHONPATH=before)
            cmd_before = [sys.executable, "-m", "benchrun.cli", *cmd_cli[1:]]
            runs["benchrun_cli_before"] = lambda: timed(cmd_before, env_before)
        cmd_help = [str(cli), "--help"]
        runs["benchrun_help"] = lambda: timed(cmd_help)
        cmd_python = [sys.executable, "-c", "pass"]
        runs["python_startup"] = lambda: timed(cmd_python)
        if bwrap:
            cmd_bwrap = [
                bwrap,
                "--unshare-all",
                "--die-with-parent",
                "--ro-bind",
                str(img.rootfs),
                "/",
                "--proc",
                "/proc",
                "--dev",
                "/dev",
                "--tmpfs",
                "/tmp",
                "/bin/true",
            ]
            runs["bwrap"] = lambda: timed(cmd_bwrap)
        docker = Docker(work)
        docker_version = None
        try:
            if args.no_docker:
                docker.skipped = "--no-docker"
            elif docker.start():
                subprocess.run(
                    docker.cmd("load", "-q", "-i", str(archive)),
                    check=True,
                    capture_output=True,
                    timeout=120,
                )
                docker_version = subprocess.run(
                    docker.cmd("version", "--format", "{{.Server.Version}}"),
                    capture_output=True,
                    text=True,
                ).stdout.strip()
                cmd_docker = docker.cmd("run", "--rm", "--network", "none", DOCKER_TAG, "/bin/true")
                runs["docker_run"] = lambda: timed(cmd_docker)
            if docker.skipped:
                print(f"docker skipped: {docker.skipped}", file=sys.stderr)
            for fn in runs.values():  # warm every contender (page cache, store, daemon)
                for _ in range(3):
                    fn()
            names = list(runs)
            times: dict[str, list[float]] = {n: [] for n in names}
            for i in range(args.rounds):
                k = i % len(names)
                for name in names[k:] + names[:k]:
                    times[name].append(runs[name]())
            api_script = "import benchrun; benchrun.run(%r, ['/bin/true'], store=%r)" % (
                ref,
                str(store),
            )
            rss = {
                "benchrun_cli": peak_rss(cmd_cli),
                "benchrun_help": peak_rss(cmd_help),
                "benchrun_run_api_process": peak_rss([sys.executable, "-c", api_script]),
                "python_startup": peak_rss(cmd_python),
            }
            if args.before:
                rss["benchrun_cli_before"] = peak_rss(cmd_before, env=env_before)
        finally:
            docker.stop()
    result: dict[str, Any] = {
        "machine": {
            "nproc": os.cpu_count(),
            "kernel": platform.release(),
            "loadavg_1min_start": load0,
            "loadavg_1min_end": os.getloadavg()[0],
            "python": sys.version.split()[0],
            "docker": docker_version,
            "bwrap": bwrap
            and subprocess.run([bwrap, "--version"], capture_output=True, text=True).stdout.strip(),
            "docker_skipped": docker.skipped or None,
        },
        "rounds": args.rounds,
        "commands": {
            "benchrun_cli": "benchrun run --store STORE oci:LAYOUT:latest /bin/true",
            "docker_run": f"docker run --rm --network none {DOCKER_TAG} /bin/true",
            "benchrun_run_api": "benchrun.run(ref, ['/bin/true'], store=STORE)",
            "bwrap": "bwrap --unshare-all --die-with-parent --ro-bind ROOTFS / --proc "
            "/proc --dev /dev --tmpfs /tmp /bin/true",
            "benchrun_help": "benchrun --help",
            "python_startup": "python -c pass",
            "benchrun_cli_before": f"PYTHONPATH={args.before} python -m benchrun.cli run "
            "--store STORE oci:LAYOUT:latest /bin/true",
        },
        "seconds": {n: stats(v) for n, v in times.items()},
        "peak_rss_bytes_median": rss,
    }
    if "docker_run" in times:
        d = result["seconds"]["docker_run"]["median"]
        result["ratio_to_docker_median"] = {
            n: result["seconds"][n]["median"] / d for n in times if n != "docker_run"
        }
        result["benchrun_cli_over_docker_per_round"] = [
            c / d_ for c, d_ in zip(times["benchrun_cli"], times["docker_run"])
        ]
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    (out / "cli_bench.json").write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"{args.rounds} rounds, load average {load0:.2f} -> {os.getloadavg()[0]:.2f}; "
        f"bench/out/cli_bench.json"
    )
    print("| contender | median | min | p90 | ratio to docker (medians) |")
    print("|---|---:|---:|---:|---:|")
    for n, s in result["seconds"].items():
        ratio = result.get("ratio_to_docker_median", {}).get(n)
        print(
            f"| {n} | {s['median'] * 1e3:.1f} ms | {s['min'] * 1e3:.1f} ms | "
            f"{s['p90'] * 1e3:.1f} ms | {'' if ratio is None else f'{ratio:.2f}'} |"
        )
    print(
        "peak RSS (median of 5, GNU time): "
        + ", ".join(f"{n} {v / 2**20:.1f} MiB" for n, v in rss.items() if v is not None)
    )
    if docker.skipped:
        print(f"docker skipped: {docker.skipped}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
