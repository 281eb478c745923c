"""Oracle: benchrun's unpacked tree equals `umoci unpack`'s rootfs for images that exercise
whiteouts, opaque dirs, hardlinks, symlinks, setuid/setgid/sticky modes and ownership."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from pathlib import Path

import pytest

import benchrun
from support.ocilayout import Layer, busybox_layer, write_layout

pytestmark = pytest.mark.root


def snapshot(root: Path) -> dict[str, tuple]:
    out: dict[str, tuple] = {}
    inodes: dict[int, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            rel = str(p.relative_to(root))
            kind = stat.S_IFMT(st.st_mode)
            extra: object = None
            if stat.S_ISREG(kind):
                extra = hashlib.sha256(p.read_bytes()).hexdigest()
                if st.st_nlink > 1:  # hardlink group: every member names the first path seen
                    extra = (extra, inodes.setdefault(st.st_ino, rel))
            elif stat.S_ISLNK(kind):
                extra = os.readlink(p)
            size = st.st_size if stat.S_ISREG(kind) else 0
            out[rel] = (kind, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, size, extra)
    return out


def normalise_hardlinks(snap: dict[str, tuple]) -> dict[str, tuple]:
    # Which member of a hardlink group is "first" depends on walk order: compare groups instead.
    groups: dict[str, set[str]] = {}
    for rel, v in snap.items():
        if isinstance(v[5], tuple):
            groups.setdefault(v[5][1], set()).add(rel)
    canon = {first: min(members) for first, members in groups.items()}
    return {rel: v[:5] + ((v[5][0], canon[v[5][1]]),) if isinstance(v[5], tuple) else v
            for rel, v in snap.items()}


def umoci_rootfs(layout: Path, tag: str, dest: Path) -> Path:
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:{tag}", str(dest)], check=True,
                   capture_output=True, timeout=300)
    return dest / "rootfs"


def image_layers() -> list[Layer]:
    l1 = busybox_layer()
    l1.dir("usr").dir("usr/share").dir("usr/share/doc").file("usr/share/doc/readme", "docs")
    l1.dir("usr/share/doc/pkg").file("usr/share/doc/pkg/changelog", "changes")
    l1.dir("var").dir("var/cache", mode=0o750, uid=1000, gid=1000)
    l1.file("var/cache/a", "a", uid=1000, gid=1000).file("var/cache/b", "b")
    l1.dir("var/cache/sub").file("var/cache/sub/c", "c")
    l1.file("usr/bin-suid", "x", mode=0o4755).file("usr/bin-sgid", "y", mode=0o2755)
    l1.dir("scratch", mode=0o1777)
    l1.file("data.bin", os.urandom(100_000), mode=0o600, uid=123, gid=456)
    l1.hardlink("data-link", "data.bin")
    l1.symlink("abs-link", "/etc/passwd").symlink("rel-link", "../etc/group")
    l1.file("replaced-by-dir", "was a file").dir("replaced-by-file").file("replaced-by-file/x", "x")
    l2 = Layer("gzip")
    l2.whiteout("usr/share/doc")          # whole dir removed
    l2.file("var/cache/d", "new in upper")  # written before the opaque marker...
    l2.opaque("var/cache")                # ...which hides only lower children
    l2.file("var/cache/e", "after marker")
    l2.whiteout("data.bin")               # the hardlink data-link survives
    l2.dir("replaced-by-dir").file("replaced-by-dir/y", "now a dir")
    l2.file("replaced-by-file", "now a file", mode=0o640)
    l2.file("etc/motd", "hello").hardlink("etc/motd-link", "etc/motd")
    l2.file("usr/bin-suid", "changed", mode=0o4711, uid=0, gid=0)
    l3 = Layer("none")
    l3.whiteout("etc/motd")               # one of two links removed
    l3.dir("var/cache/sub").file("var/cache/sub/new", "recreated")
    return [l1, l2, l3]


def test_unpacked_tree_matches_umoci(tmp_path, store):
    info = write_layout(tmp_path / "oracle", image_layers(), tag="v1")
    ours = benchrun.pull(info.ref, store=store).rootfs
    theirs = umoci_rootfs(info.layout, "v1", tmp_path / "bundle")
    a, b = normalise_hardlinks(snapshot(ours)), normalise_hardlinks(snapshot(theirs))
    only_ours, only_theirs = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    assert not only_ours and not only_theirs, (only_ours, only_theirs)
    diffs = {k: (a[k], b[k]) for k in a if a[k] != b[k]}
    assert not diffs, diffs
    # Spot checks on the semantics themselves (so the oracle agreeing is not the only evidence).
    assert not (ours / "usr/share/doc").exists()
    assert sorted(os.listdir(ours / "var/cache")) == ["d", "e", "sub"]
    assert os.listdir(ours / "var/cache/sub") == ["new"]
    assert (ours / "data-link").stat().st_size == 100_000
    assert (ours / "usr/bin-suid").stat().st_mode & 0o7777 == 0o4711
    assert (ours / "scratch").stat().st_mode & 0o7777 == 0o1777
    assert (ours / "etc/motd-link").read_text() == "hello"
