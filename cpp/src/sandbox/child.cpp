// child.cpp: the sandboxed child's ordered steps, from clone to exec; the microVM's init runs the
// same steps for its workload (RootKind::kPrepared).
//
// Design note. The parent clones with clone3 and no CLONE_VM, so this runs like the child of
// fork(2) but without glibc's fork handlers: in a multithreaded parent (Python, worker threads)
// only the calling thread exists here, yet glibc still believes the others do and any lock they
// held stays locked. So this file keeps to async-signal-safe calls (signal-safety(7)), allocates
// nothing, and calls the kernel directly where glibc would act process-wide: setgroups/setresgid/
// setresuid go through syscall(2), because glibc's wrappers broadcast to every thread it knows of
// (the "setxid" protocol) while the kernel's credentials are per-thread and this process has one.
// Each step returns an errno; the first failure is written to the CLOEXEC status pipe as
// {stage, errno, detail} and the child _exits(127). A successful execve closes the pipe (EOF).
//
// Order matters and follows what each step needs: mounts need CAP_SYS_ADMIN and the host's paths
// (the overlay's source dirs, /dev nodes to bind), so they come before pivot_root; the parent may
// still move us into a v1 cgroup, so we wait for "go" before anything that the workload's limits
// would affect; the bounding set is emptied while CAP_SETPCAP is still held (before setresuid);
// no_new_privs precedes the seccomp filter (required without CAP_SYS_ADMIN), and the filter is the
// last thing before execve because it denies mount and friends.
//
// In the microVM (RootKind::kPrepared) the parent is init, the only other process: the child is
// cloned straight into the workload's cgroup, so there is no root fd to send and no "go" to wait
// for (sock_fd -1), and the VM's network namespace, which has only lo, is shared.
#include "sandbox/child.hpp"

#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>
#include <cstring>
#include <iterator>

#include "sandbox/caps.hpp"
#include "sandbox/mounts.hpp"

namespace benchrun::sandbox {

namespace {

constexpr const char* kStageNames[] = {
    "setsid",
    "stdio",
    "close fds",
    "make / private",
    "attach upper filesystem",
    "mount overlay",
    "enter root",
    "send root fd",
    "mount /proc",
    "mount /dev",
    "create /dev nodes",
    "mount /dev/pts",
    "mount /dev/shm",
    "create /dev links",
    "mount /tmp",
    "mount /sys",
    "mask paths",
    "read-only paths",
    "pivot_root",
    "switch root",
    "create workdir",
    "sethostname",
    "loopback up",
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
    "idmapped lower",
    "mount instruction-count tools",
    "bind the init (--init) at /.benchrun-pid1",
    "mount secrets",
};
static_assert(std::size(kStageNames) == static_cast<size_t>(Stage::kCount));

int err_of(long rc) noexcept { return rc < 0 ? errno : 0; }

[[noreturn]] void fail(const ChildPlan& p, Stage stage, int err, int detail = -1) noexcept {
  StatusRecord rec{static_cast<int32_t>(stage), err, detail};
  ssize_t n;
  do n = ::write(p.status_fd, &rec, sizeof rec);
  while (n < 0 && errno == EINTR);
  ::_exit(127);
}

void check(const ChildPlan& p, Stage stage, int err, int detail = -1) noexcept {
  if (err != 0) fail(p, stage, err, detail);
}

// Handlers installed by the parent (Python's among them) must not run here, and ignored signals
// (Python ignores SIGPIPE) must not leak into the workload: everything back to SIG_DFL. Errors are
// expected for SIGKILL/SIGSTOP and glibc's internal signals.
void reset_signal_dispositions() noexcept {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    ::sigaction(sig, &sa, nullptr);
  }
}

int unblock_signals() noexcept {
  sigset_t none;
  sigemptyset(&none);
  return err_of(::sigprocmask(SIG_SETMASK, &none, nullptr));
}

// stdin = /dev/null, stdout/stderr = the given fds. Everything is first copied above 2 so that a
// source that is itself 0, 1 or 2 is not overwritten before it is used.
int setup_stdio(const ChildPlan& p) noexcept {
  int src[3] = {p.devnull_fd, p.stdout_fd >= 0 ? p.stdout_fd : p.devnull_fd,
                p.stderr_fd >= 0 ? p.stderr_fd : p.devnull_fd};
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

// Closes every fd above 2 but our two channels. Closing (rather than O_CLOEXEC, which would wait
// for our exec) matters in a multithreaded parent: a sibling spawn's channel ends that we inherited
// would otherwise keep its EOFs from arriving until we are released. close_range(2) needs Linux
// 5.9; older kernels get a loop.
int close_range_compat(unsigned first, unsigned last) noexcept {
  if (first > last) return 0;
  if (::syscall(SYS_close_range, first, last, 0u) == 0) return 0;
  if (errno != ENOSYS) return errno;
  struct rlimit rl;
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return errno;
  rlim_t limit = rl.rlim_cur < (1u << 20) ? rl.rlim_cur : (1u << 20);
  for (rlim_t fd = first; fd <= last && fd < limit; ++fd) ::close(static_cast<int>(fd));
  return 0;
}

int close_inherited_fds(const ChildPlan& p) noexcept {
  // Kept: the channels and the upper filesystem's mount (all > 2), in ascending order.
  unsigned keep[3];
  size_t n = 0;
  for (int fd : {p.sock_fd, p.status_fd, p.upper_mount_fd}) {
    if (fd < 0) continue;
    size_t i = n++;
    for (; i > 0 && keep[i - 1] > static_cast<unsigned>(fd); --i) keep[i] = keep[i - 1];
    keep[i] = static_cast<unsigned>(fd);
  }
  unsigned next = 3;
  for (size_t i = 0; i < n; ++i) {
    if (keep[i] < next) continue;  // the same fd twice
    if (int err = close_range_compat(next, keep[i] - 1)) return err;
    next = keep[i] + 1;
  }
  return close_range_compat(next, ~0u);
}

// Enters the directory the overlay's layers are named relative to, and attaches the upper
// filesystem there (in our own, private mount namespace).
int enter_layers(const ChildPlan& p) noexcept {
  if (p.layer_dir == nullptr) return 0;
  if (!p.id_mapped && ::chdir(p.layer_dir) != 0) return errno;  // id-mapped: entered already
  if (p.upper_mount_fd < 0) return 0;
  int err =
      err_of(::move_mount(p.upper_mount_fd, "", AT_FDCWD, p.upper_mount, MOVE_MOUNT_F_EMPTY_PATH));
  ::close(p.upper_mount_fd);
  return err;
}

// Sends an O_PATH fd of the new root (the cwd) to the parent: it keeps the overlay readable after
// our mount namespace is gone.
int send_root_fd(const ChildPlan& p) noexcept {
  int root = ::open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root < 0) return errno;
  char byte = 'r';
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  std::memset(control, 0, sizeof control);
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(cmsg), &root, sizeof(int));
  ssize_t n;
  do n = ::sendmsg(p.sock_fd, &msg, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  int err = n < 0 ? errno : 0;
  ::close(root);
  return err;
}

// Blocks until the parent's release(). EOF means the parent (or its SandboxedChild) is gone:
// there is nobody to report to and nothing to run.
void wait_for_go(const ChildPlan& p) noexcept {
  char byte;
  ssize_t n;
  do n = ::recv(p.sock_fd, &byte, 1, 0);
  while (n < 0 && errno == EINTR);
  if (n != 1) ::_exit(127);
}

// In a new user namespace we are nobody until the parent has written our uid/gid maps: wait for its
// byte before the first step that depends on credentials (all of them). EOF: the parent is gone.
// With a mapped range the byte carries the idmapped lower tree (SCM_RIGHTS): returned, else -1.
int wait_for_maps(const ChildPlan& p) noexcept {
  if (!p.user_namespace) return -1;
  char byte;
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  std::memset(control, 0, sizeof control);
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do n = ::recvmsg(p.sock_fd, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n != 1) ::_exit(127);
  int fd = -1;
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  if (c != nullptr && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
      c->cmsg_len == CMSG_LEN(sizeof(int)))
    std::memcpy(&fd, CMSG_DATA(c), sizeof fd);
  return fd;
}

// The idmapped lower tree attached at "at" in the layer directory (our cwd from here to the
// overlay mount). Mounts are made private first, so the attach does not propagate to the host.
int attach_idmapped_lower(int tree, const char* at) noexcept {
  if (tree < 0) return EBADMSG;
  if (int err = make_mounts_private()) return err;
  if (::syscall(SYS_move_mount, tree, "", AT_FDCWD, at, MOVE_MOUNT_F_EMPTY_PATH) != 0)
    return errno;
  ::close(tree);
  return 0;
}

int install_seccomp(const sock_fprog* prog) noexcept {
  if (prog == nullptr) return 0;
  return err_of(::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, prog, 0, 0));
}

// execvpe over precomputed candidates, with glibc's error rules: EACCES is remembered and the
// search goes on, "not found here" errors go on, anything else stops the search.
[[noreturn]] void exec_workload(const ChildPlan& p) noexcept {
  int err = ENOENT, detail = -1;
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
    fail(p, Stage::kExec, e, static_cast<int>(i));
  }
  if (saw_eacces) err = EACCES;
  fail(p, Stage::kExec, err, detail);
}

}  // namespace

int bring_loopback_up() noexcept {
  int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return errno;
  ifreq ifr;
  std::memset(&ifr, 0, sizeof ifr);
  std::memcpy(ifr.ifr_name, "lo", 3);
  int err = err_of(::ioctl(s, SIOCGIFFLAGS, &ifr));
  if (err == 0) {
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
    err = err_of(::ioctl(s, SIOCSIFFLAGS, &ifr));
  }
  ::close(s);
  return err;
}

const char* stage_name(int32_t stage) noexcept {
  if (stage < 0 || stage >= static_cast<int32_t>(Stage::kCount)) return "unknown";
  return kStageNames[stage];
}

void child_main(const ChildPlan& p) noexcept {
  // Not ours: the parent's ends of the channels (EOF detection depends on closing them).
  if (p.parent_sock_fd >= 0) ::close(p.parent_sock_fd);
  if (p.parent_status_fd >= 0) ::close(p.parent_status_fd);
  const int lower_tree = wait_for_maps(p);
  if (p.id_mapped) {
    // Still host uid 0 (unmapped here, but the owner of the store's directories): the path works.
    // A path, not an fd from the parent: that would name the parent's mount namespace's mounts.
    check(p, Stage::kIdmapLower, err_of(::chdir(p.layer_dir)));
    check(p, Stage::kSetresgid, err_of(::syscall(SYS_setresgid, 0, 0, 0)));
    check(p, Stage::kSetresuid, err_of(::syscall(SYS_setresuid, 0, 0, 0)));
    check(p, Stage::kIdmapLower, attach_idmapped_lower(lower_tree, p.lower_attach));
  }
  reset_signal_dispositions();  // signals stay blocked (the parent blocked them) until exec
  ::umask(0);                   // modes below are exact; the workload gets 022 (Docker's)

  check(p, Stage::kSetsid, err_of(::setsid()));  // no controlling terminal (TIOCSTI)
  check(p, Stage::kStdio, setup_stdio(p));
  check(p, Stage::kCloseFds, close_inherited_fds(p));  // the fds kept are > 2

  // The root filesystem, while the host's paths are still reachable.
  check(p, Stage::kMountPrivate, make_mounts_private());
  const bool overlay = p.root_kind == RootKind::kOverlay;
  if (overlay) {
    check(p, Stage::kLayers, enter_layers(p));
    check(p, Stage::kMountOverlay, mount_overlay_and_enter(p.root, p.overlay_options));
  } else {
    check(p, Stage::kEnterRoot, err_of(::chdir(p.root)));
  }
  if (p.sock_fd >= 0) check(p, Stage::kSendRoot, send_root_fd(p));
  check(p, Stage::kMountProc, mount_proc());
  check(p, Stage::kMountDev, mount_dev_tmpfs());
  int index = -1;
  check(p, Stage::kDevNodes, create_dev_nodes(&index), index);
  check(p, Stage::kMountDevPts, mount_devpts(/*tty_gid=*/!p.user_namespace || p.id_mapped));
  check(p, Stage::kMountDevShm, mount_dev_shm(p.tmpfs_options));
  check(p, Stage::kDevLinks, create_dev_links(&index), index);
  if (overlay) check(p, Stage::kMountTmp, mount_tmp(p.tmpfs_options));
  check(p, Stage::kMountSys, mount_sys());
  check(p, Stage::kMaskPaths, mask_paths(&index), index);
  check(p, Stage::kReadonlyPaths, make_readonly_paths(&index), index);
  if (p.tool_dir != nullptr)
    check(p, Stage::kToolMounts,
          mount_tools(p.tool_dir, p.tool_launcher, p.tool_out_options, &index), index);
  if (p.pid1 != nullptr) check(p, Stage::kPid1Mount, mount_pid1(p.pid1));
  if (p.secret_count > 0)
    check(p, Stage::kSecrets,
          mount_secrets(p.secrets, p.secret_count, p.secret_options, p.uid, p.gid, &index), index);
  if (overlay)
    check(p, Stage::kPivotRoot, pivot_to_cwd());
  else
    check(p, Stage::kSwitchRoot, move_cwd_to_root());
  check(p, Stage::kWorkdir, make_dirs(p.cwd));  // as root, like Docker's WORKDIR

  check(p, Stage::kHostname, err_of(::sethostname(p.hostname, p.hostname_len)));
  if (p.loopback_up) check(p, Stage::kLoopback, bring_loopback_up());

  if (p.sock_fd >= 0) wait_for_go(p);

  for (size_t i = 0; i < p.rlimit_count; ++i) {
    rlimit rl{p.rlimits[i].soft, p.rlimits[i].hard};
    check(p, Stage::kRlimits,
          err_of(::setrlimit(static_cast<__rlimit_resource_t>(p.rlimits[i].resource), &rl)),
          static_cast<int>(i));
  }
  check(p, Stage::kCapBounding, drop_bounding_set(p.cap_last));
  if (!p.user_namespace ||
      p.id_mapped)  // denied there (setgroups "deny"); the caller's groups stay, unmapped
    check(p, Stage::kSetgroups, err_of(::syscall(SYS_setgroups, p.group_count, p.groups)));
  check(p, Stage::kSetresgid, err_of(::syscall(SYS_setresgid, p.gid, p.gid, p.gid)));
  check(p, Stage::kSetresuid, err_of(::syscall(SYS_setresuid, p.uid, p.uid, p.uid)));
  check(p, Stage::kCaps, clear_capabilities());
  ::umask(022);
  check(p, Stage::kNoNewPrivs, err_of(::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)));
  check(p, Stage::kChdir, err_of(::chdir(p.cwd)));  // as the workload's user
  unblock_signals();
  check(p, Stage::kSeccomp, install_seccomp(p.seccomp));
  exec_workload(p);
}

}  // namespace benchrun::sandbox
