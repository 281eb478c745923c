"""--instructions for real: callgrind from the host's Valgrind counts a workload's instructions in
the sandbox, in images that do not contain Valgrind (docs/instructions.md).

One session-scoped image holds every test program (static C, built here with gcc) plus a
dynamically linked one with its libc; each test runs a few short workloads (callgrind makes a
busybox command about a second).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

import benchrun
from benchrun import runner
from benchrun.errors import ConfigError, InstructionCountError, ValgrindNotFound
from support.ocilayout import ImageInfo, Layer, busybox_layer, write_layout

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(
        not os.path.exists("/usr/libexec/valgrind/callgrind-amd64-linux"),
        reason="needs Debian's valgrind on the host (scripts/bootstrap.sh installs it)",
    ),
]

ITERATIONS = 100_000

# The same loop with 1 or 3 nops per iteration: exactly 2 * N instructions apart.
LOOP = r"""
#include <stdlib.h>
int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 0;
  for (long i = 0; i < n; i++) asm volatile(NOPS ::: "memory");
  return 0;
}
"""

SECTIONS = r"""
#include <valgrind/callgrind.h>
#include <stdio.h>
static void loop(long n) { for (long i = 0; i < n; i++) asm volatile("nop" ::: "memory"); }
int main(void) {
  loop(50000);  /* setup: not in any section */
  CALLGRIND_START_INSTRUMENTATION;
  loop(100000);
  CALLGRIND_STOP_INSTRUMENTATION;
  CALLGRIND_DUMP_STATS_AT("loop_a");
  CALLGRIND_START_INSTRUMENTATION;
  loop(200000);
  CALLGRIND_STOP_INSTRUMENTATION;
  CALLGRIND_DUMP_STATS_AT("BM_loop/b");
  puts("sections done");
  return 0;
}
"""

# vpaddd %zmm0,%zmm0,%zmm0 (EVEX): Valgrind 3.19 decodes no AVX-512 at all, whatever the CPU.
AVX512 = r"""
int main(void) { asm volatile(".byte 0x62,0xf1,0x7d,0x48,0xfe,0xc0"); return 0; }
"""

DYNAMIC = r"""
#include <stdio.h>
int main(void) { printf("dynamic %d\n", 42); return 0; }
"""


def _gcc(src: str, out: Path, *flags: str) -> bytes:
    c = out.with_suffix(".c")
    c.write_text(src)
    subprocess.run(["gcc", "-O1", *flags, "-o", str(out), str(c)], check=True, capture_output=True)
    return out.read_bytes()


@pytest.fixture(scope="session")
def instr_image(tmp_path_factory: pytest.TempPathFactory) -> ImageInfo:
    if not os.path.exists("/usr/include/valgrind/callgrind.h"):
        pytest.skip("needs /usr/include/valgrind/callgrind.h (Debian's valgrind)")
    work = tmp_path_factory.mktemp("instr")
    app = Layer("gzip").dir("prog")
    for name, src, flags in [
        ("loop1", LOOP, ["-static", '-DNOPS="nop"']),
        ("loop3", LOOP, ["-static", '-DNOPS="nop; nop; nop"']),
        ("sections", SECTIONS, ["-static"]),
        ("avx512", AVX512, ["-static"]),
        ("dynamic", DYNAMIC, []),
    ]:
        app.file(f"prog/{name}", _gcc(src, work / name, *flags), mode=0o755)
    # The dynamic program's loader and libc, from the host (what `ldd` names).
    libs = subprocess.run(
        ["ldd", str(work / "dynamic")], check=True, capture_output=True, text=True
    ).stdout
    seen = set()
    for line in libs.splitlines():
        path = next((w for w in line.split() if w.startswith("/")), None)
        if path is None or path in seen:
            continue
        seen.add(path)
        parent = ""
        for part in Path(path).parent.parts[1:]:
            parent = f"{parent}/{part}" if parent else part
            app.dir(parent)
        app.file(path.lstrip("/"), Path(os.path.realpath(path)).read_bytes(), mode=0o755)
    cfg = {"Env": ["PATH=/prog:/bin"], "WorkingDir": "/"}
    return write_layout(work / "layout", [busybox_layer(), app], config=cfg)


@pytest.fixture(scope="module")
def image_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("instr-store")


def _run(image: ImageInfo, store: Path, argv: list[str], **options) -> benchrun.Result:
    options.setdefault("timeout", 120)
    options.setdefault("instructions", True)
    return benchrun.run(image.ref, argv, store=store, **options)


def test_counts_are_deterministic_and_follow_children(instr_image, image_store):
    # busybox is static; `sh -c` forks a child for /prog/loop1, which is counted too.
    argv = ["sh", "-c", f"echo hi; /prog/loop1 {ITERATIONS}; true"]
    results = [_run(instr_image, image_store, argv) for _ in range(3)]
    counts = {r.metrics["instructions"][0] for r in results}
    for r in results:
        assert r.exit_code == 0, r.stderr
        assert r.stdout == b"hi\n"
        assert r.metrics["instructions"][1] == "count"
    assert len(counts) == 1, counts  # identical, not merely close
    alone = _run(instr_image, image_store, ["loop1", str(ITERATIONS)])
    assert alone.metrics["instructions"][0] > 2 * ITERATIONS  # the loop itself: >= 3 per round
    assert counts.pop() > alone.metrics["instructions"][0]  # + the shell's own


def test_known_difference_is_reported_exactly(instr_image, image_store):
    one = _run(instr_image, image_store, ["loop1", str(ITERATIONS)])
    three = _run(instr_image, image_store, ["loop3", str(ITERATIONS)])
    diff = three.metrics["instructions"][0] - one.metrics["instructions"][0]
    assert abs(diff - 2 * ITERATIONS) <= 5, diff


def test_no_default_counters_under_instructions(instr_image, image_store):
    # perf counters would count Valgrind's processes: none by default, a notice when asked for.
    plain = _run(instr_image, image_store, ["loop1", "10"])
    assert "task_clock" not in plain.metrics and "page_faults" not in plain.metrics
    asked = _run(instr_image, image_store, ["loop1", "10"], counters="task-clock")
    assert "task_clock" in asked.metrics
    assert any("Valgrind's work too" in n for n in asked.notices), asked.notices


def test_cache_mode_emits_simulated_misses(instr_image, image_store):
    r = _run(instr_image, image_store, ["loop1", "1000"], instructions="cache")
    m = {k: v for k, (v, _) in r.metrics.items()}
    for name in ("i1_misses", "d1_misses", "ll_misses", "data_reads", "data_writes"):
        assert name in m and m[name] >= 0, name
    assert m["i1_misses"] > 0  # cold start: every code line misses once
    assert m["ll_misses"] <= m["i1_misses"] + m["d1_misses"]
    assert m["estimated_cycles"] >= m["instructions"] + m["data_reads"] + m["data_writes"]
    assert r.metrics["estimated_cycles"][1] == "cycles"


def test_sections_are_counted_by_name(instr_image, image_store):
    r = _run(instr_image, image_store, ["sections"], instructions="sections")
    assert r.exit_code == 0 and r.stdout == b"sections done\n", r.stderr
    a = r.metrics["instructions.loop_a"][0]
    b = r.metrics["instructions.bm_loop_b"][0]
    # 100k and 200k iterations of the same loop body, and nothing else (setup is not counted).
    assert 100_000 * 3 <= a <= 100_000 * 3 + 50, a
    assert abs(b - 2 * a) <= 50, (a, b)
    assert r.metrics["instructions"][0] == pytest.approx(a + b, abs=100)


def test_dynamic_workload(instr_image, image_store):
    r = _run(instr_image, image_store, ["dynamic"])
    assert r.exit_code == 0 and r.stdout == b"dynamic 42\n", r.stderr
    assert r.metrics["instructions"][0] > 50_000  # the loader's relocations alone
    # Another user than root: the output tmpfs belongs to the workload's user.
    nobody = _run(instr_image, image_store, ["loop1", "10"], user="65534")
    assert nobody.exit_code == 0 and nobody.metrics["instructions"][0] > 0, nobody.stderr


def test_unsupported_instruction_set_quotes_valgrind(instr_image, image_store):
    with pytest.raises(InstructionCountError, match="unhandled instruction bytes: 0x62"):
        _run(instr_image, image_store, ["avx512"])


def test_forged_output_is_refused(instr_image, image_store):
    # The workload can write into the tool's output directory (it is the tool's process):
    # what it plants there fails the run loudly instead of changing the count.
    out = "/.benchrun-tools/out"
    for plant, why in [
        (f"echo junk > {out}/callgrind.out.99", "expected '# callgrind format'"),
        (f"ln -s /etc/passwd {out}/callgrind.out.2", "not a regular file"),
        (f"echo x > {out}/notes", "unexpected file 'notes'"),
        (f"mkfifo {out}/callgrind.out.3", "not a regular file"),
    ]:
        with pytest.raises(InstructionCountError, match=why):
            _run(instr_image, image_store, ["sh", "-c", plant])
    # The tools are read-only; the image itself is untouched by the tool mounts.
    r = _run(instr_image, image_store, ["sh", "-c", "touch /.benchrun-tools/valgrind/x"])
    assert r.exit_code != 0 and b"Read-only" in r.stderr


def test_missing_launcher_is_valgrind_not_found(instr_image, image_store, monkeypatch):
    monkeypatch.setenv("BENCHRUN_VGLAUNCH", "/nonexistent/benchrun-vglaunch")
    with pytest.raises(ValgrindNotFound, match="launcher"):
        _run(instr_image, image_store, ["true"])


def test_vm_backend_refuses_clearly():
    with pytest.raises(ConfigError, match="vm backend does not count instructions"):
        runner.make_spec("busybox", ["true"], backend="vm", instructions=True)


def test_cli_flag_before_the_image(instr_image, image_store, capsys):
    from benchrun.cli.main import main

    rc = main(
        [
            "run",
            "--store",
            str(image_store),
            "--json",
            "--instructions",
            instr_image.ref,
            "loop1",
            "10",
        ]
    )
    assert rc == 0
    import json

    doc = json.loads(capsys.readouterr().out)
    assert doc["metrics"]["instructions"]["value"] > 0


def test_killed_processes_are_a_notice_and_missing_commands_an_error(instr_image, image_store):
    # The subshell exits (counted); the sleep and the shell are killed by the timeout (not).
    r = _run(instr_image, image_store, ["sh", "-c", "(true); /bin/sleep 30; true"], timeout=2)
    assert r.timed_out
    assert r.metrics["instructions"][0] > 0
    assert any("ended without writing a profile" in n for n in r.notices), r.notices
    with pytest.raises(InstructionCountError, match="nosuchcmd: command not found"):
        _run(instr_image, image_store, ["nosuchcmd"])
