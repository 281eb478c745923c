"""Red-team containment tests: the attempt classes the adversarial review of issue 11 found
contained, kept as the programs an attacker would put in an image so they stay contained.

All programs live in one image (built once). Each prints one line per attempt:
    RESULT <attempt> BLOCKED <errno name>   the kernel refused it (what we want)
    RESULT <attempt> ESCAPED <detail>       it worked
and the tests assert that every attempt of a class is BLOCKED and, where the attempt would leave a
trace on the host (a key, a sysctl value, a cgroup file, a host file read back), that the trace is
absent. The sandbox backend runs each program in its own run; the VM runs them all in one batched
run (attack-all, a shell loop), parsed the same way.

Not here (other parts of issue 11): socket-family allow-list and io_uring (wt-ns), fork bombs and
disk fill (wt-limits), setuid binaries in the store (wt-store).
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

import pytest

import benchrun

from security.conftest import BACKENDS

COMMON = r"""
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/sysmacros.h>
#include <unistd.h>
static void result(const char *what, long rc) {
  if (rc < 0) printf("RESULT %s BLOCKED %s\n", what, strerrorname_np(errno) ? strerrorname_np(errno) : "?");
  else printf("RESULT %s ESCAPED rc=%ld\n", what, rc);
  fflush(stdout);
}
static void escaped(const char *what, const char *detail) {
  printf("RESULT %s ESCAPED %s\n", what, detail);
  fflush(stdout);
}
"""

PROGRAMS = {
    # --- mount: classic, bind of the root, remount, and the new mount API.
    "mount": r"""
int main(void) {
  mkdir("/tmp/m", 0755);
  result("mount-tmpfs", mount("tmpfs", "/tmp/m", "tmpfs", 0, NULL));
  result("mount-bind-root", mount("/", "/tmp/m", NULL, MS_BIND | MS_REC, NULL));
  result("mount-proc", mount("proc", "/tmp/m", "proc", 0, NULL));
  result("remount-root-rw", mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND, NULL));
  result("umount-proc", umount2("/proc", MNT_DETACH));
  result("fsopen", syscall(SYS_fsopen, "tmpfs", 0));
  result("open_tree", syscall(SYS_open_tree, AT_FDCWD, "/", 1 /* OPEN_TREE_CLONE */));
  return 0;
}
""",
    # --- unshare: every namespace type on its own.
    "unshare": r"""
int main(void) {
  struct { const char *n; int f; } ns[] = {
    {"unshare-mnt", CLONE_NEWNS}, {"unshare-uts", CLONE_NEWUTS}, {"unshare-ipc", CLONE_NEWIPC},
    {"unshare-net", CLONE_NEWNET}, {"unshare-pid", CLONE_NEWPID}, {"unshare-user", CLONE_NEWUSER},
    {"unshare-cgroup", CLONE_NEWCGROUP}, {"unshare-time", 0x80 /* CLONE_NEWTIME */}};
  for (unsigned i = 0; i < sizeof ns / sizeof ns[0]; i++) result(ns[i].n, unshare(ns[i].f));
  return 0;
}
""",
    # --- ptrace: a process outside the sandbox (the test's own pid on the host, passed in), and
    # TRACEME then a syscall the filter denies (the pre-4.8 seccomp bypass through a tracer).
    # Processes of the same run may trace each other: that is not an escape and not tried here.
    "ptrace": r"""
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/wait.h>
int main(int argc, char **argv) {
  int host = argc > 1 ? atoi(argv[1]) : 1;
  result("ptrace-attach-host", ptrace(PTRACE_ATTACH, host, 0, 0));
  result("ptrace-seize-host", ptrace(PTRACE_SEIZE, host, 0, 0));
  char buf[16];
  struct iovec l = {buf, sizeof buf}, r = {(void *)0x400000, sizeof buf};
  result("process_vm_readv-host", process_vm_readv(host, &l, 1, &r, 1, 0));
  result("kill-host", kill(host, 0));
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/mem", host);
  result("proc-mem-host", open(path, O_RDONLY));
  pid_t c = fork();
  if (c == 0) {
    ptrace(PTRACE_TRACEME, 0, 0, 0);
    raise(SIGSTOP);
    result("traceme-init_module", syscall(SYS_init_module, NULL, 0, ""));
    _exit(0);
  }
  int st;
  waitpid(c, &st, 0);
  ptrace(PTRACE_CONT, c, 0, 0);
  waitpid(c, &st, 0);
  return 0;
}
""",
    # --- keyctl: keys in the user and session keyrings are host root's quota and namespace.
    "keyctl": r"""
#define KEY_SPEC_SESSION_KEYRING -3
#define KEY_SPEC_USER_KEYRING -4
int main(int argc, char **argv) {
  const char *desc = argc > 1 ? argv[1] : "benchrun-redteam";
  result("add_key-user", syscall(SYS_add_key, "user", desc, "x", 1, KEY_SPEC_USER_KEYRING));
  result("add_key-session", syscall(SYS_add_key, "user", desc, "x", 1, KEY_SPEC_SESSION_KEYRING));
  result("keyctl-join-session", syscall(SYS_keyctl, 1 /* JOIN_SESSION_KEYRING */, desc));
  result("keyctl-read-user", syscall(SYS_keyctl, 11 /* READ */, KEY_SPEC_USER_KEYRING, NULL, 0));
  return 0;
}
""",
    "bpf": r"""
int main(void) {
  union { struct { uint32_t map_type, key_size, value_size, max_entries; } m; char pad[128]; } a;
  memset(&a, 0, sizeof a);
  a.m.map_type = 1; a.m.key_size = 4; a.m.value_size = 4; a.m.max_entries = 1;
  result("bpf-map-create", syscall(SYS_bpf, 0 /* BPF_MAP_CREATE */, &a, sizeof a));
  struct { uint8_t code, regs; int16_t off; int32_t imm; } insns[] = {{0xb7, 0, 0, 0}, {0x95, 0, 0, 0}};
  struct { uint32_t type, cnt; uint64_t insns, license; char pad[112]; } p;
  memset(&p, 0, sizeof p);
  p.type = 1 /* SOCKET_FILTER */; p.cnt = 2; p.insns = (uintptr_t)insns; p.license = (uintptr_t)"GPL";
  result("bpf-prog-load", syscall(SYS_bpf, 5 /* BPF_PROG_LOAD */, &p, sizeof p));
  return 0;
}
""",
    "userfaultfd": r"""
int main(void) {
  result("userfaultfd", syscall(SYS_userfaultfd, O_CLOEXEC));
  result("dev-userfaultfd", open("/dev/userfaultfd", O_RDWR));
  return 0;
}
""",
    # --- open_by_handle_at: "shocker" opens the host root by a forged handle (inode 2).
    "shocker": r"""
struct handle { unsigned int bytes; int type; unsigned char f[8]; };
int main(void) {
  struct handle h = {8, 1, {2, 0, 0, 0, 0, 0, 0, 0}};
  int mnt = open("/", O_RDONLY);
  result("open_by_handle_at-inode2", syscall(SYS_open_by_handle_at, mnt, &h, O_RDONLY));
  struct handle own = {8, 0, {0}};
  int mount_id;
  if (syscall(SYS_name_to_handle_at, AT_FDCWD, "/etc", &own, &mount_id, 0) == 0)
    result("open_by_handle_at-own", syscall(SYS_open_by_handle_at, mnt, &own, O_RDONLY));
  else
    result("name_to_handle_at", -1);
  return 0;
}
""",
    # --- mknod: device nodes for the host's disk and memory, then use them.
    "mknod": r"""
static void dev(const char *name, mode_t type, int maj, int min) {
  char path[64];
  snprintf(path, sizeof path, "/tmp/%s", name);
  if (mknod(path, type | 0600, makedev(maj, min)) < 0) { result(name, -1); return; }
  int fd = open(path, O_RDONLY);
  char b;
  if (fd >= 0 && read(fd, &b, 1) == 1) escaped(name, "created and read");
  else result(name, -1);
}
int main(void) {
  dev("mknod-block-sda", S_IFBLK, 8, 0);
  dev("mknod-block-vda", S_IFBLK, 253, 0);
  dev("mknod-char-mem", S_IFCHR, 1, 1);
  dev("mknod-char-kmsg", S_IFCHR, 1, 11);
  return 0;
}
""",
    "rawsock": r"""
#include <sys/socket.h>
#include <netinet/in.h>
int main(void) {
  result("socket-inet-raw", socket(AF_INET, SOCK_RAW, IPPROTO_ICMP));
  result("socket-inet6-raw", socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6));
  result("socket-packet", socket(AF_PACKET, SOCK_RAW, htons(0x0003)));
  return 0;
}
""",
    # --- /proc/sys, /proc/sysrq-trigger and /sys writes (the value written is the one read, so an
    # escape changes nothing but is still reported).
    "sysctl": r"""
static void rewrite(const char *name, const char *path) {
  char buf[256] = "h\n";
  int r = open(path, O_RDONLY);
  ssize_t n = r >= 0 ? read(r, buf, sizeof buf) : 2;
  if (n <= 0) n = 2;
  int fd = open(path, O_WRONLY);
  if (fd < 0) { result(name, -1); return; }
  result(name, write(fd, buf, n));
}
int main(void) {
  rewrite("proc-sys-hostname", "/proc/sys/kernel/hostname");
  rewrite("proc-sys-core_pattern", "/proc/sys/kernel/core_pattern");
  rewrite("proc-sys-modprobe", "/proc/sys/kernel/modprobe");
  rewrite("proc-sys-ip_forward", "/proc/sys/net/ipv4/ip_forward");
  rewrite("proc-sys-drop_caches", "/proc/sys/vm/overcommit_memory");
  rewrite("proc-sysrq-trigger", "/proc/sysrq-trigger");
  rewrite("sys-kernel-uevent_helper", "/sys/kernel/uevent_helper");
  rewrite("sys-power-state", "/sys/power/state");
  return 0;
}
""",
    # --- cgroups: move ourselves to a host cgroup, create one, arm release_agent, mount cgroupfs.
    "cgroup": r"""
static void write_to(const char *name, const char *path, const char *text) {
  int fd = open(path, O_WRONLY);
  if (fd < 0) { result(name, -1); return; }
  result(name, write(fd, text, strlen(text)));
}
int main(void) {
  char pid[32];
  snprintf(pid, sizeof pid, "%d\n", getpid());
  write_to("cgroup-procs-root", "/sys/fs/cgroup/cgroup.procs", pid);
  write_to("cgroup-procs-unified", "/sys/fs/cgroup/unified/cgroup.procs", pid);
  write_to("cgroup-procs-memory", "/sys/fs/cgroup/memory/cgroup.procs", pid);
  write_to("cgroup-release_agent", "/sys/fs/cgroup/memory/release_agent", "/x\n");
  write_to("cgroup-release_agent-systemd", "/sys/fs/cgroup/systemd/release_agent", "/x\n");
  result("cgroup-mkdir", mkdir("/sys/fs/cgroup/benchrun-redteam", 0755));
  mkdir("/tmp/cg", 0755);
  result("cgroup-mount-v1", mount("cgroup", "/tmp/cg", "cgroup", 0, "memory"));
  result("cgroup-mount-v2", mount("cgroup2", "/tmp/cg", "cgroup2", 0, NULL));
  return 0;
}
""",
    "module": r"""
int main(void) {
  result("init_module", syscall(SYS_init_module, "\x7f" "ELF", 4, ""));
  int fd = open("/bin/busybox", O_RDONLY);
  result("finit_module", syscall(SYS_finit_module, fd, "", 0));
  result("delete_module", syscall(SYS_delete_module, "benchrun_redteam_none", 0));
  return 0;
}
""",
    # --- reboot/kexec: CAD_OFF is the harmless reboot command (it only flips ctrl-alt-del).
    "reboot": r"""
int main(void) {
  result("reboot-cad-off", syscall(SYS_reboot, 0xfee1dead, 672274793, 0 /* CAD_OFF */, NULL));
  result("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0));
  result("kexec_file_load", syscall(SYS_kexec_file_load, -1, -1, 0, "", 0));
  return 0;
}
""",
    "setns": r"""
int main(void) {
  const char *ns[] = {"mnt", "pid", "net", "ipc", "uts", "user", "cgroup", "time"};
  for (unsigned i = 0; i < sizeof ns / sizeof ns[0]; i++) {
    char path[64], name[64];
    snprintf(path, sizeof path, "/proc/1/ns/%s", ns[i]);
    snprintf(name, sizeof name, "setns-%s", ns[i]);
    int fd = open(path, O_RDONLY);
    if (fd < 0) { result(name, -1); continue; }
    result(name, setns(fd, 0));
  }
  return 0;
}
""",
    # --- chroot escape: chroot into a subdirectory keeping a cwd outside it, climb, chroot there.
    "chroot": r"""
int main(int argc, char **argv) {
  const char *marker = argc > 1 ? argv[1] : "/nonexistent";
  mkdir("/tmp/jail", 0755);
  int rc = chroot("/tmp/jail");
  if (rc < 0) { result("chroot", -1); }
  for (int i = 0; i < 64; i++) if (chdir("..") < 0) break;
  chroot(".");
  struct stat st;
  if (stat(marker, &st) == 0) escaped("chroot-escape", "host marker visible");
  else result("chroot-escape", -1);
  return 0;
}
""",
    "perf": r"""
#include <linux/perf_event.h>
int main(void) {
  struct perf_event_attr a;
  memset(&a, 0, sizeof a);
  a.size = sizeof a;
  a.type = PERF_TYPE_SOFTWARE;
  a.config = PERF_COUNT_SW_CPU_CLOCK;
  result("perf-system-wide", syscall(SYS_perf_event_open, &a, -1, 0, -1, 0));
  a.type = PERF_TYPE_HARDWARE;
  a.config = PERF_COUNT_HW_CPU_CYCLES;
  result("perf-hw-system-wide", syscall(SYS_perf_event_open, &a, -1, 0, -1, 0));
  return 0;
}
""",
    # --- output collection: plant hostile paths where the run's outputs will be collected.
    "plant": r"""
int main(int argc, char **argv) {
  const char *host_file = argc > 1 ? argv[1] : "/etc/shadow";
  mkdir("/out", 0755);
  symlink(host_file, "/out/symlink-host");
  symlink("/proc/self/root/../../../../", "/out/symlink-proc-root");
  mkdir("/out/dir", 0755);
  symlink("../../../../../../etc", "/out/dirlink");
  mkfifo("/out/fifo", 0644);
  link("/etc/passwd", "/out/hardlink");
  printf("planted\n");
  return 0;
}
""",
}

# Every probe program, for the VM's batched run: (program, extra argv) in order.
PROBES = [
    "mount",
    "unshare",
    "ptrace",
    "keyctl",
    "bpf",
    "userfaultfd",
    "shocker",
    "mknod",
    "rawsock",
    "sysctl",
    "cgroup",
    "module",
    "reboot",
    "setns",
    "chroot",
    "perf",
]

# $1: the host marker file (chroot), $2: a host pid (ptrace), $3: a key description (keyctl).
ARGS = {"chroot": '"$1"', "ptrace": '"$2"', "keyctl": '"$3"'}
ALL_SCRIPT = "".join(f"/attack/{p} {ARGS.get(p, '')}\n" for p in PROBES)


@pytest.fixture(scope="module")
def image(attacker_image):
    programs = {name: COMMON + src for name, src in PROGRAMS.items()}
    return attacker_image(programs)


@pytest.fixture(scope="module")
def marker(tmp_path_factory) -> Path:
    """A host file whose content must never come back from a run."""
    p = tmp_path_factory.mktemp("host") / f"marker-{uuid.uuid4().hex}"
    p.write_text("HOST SECRET " + uuid.uuid4().hex)
    return p


def results(stdout: bytes) -> dict[str, str]:
    out = {}
    for m in re.finditer(rb"^RESULT (\S+) (BLOCKED|ESCAPED)(?: (.*))?$", stdout, re.M):
        out[m.group(1).decode()] = (m.group(2) + b" " + (m.group(3) or b"")).decode().strip()
    return out


def assert_blocked(found: dict[str, str], expected: list[str]) -> None:
    missing = [e for e in expected if e not in found]
    assert not missing, f"attempts that did not report: {missing} (got {found})"
    escaped = {k: v for k, v in found.items() if not v.startswith("BLOCKED")}
    assert not escaped, f"escaped: {escaped}"


EXPECT = {
    "mount": [
        "mount-tmpfs",
        "mount-bind-root",
        "mount-proc",
        "remount-root-rw",
        "umount-proc",
        "fsopen",
        "open_tree",
    ],
    "unshare": [
        "unshare-mnt",
        "unshare-uts",
        "unshare-ipc",
        "unshare-net",
        "unshare-pid",
        "unshare-user",
        "unshare-cgroup",
        "unshare-time",
    ],
    "ptrace": [
        "ptrace-attach-host",
        "ptrace-seize-host",
        "process_vm_readv-host",
        "kill-host",
        "proc-mem-host",
        "traceme-init_module",
    ],
    "keyctl": ["add_key-user", "add_key-session", "keyctl-join-session", "keyctl-read-user"],
    "bpf": ["bpf-map-create", "bpf-prog-load"],
    "userfaultfd": ["userfaultfd", "dev-userfaultfd"],
    "shocker": ["open_by_handle_at-inode2"],
    "mknod": ["mknod-block-sda", "mknod-block-vda", "mknod-char-mem", "mknod-char-kmsg"],
    "rawsock": ["socket-inet-raw", "socket-inet6-raw", "socket-packet"],
    "sysctl": [
        "proc-sys-hostname",
        "proc-sys-core_pattern",
        "proc-sys-modprobe",
        "proc-sys-ip_forward",
        "proc-sys-drop_caches",
        "proc-sysrq-trigger",
        "sys-kernel-uevent_helper",
        "sys-power-state",
    ],
    "cgroup": [
        "cgroup-procs-root",
        "cgroup-procs-unified",
        "cgroup-procs-memory",
        "cgroup-release_agent",
        "cgroup-release_agent-systemd",
        "cgroup-mkdir",
        "cgroup-mount-v1",
        "cgroup-mount-v2",
    ],
    "module": ["init_module", "finit_module", "delete_module"],
    "reboot": ["reboot-cad-off", "kexec_load", "kexec_file_load"],
    "setns": [
        "setns-mnt",
        "setns-pid",
        "setns-net",
        "setns-ipc",
        "setns-uts",
        "setns-user",
        "setns-cgroup",
        "setns-time",
    ],
    "chroot": ["chroot-escape"],
    "perf": ["perf-system-wide", "perf-hw-system-wide"],
}


def host_keys() -> str:
    return Path("/proc/keys").read_text()


HOST_FILES = [
    "/proc/sys/kernel/hostname",
    "/proc/sys/kernel/core_pattern",
    "/proc/sys/kernel/modprobe",
    "/proc/sys/net/ipv4/ip_forward",
    "/proc/sys/vm/overcommit_memory",
]


def host_state() -> dict[str, str]:
    state = {p: Path(p).read_text() for p in HOST_FILES if Path(p).exists()}
    for p in Path("/sys/fs/cgroup").glob("*/release_agent"):
        state[str(p)] = p.read_text()
    state["cgroup-dirs"] = " ".join(sorted(os.listdir("/sys/fs/cgroup")))
    return state


@pytest.mark.parametrize("program", PROBES)
def test_attempt_is_contained_in_the_sandbox(image, attack, marker, program):
    key = f"benchrun-redteam-{uuid.uuid4().hex[:8]}"
    before = host_state()
    argv = [f"/attack/{program}"]
    if program == "keyctl":
        argv.append(key)
    if program == "chroot":
        argv.append(str(marker))
    if program == "ptrace":
        argv.append(str(os.getpid()))
    r = attack(image, argv)
    assert r.exit_code == 0, r.stderr
    assert_blocked(results(r.stdout), EXPECT[program])
    # Nothing reached the host.
    assert key not in host_keys()
    assert host_state() == before


@pytest.mark.slow
def test_all_attempts_are_contained_in_the_vm(image, attack, marker, tmp_path):
    """One VM run executes every probe (a VM start costs seconds under TCG) and the same
    assertions apply to its output; the host checks hold as for the sandbox."""
    key = f"benchrun-redteam-{uuid.uuid4().hex[:8]}"
    before = host_state()
    r = attack(
        image,
        ["/bin/sh", "-c", ALL_SCRIPT, "all", str(marker), str(os.getpid()), key],
        backend="vm",
    )
    assert r.exit_code == 0, r.stderr
    found = results(r.stdout)
    assert_blocked(found, [e for p in PROBES for e in EXPECT[p]])
    assert key not in host_keys()
    assert host_state() == before


OUTPUTS = [
    "/out/symlink-host",
    "/out/symlink-proc-root",
    "/out/dirlink/passwd",
    "/out/fifo",
    "/out/hardlink",
]
KERNEL_OUTPUTS = [
    "/dev/zero",
    "/dev/kmsg",
    "/proc/self/environ",
    "/proc/1/mem",
    "/proc/self/root/etc/hostname",
    "/sys/kernel/notes",
]


@pytest.mark.parametrize("backend", BACKENDS)
def test_output_collection_never_reads_the_host(image, attack, marker, backend):
    """The run's outputs point at symlinks to a host file, a FIFO, device nodes, /proc paths and
    a hard link: collection must neither return host bytes nor hang (the run's timeout bounds it).
    """
    r = attack(image, ["/attack/plant", str(marker)], backend=backend, outputs=OUTPUTS, timeout=60)
    assert r.exit_code == 0, r.stderr
    secret = marker.read_bytes()
    for path, data in r.outputs.items():
        raw = data if isinstance(data, bytes) else str(data).encode()
        assert secret not in raw, f"{path} returned the host file"
    # A symlink leaving the root resolves inside it (to nothing here), so these are never outputs.
    for path in ("/out/symlink-host", "/out/symlink-proc-root", "/out/fifo"):
        assert path not in r.outputs, f"{path} was collected"
    assert set(r.outputs) | set(r.missing_outputs) == set(OUTPUTS)


@pytest.mark.parametrize("path", KERNEL_OUTPUTS)
def test_outputs_in_kernel_filesystems_are_refused(image, attack, path):
    """Device nodes and /proc, /sys paths as outputs (an infinite /dev/zero, another process's
    memory, a /proc/self/root walk) are refused before the run starts."""
    with pytest.raises(benchrun.ConfigError):
        attack(image, ["/bin/true"], outputs=[path])
