#!/usr/bin/env python3
"""Cold pull + unpack of a real Debian userland image: benchrun vs skopeo copy + umoci unpack.

Run from the project venv (see bench/README.md):

    python bench/pull_vs_umoci.py [--rounds N]

Builds once and caches under bench/out/: a `debootstrap --variant=minbase bookworm` rootfs, and
from it a two-layer OCI image layout (layer 1 = the whole rootfs, layer 2 = whiteouts for
/usr/share/doc and /usr/share/man plus /etc/benchrun-bench). Each run starts Debian's
docker-registry on a free loopback port, pushes the image with skopeo, warms the registry with one
discarded pull per tool, then times N interleaved rounds (the order flips every round):

  benchrun          `benchrun pull --store FRESH -q --json REF`        (defaults: 4 parallel, ISA-L)
  peer              `skopeo copy docker://REF oci:FRESH:1` + `umoci unpack --image FRESH:1 BUNDLE`
  benchrun-p1       as benchrun, with `--parallel 1`
  benchrun-zlib     `benchrun.pull(REF, store=FRESH, gzip_engine="zlib")` in a fresh interpreter
  umoci-raw         `umoci raw unpack` of the peer's layout (no mtree/bundle config; information)

Wall time is measured around each command (process start to exit), after `sync` so that earlier
write-back does not leak into it; page caches are not dropped (the registry's blobs are warm for
every contender alike). Trees are deleted only after the last round, and a run waits out the
first minutes after an earlier cleanup (see CLEANUP below: freshly freed inodes slow file creation
on this machine's journal-less ext4). Results: a table on stdout and bench/out/pull_vs_umoci.json.
Never assert on these numbers in tests: this is a shared, noisy machine.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = BENCH / "out"
ROOTFS = OUT / "rootfs"
LAYOUT = OUT / "image"
META = OUT / "image.json"
RUNS = OUT / "runs"
RESULT = OUT / "pull_vs_umoci.json"
TAG = "1"
REPO = "bench/debian"
SUITE = "bookworm"
MTIME = 1_700_000_000
BENCH_FILE = "etc/benchrun-bench"

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess:
    kw.setdefault("check", True)
    return subprocess.run(cmd, **kw)


# --------------------------------------------------------------------------------------------
# Image build (cached)


def debian_mirror() -> str:
    """The Debian mirror apt uses (sources.list or deb822 .sources), for debootstrap."""
    sl = Path("/etc/apt/sources.list")
    if sl.exists():
        for line in sl.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "deb" and "security" not in line:
                return parts[2] if not parts[1].startswith("[") else parts[3]
    for src in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n\s*\n", src.read_text()):
            fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, re.M))
            suites = fields.get("Suites", "").split()
            if SUITE in suites and "deb" in fields.get("Types", "").split():
                return fields["URIs"].split()[0]
    return "http://deb.debian.org/debian"


def ensure_rootfs() -> None:
    if (ROOTFS / "etc" / "debian_version").exists():
        return
    if not shutil.which("debootstrap"):
        log("installing debootstrap")
        run(["apt-get", "install", "-y", "debootstrap"])
    partial = OUT / "rootfs.partial"
    if partial.exists():
        run(["rm", "-rf", str(partial)])
    mirror = debian_mirror()
    log(f"debootstrap --variant=minbase {SUITE} from {mirror} (a few minutes)")
    with open(OUT / "debootstrap.log", "wb") as f:
        run(["debootstrap", "--variant=minbase", SUITE, str(partial), mirror], stdout=f,
            stderr=subprocess.STDOUT)
    partial.rename(ROOTFS)


def hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def put_blob_file(path: Path) -> dict:
    digest = hash_file(path)
    dest = LAYOUT / "blobs" / "sha256" / digest.split(":", 1)[1]
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(path, dest)
    return {"digest": digest, "size": dest.stat().st_size}


def put_blob_bytes(data: bytes) -> dict:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    dest = LAYOUT / "blobs" / "sha256" / digest.split(":", 1)[1]
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data)
    return {"digest": digest, "size": len(data)}


def tree_stats(root: Path) -> dict:
    """Entries below root (not counting root), regular files, bytes of regular files (hardlinks once)."""
    entries = files = size = 0
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        entries += len(dirnames) + len(filenames)
        for name in filenames:
            st = os.lstat(os.path.join(dirpath, name))
            if (st.st_mode & 0o170000) == 0o100000:
                files += 1
                if (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    size += st.st_size
    return {"entries": entries, "files": files, "bytes": size}


def layer2_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in ((BENCH_FILE, b"benchrun bench layer 2\n"),
                           ("usr/share/.wh.doc", b""), ("usr/share/.wh.man", b"")):
            ti = tarfile.TarInfo(name)
            ti.mode, ti.mtime, ti.size = 0o644, MTIME, len(data)
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def build_image(rebuild: bool) -> dict:
    if not rebuild and META.exists() and (LAYOUT / "index.json").exists():
        return json.loads(META.read_text())
    ensure_rootfs()
    if LAYOUT.exists():
        run(["rm", "-rf", str(LAYOUT)])
    LAYOUT.mkdir(parents=True)
    log("layer 1: tar --numeric-owner --sort=name | gzip -6")
    l1_tar, l1_gz = OUT / "layer1.tar", OUT / "layer1.tar.gz"
    with open(l1_tar, "wb") as f:
        run(["tar", "--numeric-owner", "--sort=name", "-C", str(ROOTFS), "-cf", "-", "."], stdout=f)
    l1_diff, l1_tar_size = hash_file(l1_tar), l1_tar.stat().st_size
    entries = run(["tar", "-tf", str(l1_tar)], stdout=subprocess.PIPE).stdout.count(b"\n")
    with open(l1_gz, "wb") as f:
        run(["gzip", "-6", "-n", "-c", str(l1_tar)], stdout=f)
    l1_tar.unlink()
    l1 = put_blob_file(l1_gz)
    # A copy for bench_gzip_engines (same bytes as the layer blob, under a stable name).
    os.link(LAYOUT / "blobs" / "sha256" / l1["digest"].split(":", 1)[1], l1_gz)

    log("layer 2: whiteouts usr/share/doc, usr/share/man; adds /" + BENCH_FILE)
    t2 = layer2_tar()
    l2 = put_blob_bytes(gzip.compress(t2, compresslevel=6, mtime=0))
    diff_ids = [l1_diff, "sha256:" + hashlib.sha256(t2).hexdigest()]

    config = {
        "created": "2026-01-01T00:00:00Z",
        "architecture": run(["dpkg", "--print-architecture"], stdout=subprocess.PIPE,
                            text=True).stdout.strip(),
        "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": ["/bin/bash"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2026-01-01T00:00:00Z",
                     "created_by": f"debootstrap --variant=minbase {SUITE}"},
                    {"created": "2026-01-01T00:00:00Z",
                     "created_by": "rm -rf /usr/share/doc /usr/share/man; echo > /" + BENCH_FILE}],
    }
    cfg = {"mediaType": MT_CONFIG, **put_blob_bytes(json.dumps(config, sort_keys=True).encode())}
    manifest = {"schemaVersion": 2, "mediaType": MT_MANIFEST, "config": cfg,
                "layers": [{"mediaType": MT_LAYER_GZIP, **l1}, {"mediaType": MT_LAYER_GZIP, **l2}]}
    mdesc = {"mediaType": MT_MANIFEST, **put_blob_bytes(json.dumps(manifest, sort_keys=True).encode())}
    index = {"schemaVersion": 2, "mediaType": MT_INDEX,
             "manifests": [{**mdesc, "annotations": {"org.opencontainers.image.ref.name": TAG}}]}
    (LAYOUT / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    (LAYOUT / "index.json").write_text(json.dumps(index, sort_keys=True))

    rootfs_stats = tree_stats(ROOTFS)
    removed = {k: tree_stats(ROOTFS / "usr" / "share" / k) for k in ("doc", "man")}
    meta = {
        "suite": SUITE,
        "manifest_digest": mdesc["digest"],
        "layers": [
            {"digest": l1["digest"], "compressed": l1["size"], "uncompressed": l1_tar_size,
             "diff_id": l1_diff, "tar_entries": entries},
            {"digest": l2["digest"], "compressed": l2["size"], "uncompressed": len(t2),
             "diff_id": diff_ids[1], "tar_entries": 3},
        ],
        "compressed_total": l1["size"] + l2["size"],
        "rootfs_layer1": rootfs_stats,
        "final_rootfs": {
            "entries": rootfs_stats["entries"] - sum(r["entries"] + 1 for r in removed.values()) + 1,
            "files": rootfs_stats["files"] - sum(r["files"] for r in removed.values()) + 1,
        },
        "layer1_tar_gz": str(l1_gz),
    }
    META.write_text(json.dumps(meta, indent=2))
    return meta


# --------------------------------------------------------------------------------------------
# Contenders


def benchrun_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "benchrun"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "benchrun.cli"]


# The Python API in a fresh interpreter: for the zlib engine (no CLI flag), and for every benchrun
# variant with --driver api. Same call the CLI makes (benchrun.cli.main.cmd_pull).
API_DRIVER = r"""
import json, sys, benchrun
img = benchrun.pull(sys.argv[1], store=sys.argv[2], gzip_engine=sys.argv[3],
                    max_parallel=int(sys.argv[4]))
print(json.dumps({"rootfs": str(img.rootfs), "timings": img.timings}))
"""
DRIVER = "cli"
# "end": nothing is deleted until all rounds are done. "each": a run's trees are deleted right
# after it. Why it matters: on ext4 without a journal (this machine's /), the inode allocator
# skips free inodes deleted less than 60 s ago, or less than 360 s ago while their inode-table
# block is dirty (fs/ext4/ialloc.c recently_deleted(), RECENTCY_MIN/RECENTCY_DIRTY; creating new
# inodes dirties those very blocks), rescanning the group's bitmap for every new inode. Creating
# ~7k files soon after deleting thousands doubled or tripled the pull's system time (perf: 60 %+
# of benchrun's samples in find_inode_bit -> recently_deleted) for whoever ran next. So: delete
# only at the end, and at the start wait until RECENT_WAIT s have passed since the last cleanup.
# --cleanup each inflates every figure.
CLEANUP = "end"
RECENT_WAIT = 370.0
STAMP = OUT / "last-cleanup"


def cleanup_runs() -> None:
    """Deletes bench/out/runs and notes when (see wait_after_cleanup)."""
    if RUNS.exists():
        rm_rf(RUNS)
        os.sync()
        STAMP.write_text(f"{time.time()}\n")


def wait_after_cleanup(no_wait: bool) -> None:
    try:
        left = float(STAMP.read_text()) + RECENT_WAIT - time.time()
    except (OSError, ValueError):
        return
    if left > 0 and not no_wait:
        log(f"waiting {left:.0f} s: trees were deleted {RECENT_WAIT - left:.0f} s ago and file "
            f"creation is slower for ~{RECENT_WAIT:.0f} s after that on journal-less ext4 "
            "(--no-wait to skip)")
        time.sleep(left)


def rm_rf(path: Path) -> None:
    if path.exists() or path.is_symlink():
        run(["rm", "-rf", "--one-file-system", str(path)])


class Timer:
    """Wall time and children's CPU time of one command, started after a sync."""

    def __init__(self) -> None:
        os.sync()
        self.load1 = os.getloadavg()[0]
        self.r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.t0 = time.perf_counter()

    def stop(self) -> dict:
        wall = time.perf_counter() - self.t0
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        return {"wall": wall, "user": r1.ru_utime - self.r0.ru_utime,
                "sys": r1.ru_stime - self.r0.ru_stime, "load1": self.load1}


def timed(cmd: list[str]) -> tuple[dict, str]:
    t = Timer()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    m = t.stop()
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-4000:]}")
    return m, p.stdout


def check_rootfs(rootfs: Path, who: str) -> None:
    problems = []
    if not (rootfs / BENCH_FILE).is_file():
        problems.append(f"/{BENCH_FILE} missing")
    for gone in ("usr/share/doc", "usr/share/man"):
        if os.path.lexists(rootfs / gone):
            problems.append(f"/{gone} still present")
    if not (rootfs / "usr" / "bin" / "dpkg").is_file():
        problems.append("/usr/bin/dpkg missing (layer 1 not unpacked?)")
    if problems:
        raise RuntimeError(f"{who}: wrong rootfs {rootfs}: " + "; ".join(problems))


def run_benchrun(ref: str, store: Path, parallel: int = 4, engine: str = "isal") -> dict:
    rm_rf(store)
    if engine == "isal" and DRIVER == "cli":
        cmd = benchrun_cmd() + ["pull", "--store", str(store), "-q", "--json"]
        if parallel != 4:
            cmd += ["--parallel", str(parallel)]
        cmd.append(ref)
    else:
        cmd = [sys.executable, "-c", API_DRIVER, ref, str(store), engine, str(parallel)]
    m, out = timed(cmd)
    doc = json.loads(out)
    rootfs = Path(doc["rootfs"])
    check_rootfs(rootfs, "benchrun")
    m["timings"] = doc.get("timings", {})
    m["rootfs"] = str(rootfs)
    return m


def run_peer(ref: str, workdir: Path, raw: bool) -> dict:
    rm_rf(workdir)
    workdir.mkdir(parents=True)
    oci, bundle = workdir / "oci", workdir / "bundle"
    copy_cmd = ["skopeo", "copy", "-q", "--src-tls-verify=false", f"docker://{ref}",
                f"oci:{oci}:{TAG}"]
    unpack_cmd = ["umoci", "unpack", "--image", f"{oci}:{TAG}", str(bundle)]
    # One timer for both commands back to back (no sync between them, as for benchrun).
    t = Timer()
    parts = {}
    for part, cmd in (("copy", copy_cmd), ("unpack", unpack_cmd)):
        t0 = time.perf_counter()
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        parts[part] = {"wall": time.perf_counter() - t0}
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-4000:]}")
    m = t.stop()
    m.update(parts)
    m["rootfs"] = str(bundle / "rootfs")
    check_rootfs(bundle / "rootfs", "umoci")
    if raw:
        rawdir = workdir / "raw"
        m["raw_unpack"], _ = timed(["umoci", "raw", "unpack", "--image", f"{oci}:{TAG}",
                                    str(rawdir)])
        check_rootfs(rawdir, "umoci raw")
        if CLEANUP == "each":
            rm_rf(rawdir)
    return m


def tree_listing(root: Path) -> dict[str, tuple]:
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            kind = st.st_mode & 0o170000
            extra: Any = None
            if kind == 0o120000:
                extra = os.readlink(p)
            elif kind == 0o100000:
                extra = st.st_size
            out[os.path.relpath(p, root)] = (oct(kind), oct(st.st_mode & 0o7777), st.st_uid,
                                             st.st_gid, extra)
    return out


def compare_trees(a: Path, b: Path) -> dict:
    """benchrun's rootfs (a) against umoci's (b): paths, types, modes, owners, sizes, links."""
    la, lb = tree_listing(a), tree_listing(b)
    only_a = sorted(set(la) - set(lb))
    only_b = sorted(set(lb) - set(la))
    differ = sorted(k for k in set(la) & set(lb) if la[k] != lb[k])
    return {"benchrun_entries": len(la), "umoci_entries": len(lb),
            "only_benchrun": only_a[:50], "only_umoci": only_b[:50],
            "differ": [{"path": k, "benchrun": la[k], "umoci": lb[k]} for k in differ[:50]],
            "counts": {"only_benchrun": len(only_a), "only_umoci": len(only_b),
                       "differ": len(differ)}}


# --------------------------------------------------------------------------------------------
# Report


def machine() -> dict:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem = next((l.split()[1] for l in Path("/proc/meminfo").read_text().splitlines()
                if l.startswith("MemTotal")), "0")
    fs = run(["df", "-T", str(OUT)], stdout=subprocess.PIPE, text=True).stdout.splitlines()[-1]
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(),
            "mem_gib": round(int(mem) / 1024 / 1024, 1), "filesystem": fs.split()[1],
            "skopeo": run(["skopeo", "--version"], stdout=subprocess.PIPE, text=True).stdout.strip(),
            "umoci": run(["umoci", "--version"], stdout=subprocess.PIPE, text=True).stdout.strip()}


def summarize(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "rounds": values}


def mib(n: int) -> str:
    return f"{n / 1048576:.1f} MiB"


def main() -> int:
    global DRIVER, CLEANUP
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds per contender (default 5)")
    ap.add_argument("--rebuild", action="store_true", help="rebuild the image layout from rootfs")
    ap.add_argument("--no-extras", action="store_true",
                    help="only benchrun vs peer (skip --parallel 1, zlib, umoci raw unpack)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the trees in bench/out/runs (with --cleanup each: the last round's)")
    ap.add_argument("--driver", choices=("cli", "api"), default="cli",
                    help="run benchrun as `benchrun pull` (default) or via benchrun.pull() in a "
                         "fresh interpreter")
    ap.add_argument("--cleanup", choices=("end", "each"), default="end",
                    help="delete the trees after all rounds (default; needs ~1.6 GB a round) or "
                         "after each run (slows file creation for all: see docs/performance.md)")
    ap.add_argument("--no-wait", action="store_true",
                    help=f"do not wait out the {RECENT_WAIT:.0f} s after an earlier cleanup")
    ap.add_argument("--build-only", action="store_true", help="build (or show) the cached image and exit")
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    if os.geteuid() != 0:
        ap.error("run as root (umoci unpack keeps ownership only as root; so does benchrun)")
    for tool in ("skopeo", "umoci", "docker-registry", "tar", "gzip"):
        if not shutil.which(tool):
            ap.error(f"{tool} not found (apt-get install skopeo umoci docker-registry)")
    DRIVER = args.driver
    if args.build_only:
        OUT.mkdir(parents=True, exist_ok=True)
        print(json.dumps(build_image(args.rebuild), indent=2))
        return 0
    probe = subprocess.run(benchrun_cmd() + ["--help"], capture_output=True, text=True)
    if probe.returncode != 0:
        ap.error(f"benchrun does not run from this interpreter ({sys.executable}); "
                 f"source scripts/venv.sh first:\n{probe.stderr[-2000:]}")

    OUT.mkdir(parents=True, exist_ok=True)
    meta = build_image(args.rebuild)
    log(f"image: {mib(meta['compressed_total'])} compressed, "
        f"{mib(meta['layers'][0]['uncompressed'])} layer-1 tar, {meta['layers'][0]['tar_entries']} entries")

    sys.path.insert(0, str(ROOT / "tests" / "py"))
    from support.registry import RegistryServer  # noqa: E402

    regdir = OUT / "registry"
    rm_rf(regdir)
    regdir.mkdir(parents=True)
    reg = RegistryServer(regdir)
    try:
        ref = f"{reg.host}/{REPO}:{TAG}"
        log(f"registry on {reg.host}; pushing with skopeo")
        run(["skopeo", "copy", "-q", "--dest-tls-verify=false", f"oci:{LAYOUT}:{TAG}",
             f"docker://{ref}"])
        cleanup_runs()
        RUNS.mkdir(parents=True)
        wait_after_cleanup(args.no_wait)
        CLEANUP = args.cleanup
        c, u = meta["compressed_total"], meta["layers"][0]["uncompressed"]
        need = int((args.rounds + 1) * (3 * (c + u) + (c + 2.2 * u)) * 1.2)
        free = shutil.disk_usage(RUNS).free
        if CLEANUP == "end" and free < need + (2 << 30):
            log(f"only {free >> 20} MiB free, {need >> 20} MiB needed: --cleanup each "
                "(figures will be inflated)")
            CLEANUP = "each"

        contenders: dict[str, Any] = {
            "benchrun": lambda d: run_benchrun(ref, d),
            "peer": lambda d: run_peer(ref, d, raw=not args.no_extras),
        }
        if not args.no_extras:
            contenders["benchrun-p1"] = lambda d: run_benchrun(ref, d, parallel=1)
            contenders["benchrun-zlib"] = lambda d: run_benchrun(ref, d, engine="zlib")

        log("warm-up (discarded): one pull with each tool")
        run_benchrun(ref, RUNS / "warm-benchrun")
        run_peer(ref, RUNS / "warm-peer", raw=False)
        if CLEANUP == "each":
            rm_rf(RUNS / "warm-benchrun")
            rm_rf(RUNS / "warm-peer")

        results: dict[str, list[dict]] = {k: [] for k in contenders}
        order_log = []
        names = list(contenders)
        for r in range(args.rounds):
            order = names if r % 2 == 0 else list(reversed(names))
            order_log.append(order)
            for name in order:
                d = RUNS / f"{name}-r{r}"
                m = contenders[name](d)
                results[name].append(m)
                log(f"round {r + 1}/{args.rounds} {name:14s} {m['wall']:7.2f} s")
                last = r == args.rounds - 1
                if CLEANUP == "each" and not (last and name in ("benchrun", "peer")):
                    rm_rf(d)

        comparison = compare_trees(Path(results["benchrun"][-1]["rootfs"]),
                                   Path(results["peer"][-1]["rootfs"]))
        if not args.keep:
            cleanup_runs()
    finally:
        reg.stop()

    summary = {name: summarize([m["wall"] for m in ms]) for name, ms in results.items()}
    peer_parts = {
        "skopeo copy": summarize([m["copy"]["wall"] for m in results["peer"]]),
        "umoci unpack": summarize([m["unpack"]["wall"] for m in results["peer"]]),
    }
    if "raw_unpack" in results["peer"][0]:
        peer_parts["umoci raw unpack"] = summarize([m["raw_unpack"]["wall"] for m in results["peer"]])
    cpu = {name: statistics.median([m["user"] + m["sys"] for m in ms]) for name, ms in results.items()}
    timing_keys = sorted({k for m in results["benchrun"] for k in m.get("timings", {})})
    benchrun_timings = {
        name: {k: statistics.median([m["timings"].get(k, 0.0) for m in ms]) for k in timing_keys}
        for name, ms in results.items() if name.startswith("benchrun")
    }
    ratio = summary["benchrun"]["median"] / summary["peer"]["median"]
    per_round_ratio = [b["wall"] / p["wall"] for b, p in zip(results["benchrun"], results["peer"])]

    rows = [(name, s) for name, s in summary.items()] + [(f"  peer: {k}", s) for k, s in peer_parts.items()]
    print()
    print(f"Cold pull + unpack, {meta['suite']} minbase, 2 layers, "
          f"{mib(meta['compressed_total'])} compressed / {mib(meta['layers'][0]['uncompressed'])} "
          f"tar, {args.rounds} rounds (interleaved, order flipped each round)")
    print(f"{'contender':24s} {'median s':>9s} {'min s':>7s} {'max s':>7s} {'CPU s':>7s}  per round"
          "  (CPU = median user+sys of the client processes)")
    for name, s in rows:
        c = f"{cpu[name]:7.2f}" if name in cpu else " " * 7
        print(f"{name:24s} {s['median']:9.2f} {s['min']:7.2f} {s['max']:7.2f} {c}  "
              + " ".join(f"{v:.2f}" for v in s["rounds"]))
    print(f"\nratio benchrun/peer (medians): {ratio:.3f}   target <= 0.5: "
          f"{'MET' if ratio <= 0.5 else 'NOT MET'}   stretch <= 0.33: "
          f"{'MET' if ratio <= 0.33 else 'not met'}")
    print("per-round ratios: " + " ".join(f"{x:.3f}" for x in per_round_ratio))
    loads = [m["load1"] for ms in results.values() for m in ms]
    print(f"load average (1 min) before timed runs: median {statistics.median(loads):.2f}, "
          f"max {max(loads):.2f} on {os.cpu_count()} CPUs; cleanup={CLEANUP}, driver={DRIVER}")
    for name, t in benchrun_timings.items():
        print(f"{name} timings (median s): " + ", ".join(f"{k}={v:.2f}" for k, v in t.items()))
    c = comparison["counts"]
    print(f"tree check vs umoci: {comparison['benchrun_entries']} vs {comparison['umoci_entries']} "
          f"entries; only benchrun {c['only_benchrun']}, only umoci {c['only_umoci']} "
          f"{comparison['only_umoci'][:10]}, differing {c['differ']}")

    doc = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": "python bench/pull_vs_umoci.py " + " ".join(sys.argv[1:]),
        "machine": machine(),
        "image": meta,
        "rounds": args.rounds,
        "benchrun_driver": DRIVER,
        "cleanup": CLEANUP,
        "order": order_log,
        "summary": summary,
        "peer_parts": peer_parts,
        "cpu_median": cpu,
        "benchrun_timings_median": benchrun_timings,
        "ratio_benchrun_over_peer": ratio,
        "per_round_ratio": per_round_ratio,
        "tree_comparison": comparison,
        "raw": results,
    }
    RESULT.write_text(json.dumps(doc, indent=2))
    log(f"wrote {RESULT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
