"""`--pull always` vs `missing` on a cached, digest-pinned image (docs/performance.md, issue 11).
Run from the repository root as root, with docker-registry and skopeo installed."""
import sys, time, tempfile, pathlib, statistics

sys.path.insert(0, "tests/py")
from support.registry import RegistryServer
from support.ocilayout import Layer, busybox_layer, skopeo_push, write_layout
import benchrun
from benchrun import runner

t = pathlib.Path(tempfile.mkdtemp())
reg = RegistryServer(t / "reg")
try:
    info = write_layout(t / "img", [busybox_layer(), Layer().file("a", "x")])
    skopeo_push(info, f"{reg.host}/perf/img:1")
    ref = f"{reg.host}/perf/img@{info.manifest_digest}"
    store = t / "store"
    benchrun.pull(ref, store=store)
    res = {}
    for policy in ("missing", "always", "missing", "always"):
        spec = runner.make_spec(ref, ["true"], store=store, pull=policy)
        xs = []
        for _ in range(30):
            t0 = time.perf_counter()
            runner.load_image(spec)
            xs.append(time.perf_counter() - t0)
        res.setdefault(policy, []).extend(xs)
    for k, v in res.items():
        print(f"{k}: median {statistics.median(v)*1e3:.2f} ms  (n={len(v)})")
finally:
    reg.stop()
