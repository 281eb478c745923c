#!/usr/bin/env python3
"""generate.py: writes the hostile-input corpus (tests/corpus/<kind>/) and the fuzzers' seed
corpora (tests/fuzz/corpus/<target>/) from one list of samples, so both stay in step.

    python3 tests/corpus/generate.py        # rewrites both trees (deterministic output)

tests/corpus/<kind>/ holds each document as a parser receives it; a file whose name starts with
"reject-" must be refused with the parser's typed error, every other file must be accepted or
refused with it (never a crash, hang or another exception), and "ok-" files must be accepted. The readers are
tests/cpp/corpus/corpus_test.cpp (C++ parsers) and tests/py/unit/test_corpus.py (Python parsers).
tests/fuzz/corpus/<target>/ holds the same documents in the fuzz target's input format (some
targets take a leading selector byte, see tests/fuzz/<target>.cpp).
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import struct
import subprocess
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
FUZZ = ROOT.parent / "fuzz" / "corpus"
D1 = "sha256:" + "a" * 64
D2 = "sha256:" + "b" * 64
D3 = "sha256:" + "c" * 64

corpus: dict[str, dict[str, bytes]] = {}
seeds: dict[str, dict[str, bytes]] = {}


def add(
    kind: str, name: str, data: bytes | str, seed: str | None = None, seed_prefix: bytes = b""
) -> None:
    raw = data.encode() if isinstance(data, str) else data
    corpus.setdefault(kind, {})[name] = raw
    if seed and "deep-nesting" not in name:  # big, and slow for the fuzzer: corpus only
        seeds.setdefault(seed, {})[name] = seed_prefix + raw


def j(doc: object) -> str:
    return json.dumps(doc, separators=(",", ":"))


def nest(depth: int, leaf: str = "1") -> str:
    return "[" * depth + leaf + "]" * depth


# --- image references (oci/reference.cpp) ----------------------------------------------------
for i, text in enumerate(
    [
        "busybox",
        "busybox:1.36",
        "docker.io/library/busybox:latest",
        "index.docker.io/x/y",
        "localhost:5000/a/b@" + D1,
        "[::1]:5000/x:y",
        "127.0.0.1:1/other/private@" + D1,
        "quay.io/org/img:v1.2-3_a",
        "docker://ghcr.io/o/i:t",
        "oci:/tmp/layout:tag",
        "oci:/a:b/dir",
        "docker-archive:/x.tar",
        "docker-archive:/x.tar:busybox:latest",
        "docker-archive:/x.tar:@1",
    ]
):
    add("reference", f"ok-{i:02d}", text, "reference_fuzz")
for name, text in {
    "empty": "",
    "upper": "Busybox",
    "long-path": "a/" * 200 + "b",
    "short-digest": "b@sha256:ab",
    "bad-hex": "b@sha256:" + "g" * 64,
    "double-slash": "a//b",
    "space": "busybox:tag with space",
    "nul": "busybox\0:latest",
    "unclosed-v6": "[::1:5000/x",
    "dotdot": "../x",
    "long-tag": "b:" + "t" * 129,
    "trailing-colon": "b:",
    "at-only": "b@",
    "control": "b\n:latest",
    "dir-transport": "dir:/tmp/x",
    "oci-empty": "oci:",
    "archive-bad-index": "docker-archive:/x.tar:@x",
    "port-overflow": "localhost:99999999999/x",
}.items():
    add("reference", f"reject-{name}", text, "reference_fuzz")

# --- manifests and indexes (oci/manifest.cpp parse_manifest) --------------------------------
OCI_M = "application/vnd.oci.image.manifest.v1+json"
OCI_I = "application/vnd.oci.image.index.v1+json"
DOCKER_L = "application/vnd.docker.distribution.manifest.list.v2+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
manifest = {
    "schemaVersion": 2,
    "mediaType": OCI_M,
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": D1, "size": 100},
    "layers": [{"mediaType": LAYER, "digest": D2, "size": 1000}],
}
index = {
    "schemaVersion": 2,
    "mediaType": OCI_I,
    "manifests": [
        {
            "mediaType": OCI_M,
            "digest": D1,
            "size": 10,
            "platform": {"os": "linux", "architecture": "amd64"},
        },
        {
            "mediaType": OCI_M,
            "digest": D2,
            "size": 10,
            "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"},
        },
        {
            "mediaType": OCI_M,
            "digest": D3,
            "size": 10,
            "platform": {"os": "unknown", "architecture": "unknown"},
            "annotations": {"vnd.docker.reference.type": "attestation-manifest"},
        },
    ],
}
docker_list = dict(index, mediaType=DOCKER_L)
add(
    "manifest", "deep-nesting", j(manifest)[:-1] + ',"x":' + nest(20000) + "}"
)  # valid JSON: accepted or refused, no crash
for name, doc in {"oci-manifest": manifest, "oci-index": index, "docker-list": docker_list}.items():
    add("manifest", f"ok-{name}", j(doc), "manifest_fuzz", b"\0")
for name, text in {
    "empty": "",
    "truncated": j(manifest)[:-3],
    "array": "[]",
    "null": "null",
    "both-layers-and-manifests": j(dict(manifest, manifests=index["manifests"])),
    "schema1": j({"schemaVersion": 1, "name": "x", "fsLayers": []}),
    "bad-digest": j(dict(manifest, config=dict(manifest["config"], digest="sha256:abc"))),
    "digest-traversal": j(
        dict(
            manifest,
            layers=[{"mediaType": LAYER, "digest": "sha256:../../../../etc/passwd", "size": 1}],
        )
    ),
    "negative-size": j(dict(manifest, layers=[{"mediaType": LAYER, "digest": D2, "size": -1}])),
    "layers-not-array": j(dict(manifest, layers={"a": 1})),
    "unknown-media-type": j(dict(manifest, mediaType="text/html")),
    "invalid-utf8": b'{"schemaVersion":2,"mediaType":"' + OCI_M.encode() + b'\xff\xfe"}',
    "huge-number": j(manifest).replace('"size":1000', '"size":1' + "0" * 400),
}.items():
    add("manifest", f"reject-{name}", text, "manifest_fuzz", b"\0")

# --- image configs (oci/manifest.cpp parse_config) ------------------------------------------
config = {
    "architecture": "amd64",
    "os": "linux",
    "config": {
        "Entrypoint": ["/bin/sh", "-c"],
        "Cmd": ["echo hi"],
        "Env": ["PATH=/bin"],
        "WorkingDir": "/work",
        "User": "1000:1000",
        "StopSignal": "SIGTERM",
        "Labels": {"a": "b"},
    },
    "rootfs": {"type": "layers", "diff_ids": [D1, D2]},
    "created": "2024-01-01T00:00:00Z",
}
add("config", "ok-full", j(config), "config_fuzz")
add(
    "config",
    "ok-minimal",
    j({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}),
    "config_fuzz",
)
for name, doc in {
    "rootfs-type": dict(config, rootfs={"type": "tar", "diff_ids": [D1]}),
    "no-rootfs": {k: v for k, v in config.items() if k != "rootfs"},
    "bad-diff-id": dict(config, rootfs={"type": "layers", "diff_ids": ["sha256:zz"]}),
    "entrypoint-string": dict(config, config={"Entrypoint": "/bin/sh"}),
    "env-numbers": dict(config, config={"Env": [1, 2]}),
    "labels-array": dict(config, config={"Labels": ["a"]}),
}.items():
    add("config", f"reject-{name}", j(doc), "config_fuzz")
for name, text in {
    "empty": "",
    "garbage": "\x00\x01\x02",
    "deep-nesting": nest(20000),
    "string": '"x"',
}.items():
    add("config", f"reject-{name}", text, "config_fuzz")

# --- WWW-Authenticate challenges and digests (oci/auth.cpp, oci/digest.cpp) -------------------
for i, text in enumerate(
    [
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/busybox:pull"',
        'Basic realm="Registry Realm"',
        'bearer realm="a,b", error="invalid_token"',
        "Bearer realm=unquoted,service=x",
        'Bearer realm="esc\\"aped"',
        "Bearer",
        "",
        ",,,,",
        'Bearer realm="' + "x" * 5000 + '"',
        'Bearer realm="unterminated',
        "Negotiate abc==",
        "Bearer " + "a=b," * 2000,
        D1,
        "sha512:" + "f" * 128,
        "sha256:" + "A" * 64,
        "sha256-" + "a" * 64,
    ]
):
    add("auth_challenge", f"any-{i:02d}", text, "auth_challenge_fuzz")


# --- layers (oci/layer_unpack.cpp apply_layer) -----------------------------------------------
def tar(
    *entries: tarfile.TarInfo | tuple[tarfile.TarInfo, bytes], fmt: int = tarfile.PAX_FORMAT
) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for e in entries:
            info, data = e if isinstance(e, tuple) else (e, b"")
            if info.type == tarfile.REGTYPE:
                info.size = len(data)
            t.addfile(info, io.BytesIO(data) if data else None)
        end = t.offset + 2 * tarfile.BLOCKSIZE  # without the padding to a 10 KiB record
    return buf.getvalue()[:end]


def ti(
    name: str, kind: bytes = tarfile.REGTYPE, link: str = "", mode: int = 0o644, **kw: object
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.mtime = kind, link, mode, 1600000000
    for k, v in kw.items():
        setattr(info, k, v)
    return info


def f(name: str, data: bytes = b"x\n", **kw: object) -> tuple[tarfile.TarInfo, bytes]:
    return ti(name, **kw), data


basic = tar(
    ti("bin", tarfile.DIRTYPE, mode=0o755),
    f("bin/sh", b"#!", mode=0o4755),
    ti("bin/ln", tarfile.SYMTYPE, "sh"),
    ti("bin/hard", tarfile.LNKTYPE, "bin/sh"),
    f("etc/.wh.gone"),
    ti("opaque/.wh..wh..opq"),
    ti("fifo", tarfile.FIFOTYPE),
    ti("dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3),
)
add("layer", "ok-basic", basic, "layer_apply_fuzz")
add("layer", "ok-basic-gzip", gzip.compress(basic, mtime=0), "layer_apply_fuzz")
zstd = shutil.which("zstd")
if zstd:
    add(
        "layer",
        "ok-basic-zstd",
        subprocess.run([zstd, "-q", "-c"], input=basic, capture_output=True, check=True).stdout,
        "layer_apply_fuzz",
    )
add(
    "layer",
    "ok-xattr",
    tar(
        f("x", pax_headers={"SCHILY.xattr.user.k": "v", "SCHILY.xattr.trusted.overlay.opaque": "y"})
    ),
    "layer_apply_fuzz",
)
add("layer", "ok-absolute-path", tar(f("/abs-escape")), "layer_apply_fuzz")
add(
    "layer",
    "ok-absolute-symlink-write",
    tar(ti("etc", tarfile.SYMTYPE, "/"), f("etc/abs-symlink-escape")),
    "layer_apply_fuzz",
)
add(
    "layer",
    "ok-symlink-dotdot-write",
    tar(ti("up", tarfile.SYMTYPE, "../../.."), f("up/symlink-escape")),
    "layer_apply_fuzz",
)
add(
    "layer",
    "ok-gnu-longname",
    tar(f("d/" * 60 + "long"), fmt=tarfile.GNU_FORMAT),
    "layer_apply_fuzz",
)
for name, data in {
    "dotdot": tar(f("../dotdot-escape")),
    "dotdot-deep": tar(f("a/../../../../dotdot-escape")),
    "hardlink-host-file": tar(ti("passwd", tarfile.LNKTYPE, "../../../../../etc/passwd")),
    "hardlink-missing": tar(ti("h", tarfile.LNKTYPE, "nope")),
    "traversing-whiteout": tar(f("../.wh.sentinel")),
    "root-replacement": tar(ti(".", tarfile.SYMTYPE, "/")),
    "file-as-parent": tar(f("p"), f("p/child")),
    "symlink-loop-parent": tar(
        ti("l1", tarfile.SYMTYPE, "l2"), ti("l2", tarfile.SYMTYPE, "l1"), f("l1/x")
    ),
    "long-path": tar(f("d/" * 2100 + "x")),
    "truncated": basic[: len(basic) // 2 + 100],
    "garbage": b"\x00not a tar at all" * 40,
    "gzip-corrupt": gzip.compress(basic, mtime=0)[:40] + b"\xff" * 40,
    "zstd-corrupt": b"\x28\xb5\x2f\xfd" + b"\xff" * 60,
}.items():
    add("layer", f"reject-{name}", data, "layer_apply_fuzz")


# --- docker save archives (oci/source_docker_archive.cpp) ------------------------------------
def docker_save(entries: object, members: dict[str, bytes], links: dict[str, str] = {}) -> bytes:
    items: list[tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]] = [
        f("manifest.json", entries if isinstance(entries, bytes) else j(entries).encode())
    ]
    items += [f(n, d) for n, d in members.items()]
    items += [ti(n, tarfile.SYMTYPE, t) for n, t in links.items()]
    return tar(*items, fmt=tarfile.USTAR_FORMAT)


layer_tar = tar(f("hello", b"hi\n"))
diff_id = "sha256:" + __import__("hashlib").sha256(layer_tar).hexdigest()
cfg = j(
    {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/hello"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
).encode()
entry = {"Config": "c.json", "RepoTags": ["busybox:latest"], "Layers": ["l/layer.tar"]}
add(
    "docker_archive",
    "ok-single",
    docker_save([entry], {"c.json": cfg, "l/layer.tar": layer_tar}),
    "docker_archive_fuzz",
    b"",
)
add(
    "docker_archive",
    "ok-symlinked-layer",
    docker_save(
        [dict(entry, Layers=["x/layer.tar"])],
        {"c.json": cfg, "l/layer.tar": layer_tar},
        {"x/layer.tar": "../l/layer.tar"},
    ),
    "docker_archive_fuzz",
)
for name, data in {
    "no-manifest": tar(f("c.json", cfg)),
    "manifest-not-json": docker_save(b"{not json", {}),
    "manifest-empty-array": docker_save([], {}),
    "manifest-not-objects": docker_save([1, "x"], {}),
    "missing-config": docker_save([dict(entry, Config="nope.json")], {"l/layer.tar": layer_tar}),
    "config-not-string": docker_save([dict(entry, Config=7)], {}),
    "layer-traversal": docker_save([dict(entry, Layers=["../../../etc/passwd"])], {"c.json": cfg}),
    "symlink-loop": docker_save([dict(entry, Layers=["a"])], {"c.json": cfg}, {"a": "b", "b": "a"}),
    "symlink-outside": docker_save(
        [dict(entry, Layers=["a"])], {"c.json": cfg}, {"a": "/etc/passwd"}
    ),
    "two-images-no-tag": docker_save([entry, entry], {"c.json": cfg, "l/layer.tar": layer_tar}),
    "deep-nesting": docker_save(nest(20000).encode(), {}),
}.items():
    add("docker_archive", f"reject-{name}", data, "docker_archive_fuzz")


# --- host<->guest frames (proto/, docs/protocol.md) ------------------------------------------
def u32(v: int) -> bytes:
    return struct.pack("<I", v)


def u64(v: int) -> bytes:
    return struct.pack("<Q", v)


def s(b: bytes) -> bytes:
    return u32(len(b)) + b


def strs(*items: bytes) -> bytes:
    return u32(len(items)) + b"".join(s(i) for i in items)


def frame(t: int, p: bytes, magic: int = 0x31505242, version: int = 2, length: int = -1) -> bytes:
    return struct.pack("<IHHII", magic, version, t, 0, len(p) if length < 0 else length) + p


payloads = {
    1: struct.pack("<H", 2) + s(b"0.1.0") + s(b"6.1.0") + u64(123456),
    2: strs(b"/bin/sh", b"-c", b"echo hi")
    + strs(b"PATH=/usr/bin:/bin", b"HOME=/root")
    + s(b"/")
    + u32(1000)
    + u32(1000)
    + u32(2)
    + u32(1000)
    + u32(27)
    + s(b"benchrun")
    + u32(1)
    + u32(7)
    + u64(1024)
    + u64(4096)
    + u64(5000)
    + u64(1 << 30)
    + u64(64)
    + strs(b"/out/result.json")
    + u64(1 << 26)
    + u64(1 << 26)
    + u32(64)
    + s(b"/dev/vda")
    + s(bytes.fromhex("0600000000000000") * 2)
    + strs(b"task-clock", b"instructions:u"),
    3: b"hello\n",
    4: b"warning\n",
    5: s(b"/out/result.json") + u64(10) + u64(0) + s(b"0123456789"),
    6: s(b"/out/missing") + s(b"no such file"),
    7: struct.pack("<ii", 0, 0) + bytes([0, 0, 1, 0]),
    8: s(b"exec")
    + struct.pack("<i", 2)
    + s(b"exec '/bin/sh': No such file or directory")
    + bytes([1]),
    9: b"",
    10: struct.pack("<H", 1) + u32(1) + s(b"wall_time") + s(b"s") + struct.pack("<d", 0.5),
}
add("frames", "file-chunk-of-larger-file", frame(5, s(b"/out/x") + u64(100) + u64(0) + s(b"short")))
for t, p in payloads.items():
    add("frames", f"ok-type{t}", frame(t, p), "proto_decoder_fuzz", bytes([255, t - 1]))
add(
    "frames",
    "ok-conversation",
    b"".join(frame(t, payloads[t]) for t in (1, 3, 4, 5, 6, 7, 10, 9)),
    "proto_decoder_fuzz",
    bytes([16, 0]),
)
for name, data in {
    "bad-magic": frame(3, b"x", magic=0x12345678),
    "version-1": frame(3, b"x", version=1),
    "unknown-type": frame(99, b"x"),
    "type-zero": frame(0, b""),
    "length-over-max": frame(3, b"", length=0xFFFFFFFF),
    "end-with-payload": frame(9, b"junk"),
    "hello-truncated": frame(1, payloads[1][:5]),
    "string-count-huge": frame(2, u32(0xFFFFFFFF)),
    "string-length-past-end": frame(5, u32(0x7FFFFFFF) + b"abc"),
    "metrics-nan": frame(
        10, struct.pack("<H", 1) + u32(1) + s(b"x") + s(b"s") + struct.pack("<d", float("nan"))
    ),
    "metrics-schema-2": frame(10, struct.pack("<H", 2) + u32(0)),
    "metrics-bad-name": frame(
        10, struct.pack("<H", 1) + u32(1) + s(b"../X") + s(b"s") + struct.pack("<d", 1.0)
    ),
    "relative-output-path": frame(6, s(b"../../etc/shadow") + s(b"x")),
    "error-trailing-bytes": frame(8, payloads[8] + b"extra"),
}.items():
    add("frames", f"reject-{name}", data, "proto_decoder_fuzz", bytes([255, 0]))

# --- runner channel messages (python/benchrun/jobs/protocol.py) ------------------------------
JOB = "0b6f8a2e-8a4e-4c4e-9d6e-2f1d0c3b4a59"
for name, doc in {
    "runner-ready": {"event": "ready", "poll_timeout": 60},
    "runner-running": {"event": "running"},
    "runner-heartbeat": {"event": "heartbeat"},
    "runner-completed": {"event": "completed", "job": JOB, "results": []},
    "runner-failed": {"event": "failed", "job": JOB, "results": [], "error": "boom"},
    "server-ack": {"event": "ack"},
    "server-no-job": {"event": "no_job"},
    "server-cancel": {"event": "cancel"},
}.items():
    add("channel", f"ok-{name}", j(doc))
for name, text in {
    "runner-not-json": "{",
    "runner-array": "[]",
    "runner-no-event": j({}),
    "runner-unknown-event": j({"event": "rm -rf"}),
    "runner-event-number": j({"event": 1}),
    "runner-bad-uuid": j({"event": "completed", "job": "x", "results": []}),
    "runner-results-not-list": j({"event": "completed", "job": JOB, "results": {}}),
    "runner-poll-timeout-huge": j({"event": "ready", "poll_timeout": 10**30}),
    "runner-poll-timeout-bool": j({"event": "ready", "poll_timeout": True}),
    "runner-invalid-utf8": b'{"event":"ready\xff"}',
    "server-job-missing-spec": j({"event": "job", "uuid": JOB}),
    "server-job-spec-wrong-types": j(
        {
            "event": "job",
            "uuid": JOB,
            "spec": {"cpu": "all"},
            "config": [],
            "timeout": -1,
            "created": None,
        }
    ),
    "server-update-garbage": j({"event": "update", "version": {}, "url": 5}),
    "server-unknown-event": j({"event": "exec"}),
}.items():
    add("channel", f"reject-{name}", text)
# Part E (wt-server) is adding a nesting limit and number validation: these are kept without the
# reject- prefix until then (they must not crash the parser, whatever it answers).
add("channel", "runner-duplicate-keys", '{"event":"ready","event":"running"}')  # last one wins
add("channel", "runner-deep-nesting", '{"event":"ready","runner":' + nest(3000) + "}")
add(
    "channel",
    "runner-nan",
    '{"event":"completed","job":"' + JOB + '","results":[],' '"timings":{"x":NaN}}',
)

# --- REST request bodies (python/benchrun/server/rest.py) ------------------------------------
for name, text in {
    "projects-ok": j({"name": "p1"}),
    "projects-name-number": j({"name": 5}),
    "projects-name-huge": j({"name": "x" * 20000}),
    "projects-unknown-key": j({"nme": "p"}),
    "projects-array": "[1,2]",
    "projects-not-json": "{'name': 1}",
    "projects-empty": "",
    "projects-invalid-utf8": b'{"name":"\xff"}',
    "projects-nul": j({"name": "a\0b"}),
    "tokens-role-bad": j({"role": "root", "projects": []}),
    "tokens-projects-not-list": j({"role": "user", "projects": "all"}),
    "runners-ok": j({"name": "r1", "projects": []}),
    "runners-projects-objects": j({"name": "r", "projects": [{"id": 1}]}),
    "jobs-ok": j({"image": "busybox", "spec": {}, "config": {"entrypoint": ["true"]}}),
    "jobs-image-number": j({"image": 1}),
    "jobs-config-wrong-types": j(
        {"image": "busybox", "config": {"entrypoint": "x", "env": 1, "timeout": "1"}}
    ),
    "jobs-timeout-huge": j({"image": "busybox", "config": {"timeout": 10**40}}),
    "jobs-spec-negative": j({"image": "busybox", "spec": {"cpu": -1, "memory": -5}}),
    "jobs-image-ssrf": j({"image": "127.0.0.1:1/x:y"}),
}.items():
    add("rest", name, text)

# --- result files (python/benchrun/metrics.py) -----------------------------------------------
add(
    "results",
    "bmf-ok",
    j({"bench": {"latency": {"value": 1.5, "lower_value": 1, "upper_value": 2}}}),
)
add(
    "results",
    "gbench-ok",
    j(
        {
            "context": {},
            "benchmarks": [
                {
                    "name": "BM_x",
                    "run_type": "iteration",
                    "iterations": 10,
                    "real_time": 1.0,
                    "cpu_time": 1.0,
                    "time_unit": "ns",
                }
            ],
        }
    ),
)
add(
    "results",
    "hyperfine-ok",
    j(
        {
            "results": [
                {
                    "command": "x",
                    "mean": 0.1,
                    "stddev": 0.01,
                    "median": 0.1,
                    "min": 0.09,
                    "max": 0.2,
                    "times": [0.1],
                }
            ]
        }
    ),
)
for name, text in {
    "bmf-not-object": "[]",
    "bmf-empty-name": j({"": {"m": {"value": 1}}}),
    "bmf-value-string": j({"b": {"m": {"value": "1"}}}),
    "bmf-nan": '{"b":{"m":{"value":NaN}}}',
    "bmf-infinity": '{"b":{"m":{"value":Infinity}}}',
    "bmf-huge": '{"b":{"m":{"value":1' + "0" * 400 + "}}}",
    "bmf-duplicate-keys": '{"b":{"m":{"value":1}},"b":{"m":{"value":2}}}',
    "bmf-deep-nesting": '{"b":' + nest(3000) + "}",
    "bmf-invalid-utf8": b'{"b\xff":{"m":{"value":1}}}',
    "bmf-empty": "",
    "gbench-benchmarks-object": j({"benchmarks": {}}),
    "gbench-time-unit-bad": j(
        {
            "benchmarks": [
                {
                    "name": "x",
                    "real_time": 1,
                    "cpu_time": 1,
                    "time_unit": "fortnight",
                    "iterations": 1,
                }
            ]
        }
    ),
    "gbench-missing-time": j({"benchmarks": [{"name": "x"}]}),
    "gbench-bool-number": j(
        {
            "benchmarks": [
                {"name": "x", "real_time": True, "cpu_time": 1, "time_unit": "ns", "iterations": 1}
            ]
        }
    ),
    "hyperfine-results-string": j({"results": "x"}),
    "hyperfine-mean-null": j({"results": [{"command": "x", "mean": None}]}),
    "hyperfine-row-not-object": j({"results": [1]}),
}.items():
    add("results", f"reject-{name}", text)


def main() -> None:
    for tree, content in ((ROOT, corpus), (FUZZ, seeds)):
        for kind, files in content.items():
            d = tree / kind  # files not generated here (found crashes, added by hand) are kept
            d.mkdir(parents=True, exist_ok=True)
            for name, data in files.items():
                (d / name).write_bytes(data)
    total = sum(len(v) for v in corpus.values())
    print(f"corpus: {total} files in {len(corpus)} kinds; seeds for {len(seeds)} fuzz targets")


if __name__ == "__main__":
    main()
