// workload_child.cpp: the workload's child, from clone3 to execve, mirroring the sandbox's child
// (cpp/src/sandbox/child.cpp): same order, same credentials, capabilities and seccomp handling.
//
// Design note. init clones this child into new mount, pid, ipc and cgroup namespaces (and, when
// the guest has a cgroup, straight into the workload's cgroup). Like the sandbox's workload it is
// PID 1 of its own pid namespace: it cannot see or signal init, its /proc lists only its own
// processes, and when it exits the kernel kills whatever it left behind. The calls here are
// async-signal-safe raw syscalls; each step returns an errno, and the first failure goes to the
// CLOEXEC status pipe as {stage, errno, detail} before _exit(127). A successful execve closes the
// pipe: EOF.
//
// The root switch is switch_root's (util-linux): move the image's mount onto "/" of this mount
// namespace, then chroot("."). pivot_root(2) cannot be used: the old root would be the initramfs
// (rootfs), which can never be unmounted (EINVAL). chroot is enough here because nothing the
// workload keeps can walk back out: it ends with no capabilities at all (bounding set empty, so
// no CAP_SYS_CHROOT for the chroot-in-a-subdirectory escape and no CAP_SYS_ADMIN to mount),
// no_new_privs (no setuid or file-capability binary gives them back), a seccomp filter denying
// mount, umount2, pivot_root, unshare, setns, open_by_handle_at and the new mount API, no open fd
// other than its stdio pipes and /dev/null, and a procfs of its own pid namespace (no
// /proc/<init>/root or /proc/<init>/fd magic links to follow). The initramfs beneath holds init and
// kernel modules only. Mount points were prepared by init; /proc is mounted here because a procfs
// belongs to the pid namespace of whoever mounts it.
#include "init/workload_child.hpp"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <iterator>

#include "sandbox/caps.hpp"

namespace benchrun::guest {

namespace {

constexpr const char* kStageNames[] = {
    "setsid",
    "stdio",
    "close fds",
    "make / private",
    "switch root",
    "mount /proc",
    "mask paths",
    "read-only paths",
    "create workdir",
    "setrlimit",
    "drop bounding set",
    "setgroups",
    "setresgid",
    "setresuid",
    "drop capabilities",
    "no_new_privs",
    "chdir",
    "seccomp",
    "exec",
};
static_assert(std::size(kStageNames) == static_cast<size_t>(ChildStage::kCount));

// The sandbox's lists (runc's defaults plus Docker's powercap mask). Missing ones are skipped.
constexpr const char* kMaskedPaths[] = {
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
};
constexpr const char* kReadonlyPaths[] = {
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};

int err_of(long rc) noexcept { return rc < 0 ? errno : 0; }

[[noreturn]] void fail(const ChildPlan& p, ChildStage stage, int err, int detail = -1) noexcept {
  ChildStatus rec{static_cast<int32_t>(stage), err, detail};
  ssize_t n;
  do n = ::write(p.status_fd, &rec, sizeof rec);
  while (n < 0 && errno == EINTR);
  ::_exit(127);
}

void check(const ChildPlan& p, ChildStage stage, int err, int detail = -1) noexcept {
  if (err != 0) fail(p, stage, err, detail);
}

// init ignores SIGPIPE and blocks SIGCHLD/SIGTERM/SIGINT; none of that may reach the workload
// (ignored dispositions survive execve). Errors are expected for SIGKILL/SIGSTOP and glibc's own.
void reset_signals() noexcept {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    ::sigaction(sig, &sa, nullptr);
  }
}

// stdin = /dev/null, stdout/stderr = the pipes, each first copied above 2 so that a source sitting
// on 0, 1 or 2 is not overwritten before it is used.
int setup_stdio(const ChildPlan& p) noexcept {
  int src[3] = {p.devnull_fd, p.stdout_fd, p.stderr_fd};
  int high[3];
  for (int i = 0; i < 3; ++i) {
    high[i] = ::fcntl(src[i], F_DUPFD_CLOEXEC, 3);
    if (high[i] < 0) return errno;
  }
  for (int i = 0; i < 3; ++i) {
    if (::dup2(high[i], i) < 0) return errno;
    ::close(high[i]);
  }
  return 0;
}

int close_range_compat(unsigned first, unsigned last) noexcept {
  if (first > last) return 0;
  if (::syscall(SYS_close_range, first, last, 0u) == 0) return 0;
  return errno;
}

// Everything above 2 but the status pipe: the host channel, the cgroup dir, the pipes' read ends.
int close_inherited_fds(const ChildPlan& p) noexcept {
  const unsigned status = static_cast<unsigned>(p.status_fd);
  if (int err = close_range_compat(3, status - 1)) return err;
  return close_range_compat(status + 1, ~0u);
}

// switch_root: the image's mount becomes this namespace's "/", then our root.
int switch_root(const char* root) noexcept {
  if (::chdir(root) != 0) return errno;
  if (::mount(".", "/", nullptr, MS_MOVE, nullptr) != 0) return errno;
  if (::chroot(".") != 0) return errno;
  return err_of(::chdir("/"));
}

int mount_proc() noexcept {
  return err_of(::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr));
}

int mask_paths(int* failed) noexcept {
  for (int i = 0; i < static_cast<int>(std::size(kMaskedPaths)); ++i) {
    int err = err_of(::mount("/dev/null", kMaskedPaths[i], nullptr, MS_BIND, nullptr));
    if (err == ENOTDIR)  // a directory: cover it with an empty read-only tmpfs
      err = err_of(::mount("tmpfs", kMaskedPaths[i], "tmpfs",
                           MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0555"));
    if (err != 0 && err != ENOENT) {
      *failed = i;
      return err;
    }
  }
  return 0;
}

int make_readonly_paths(int* failed) noexcept {
  for (int i = 0; i < static_cast<int>(std::size(kReadonlyPaths)); ++i) {
    const char* path = kReadonlyPaths[i];
    int err = err_of(::mount(path, path, nullptr, MS_BIND | MS_REC, nullptr));
    if (err == ENOENT) continue;
    if (err == 0)
      err = err_of(::mount(nullptr, path, nullptr,
                           MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                           nullptr));
    if (err != 0) {
      *failed = i;
      return err;
    }
  }
  return 0;
}

// mkdir -p (0755) of an absolute path, as root inside the new root, as Docker creates WORKDIR.
int make_dirs(const char* path) noexcept {
  char buf[PATH_MAX];
  size_t len = std::strlen(path);
  if (len >= sizeof buf) return ENAMETOOLONG;
  std::memcpy(buf, path, len + 1);
  for (size_t i = 1; i <= len; ++i) {
    if (buf[i] != '/' && buf[i] != '\0') continue;
    if (buf[i - 1] == '/') continue;
    char saved = buf[i];
    buf[i] = '\0';
    if (::mkdir(buf, 0755) != 0 && errno != EEXIST) return errno;
    buf[i] = saved;
  }
  return 0;
}

int install_seccomp(const sock_fprog* prog) noexcept {
  if (prog == nullptr) return 0;
  return err_of(::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, prog, 0, 0));
}

// execvpe over the precomputed candidates, with glibc's rules: EACCES is remembered and the search
// goes on, "not here" errors go on, anything else ends it.
[[noreturn]] void exec_workload(const ChildPlan& p) noexcept {
  int detail = -1;
  bool saw_eacces = false;
  for (size_t i = 0; i < p.exec_path_count; ++i) {
    ::execve(p.exec_paths[i], p.argv, p.envp);
    int e = errno;
    if (e == EACCES) {
      if (!saw_eacces) detail = static_cast<int>(i);
      saw_eacces = true;
      continue;
    }
    if (e == ENOENT || e == ENOTDIR || e == ESTALE || e == ENODEV || e == ETIMEDOUT) {
      if (!saw_eacces) detail = static_cast<int>(i);
      continue;
    }
    fail(p, ChildStage::kExec, e, static_cast<int>(i));
  }
  fail(p, ChildStage::kExec, saw_eacces ? EACCES : ENOENT, detail);
}

}  // namespace

const char* child_stage_name(int32_t stage) noexcept {
  if (stage < 0 || stage >= static_cast<int32_t>(ChildStage::kCount)) return "unknown";
  return kStageNames[stage];
}

const char* child_masked_path(int index) noexcept {
  return index >= 0 && index < static_cast<int>(std::size(kMaskedPaths)) ? kMaskedPaths[index]
                                                                         : nullptr;
}

const char* child_readonly_path(int index) noexcept {
  return index >= 0 && index < static_cast<int>(std::size(kReadonlyPaths)) ? kReadonlyPaths[index]
                                                                           : nullptr;
}

void child_main(const ChildPlan& p) noexcept {
  reset_signals();  // still blocked (inherited mask) until just before the filter
  check(p, ChildStage::kSetsid, err_of(::setsid()));  // no controlling terminal
  check(p, ChildStage::kStdio, setup_stdio(p));
  check(p, ChildStage::kCloseFds, close_inherited_fds(p));

  // Mounts, while we still hold CAP_SYS_ADMIN; private first so nothing propagates to init's view.
  check(p, ChildStage::kMountPrivate,
        err_of(::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr)));
  check(p, ChildStage::kSwitchRoot, switch_root(p.root));
  check(p, ChildStage::kMountProc, mount_proc());
  int index = -1;
  check(p, ChildStage::kMaskPaths, mask_paths(&index), index);
  check(p, ChildStage::kReadonlyPaths, make_readonly_paths(&index), index);
  check(p, ChildStage::kWorkdir, make_dirs(p.cwd));

  // Limits and credentials; the bounding set goes while CAP_SETPCAP is still held.
  for (size_t i = 0; i < p.rlimit_count; ++i) {
    rlimit rl{p.rlimits[i].soft, p.rlimits[i].hard};
    check(p, ChildStage::kRlimits,
          err_of(::setrlimit(static_cast<__rlimit_resource_t>(p.rlimits[i].resource), &rl)),
          static_cast<int>(i));
  }
  check(p, ChildStage::kCapBounding, sandbox::drop_bounding_set(p.cap_last));
  // Raw syscalls: glibc's wrappers would run their all-threads setxid protocol after a clone it
  // did not see (credentials are per thread in the kernel, and we have one).
  check(p, ChildStage::kSetgroups, err_of(::syscall(SYS_setgroups, p.group_count, p.groups)));
  check(p, ChildStage::kSetresgid, err_of(::syscall(SYS_setresgid, p.gid, p.gid, p.gid)));
  check(p, ChildStage::kSetresuid, err_of(::syscall(SYS_setresuid, p.uid, p.uid, p.uid)));
  check(p, ChildStage::kCaps, sandbox::clear_capabilities());
  ::umask(022);
  check(p, ChildStage::kNoNewPrivs, err_of(::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)));
  check(p, ChildStage::kChdir, err_of(::chdir(p.cwd)));  // as the workload's user

  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  // Last before execve: the filter denies mount and friends.
  check(p, ChildStage::kSeccomp, install_seccomp(p.seccomp));
  exec_workload(p);
}

}  // namespace benchrun::guest
