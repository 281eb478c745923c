"""--init for real (docs/cli.md "--init"): benchrun's static init (cpp/tools/pid1.c) is PID 1 of a
sandbox run; it reaps orphans, forwards signals to the workload's process group, turns --timeout
into SIGTERM, --stop-timeout, then a kill, and exits with the workload's status (128+N for a
signal). Busybox shell workloads, each well under a second except the grace test (about 2 s).
"""

from __future__ import annotations

import pytest

import benchrun
import benchrun.errors
from benchrun.errors import ConfigError
from support.ocilayout import Layer, busybox_layer, write_layout

pytestmark = [pytest.mark.root]

# 1,000 double forks: each subshell starts `true` in the background and exits at once, so `true`
# is re-parented to PID 1. Then the zombies left in the pid namespace are counted (field 3 of
# /proc/PID/stat; busybox's process names have no spaces). The shell itself becomes `sleep`, which
# never waits for anything: without --init it is PID 1 and nobody reaps the orphans (busybox's
# shell as PID 1 would reap them while waiting for its own children).
ORPHANS = (
    "(i=0; while [ $i -lt 1000 ]; do (true &); i=$((i+1)); done; sleep 0.5; "
    "echo zombies=$(cat /proc/[0-9]*/stat 2>/dev/null | awk '$3 == \"Z\"' | wc -l); "
    "echo pid1=$(tr '\\0' ' ' < /proc/1/cmdline)) & exec sleep 2.5"
)


def _run(image, store, script: str, **options) -> benchrun.Result:
    options.setdefault("timeout", 60)
    return benchrun.run(image.ref, [script], store=store, **options)


def _field(result: benchrun.Result, name: str) -> str:
    for line in result.stdout.decode().splitlines():
        if line.startswith(name + "="):
            return line.split("=", 1)[1].strip()
    raise AssertionError(f"no {name}= in {result.stdout!r} (stderr {result.stderr!r})")


def test_orphans_are_reaped_only_with_init(busybox_image, store):
    with_init = _run(busybox_image, store, ORPHANS, init=True)
    assert with_init.exit_code == 0, with_init.stderr
    assert _field(with_init, "pid1").startswith("/.benchrun-pid1 -- /bin/sh -c")
    assert _field(with_init, "zombies") == "0"
    # Today's behaviour without it: `sleep` is PID 1 and the orphans stay zombies (this is what
    # makes the check above able to fail).
    without = _run(busybox_image, store, ORPHANS)
    assert _field(without, "pid1") == "sleep 2.5"
    assert int(_field(without, "zombies")) > 900


def test_a_signal_to_pid1_reaches_the_whole_group(busybox_image, store):
    # A background child of the workload signals PID 1 (our init); the init forwards USR1 to the
    # workload's group: the leader and its other child both get it.
    script = (
        "sh -c 'trap \"echo child-usr1; exit 0\" USR1; sleep 30 & wait' & "
        "trap 'echo leader-usr1; wait; exit 7' USR1; "
        "(sleep 0.3; kill -USR1 1) & "
        "sleep 30 & wait"
    )
    r = _run(busybox_image, store, script, init=True)
    out = r.stdout.decode()
    assert "leader-usr1" in out and "child-usr1" in out, (out, r.stderr)
    assert r.exit_code == 7 and not r.timed_out
    assert r.wall_time < 10


def test_exit_status_mapping(busybox_image, store):
    assert _run(busybox_image, store, "exit 3", init=True).exit_code == 3
    # Killed by SIGTERM: the init exits 128 + 15, as a shell reports it.
    r = _run(busybox_image, store, "kill -TERM $$; sleep 5", init=True)
    assert (r.exit_code, r.signal) == (143, 0)


def test_timeout_sends_sigterm_first(busybox_image, store):
    script = "trap 'echo got-term; exit 5' TERM; sleep 30 & wait"
    r = _run(busybox_image, store, script, init=True, timeout=0.5, stop_timeout=20)
    assert r.timed_out and r.exit_code == 5, (r, r.stderr)
    assert "got-term" in r.stdout.decode()
    assert r.wall_time < 10  # it stopped on SIGTERM, long before the grace ran out


def test_timeout_grace_then_kill(busybox_image, store):
    script = "trap '' TERM; echo started; sleep 30"
    r = _run(busybox_image, store, script, init=True, timeout=0.5, stop_timeout=1)
    assert r.timed_out and r.signal == 9, (r, r.stderr)
    assert 1.4 <= r.wall_time < 8, r.wall_time
    # Without --init the deadline kills at once, as before.
    r = _run(busybox_image, store, script, timeout=0.5, stop_timeout=1)
    assert r.timed_out and r.signal == 9
    assert r.wall_time < 1.4, r.wall_time


def test_vm_backend_refuses_init(busybox_image, store):
    with pytest.raises(ConfigError, match="vm backend has no --init"):
        _run(busybox_image, store, "true", init=True, backend="vm")


def test_stop_timeout_is_checked(busybox_image, store):
    with pytest.raises(ConfigError, match="stop_timeout"):
        _run(busybox_image, store, "true", init=True, stop_timeout=-1)


def test_a_planted_symlink_at_the_init_path_is_refused(tmp_path, store):
    # The bind never follows the image's /.benchrun-pid1: a symlink there (to a host-looking path)
    # fails the run's set-up with the step named, and an image's own regular file is covered.
    bad = write_layout(
        tmp_path / "planted",
        [busybox_layer(), Layer("gzip").symlink(".benchrun-pid1", "/etc/passwd")],
        config={"Entrypoint": ["/bin/sh", "-c"], "Env": ["PATH=/bin"]},
    )
    with pytest.raises(benchrun.errors.BenchrunError, match="benchrun-pid1"):
        _run(bad, store, "true", init=True)
    own = write_layout(
        tmp_path / "own",
        [busybox_layer(), Layer("gzip").file(".benchrun-pid1", "#!/bin/sh\nexit 99\n", mode=0o755)],
        config={"Entrypoint": ["/bin/sh", "-c"], "Env": ["PATH=/bin"]},
    )
    r = _run(own, store, "exit 4", init=True)
    assert r.exit_code == 4, r.stderr
