// spawn.cpp: the parent's side of a sandboxed child: channels, clone3, release, wait, cleanup.
//
// Design note. clone3(2) without a stack behaves like fork(2): the child continues on a copy of
// this stack, here in new mount, pid, ipc, uts, cgroup (and network) namespaces and, with
// CLONE_INTO_CGROUP (Linux >= 5.7), already inside the run's v2 cgroup, so no process of the run
// ever exists outside it. CLONE_PIDFD gives a pidfd: pidfd_send_signal(2) and waitid(P_PIDFD) act
// on exactly this child even if its pid is reused. Every signal is blocked across clone3 so that
// none of this process's handlers (Python's) runs in the child before it resets them. Setup errors
// come back as {stage, errno, detail} over an O_CLOEXEC pipe whose EOF means execve succeeded (the
// self-pipe technique of posix_spawn implementations). The root fd comes back over a
// SOCK_SEQPACKET socketpair with SCM_RIGHTS, and the same socket carries the "go" byte, sent with
// MSG_NOSIGNAL: if the child already died we get EPIPE, not SIGPIPE. From clone on, the child is
// owned by a SandboxedChild, whose destructor SIGKILLs and reaps it.
//
// With a new user namespace (user_namespaces(7)) the child starts with no uid/gid mapping, so it
// first blocks on the socket until we have written /proc/<pid>/setgroups "deny" (required before an
// unprivileged gid_map), uid_map "0 <euid> 1" and gid_map "0 <egid> 1", and sent a byte: the caller
// becomes root inside, owning the child's other namespaces, and nothing else is mapped.
#include "benchrun/sandbox/spawn.hpp"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <linux/securebits.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <optional>
#include <utility>

#include "benchrun/common/error.hpp"
#include "benchrun/common/fs.hpp"
#include "sandbox/caps.hpp"
#include "sandbox/child.hpp"
#include "sandbox/child_channel.hpp"
#include "sandbox/child_plan.hpp"
#include "sandbox/child_report.hpp"

namespace benchrun::sandbox {

namespace {

int to_wait_status(const siginfo_t& si) {
  switch (si.si_code) {
    case CLD_EXITED:
      return W_EXITCODE(si.si_status & 0xff, 0);
    case CLD_KILLED:
      return si.si_status & 0x7f;
    case CLD_DUMPED:
      return (si.si_status & 0x7f) | 0x80;  // WCOREFLAG
    default:
      return W_EXITCODE(0, 0);
  }
}

// The child closed both channels without a record: killed (OOM, a signal) during setup.
SandboxError silent_exit_error(int pidfd) {
  std::string how = "it exited during setup without reporting an error";
  siginfo_t si{};
  if (::waitid(P_PIDFD, static_cast<id_t>(pidfd), &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
      si.si_pid != 0)
    how = si.si_code == CLD_EXITED ? "it exited with status " + std::to_string(si.si_status)
                                   : "it was killed by signal " + std::to_string(si.si_status);
  return SandboxError("sandbox setup failed: " + how, "setup");
}

// Writes one /proc/<pid>/{setgroups,uid_map,gid_map} file in a single write(2), as the kernel
// requires.
void write_id_file(pid_t pid, const char* file, const std::string& content) {
  const std::string path = "/proc/" + std::to_string(pid) + "/" + file;
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  int err = fd < 0 ? errno : 0;
  if (fd >= 0) {
    UniqueFd owner(fd);
    ssize_t n;
    do n = ::write(fd, content.data(), content.size());
    while (n < 0 && errno == EINTR);
    if (n < 0)
      err = errno;
    else if (static_cast<size_t>(n) != content.size())
      err = EIO;
  }
  if (err == 0) return;
  std::string msg = "write '" + path + "' = '" + content.substr(0, content.size() - 1) +
                    "': " + std::strerror(err);
  if (err == EPERM)
    msg += " (hint: an unprivileged caller can map only its own uid and gid)";
  else if (err == EACCES)
    msg +=
        " (hint: this process is not dumpable, e.g. it changed uid without an exec since: "
        "prctl(PR_SET_DUMPABLE, 1))";
  throw SandboxError(msg, "user namespace");
}

// Maps the caller to root in the child's new user namespace, then lets the child go on.
void map_caller_to_root(pid_t pid, int sock) {
  write_id_file(pid, "setgroups", "deny\n");
  write_id_file(pid, "uid_map", "0 " + std::to_string(::geteuid()) + " 1\n");
  write_id_file(pid, "gid_map", "0 " + std::to_string(::getegid()) + " 1\n");
  const char mapped = 'm';
  ssize_t n;
  do n = ::send(sock, &mapped, 1, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  // EPIPE / ECONNRESET: the child died; release() reports it.
}

// The lower tree as the run's user namespace should see it: a detached copy of lowerdir's mount
// (open_tree OPEN_TREE_CLONE) made idmapped (mount_setattr MOUNT_ATTR_IDMAP) with the child's user
// namespace, so on-disk id n appears as n inside the run and as range + n on the host. The store
// keeps the image's real ids; nothing is copied or chowned.
UniqueFd idmapped_tree(pid_t pid, const std::string& lowerdir) {
  const std::string ns_path = "/proc/" + std::to_string(pid) + "/ns/user";
  UniqueFd userns = open_file(ns_path, O_RDONLY);
  UniqueFd tree(static_cast<int>(
      ::syscall(SYS_open_tree, AT_FDCWD, lowerdir.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC)));
  if (!tree) throw_errno("open_tree", lowerdir);
  mount_attr attr{};
  attr.attr_set = MOUNT_ATTR_IDMAP;
  attr.userns_fd = static_cast<uint64_t>(userns.get());
  if (::syscall(SYS_mount_setattr, tree.get(), "", AT_EMPTY_PATH, &attr, sizeof attr) != 0) {
    int err = errno;
    throw SandboxError("mount_setattr(MOUNT_ATTR_IDMAP) '" + lowerdir + "': " + std::strerror(err) +
                           (err == EINVAL ? " (hint: the store's filesystem must support idmapped "
                                            "mounts: ext4, xfs, btrfs, tmpfs on Linux >= 6.3)"
                                          : ""),
                       "user namespace");
  }
  return tree;
}

// Maps ids 0..count-1 to the run's host range (a root caller may map any range and keep setgroups),
// then lets the child go on with the idmapped lower tree attached to the byte.
void map_range(pid_t pid, int sock, const IdRange& r, const std::string& lowerdir) {
  write_id_file(pid, "uid_map",
                "0 " + std::to_string(r.uid) + " " + std::to_string(r.count) + "\n");
  write_id_file(pid, "gid_map",
                "0 " + std::to_string(r.gid) + " " + std::to_string(r.count) + "\n");
  UniqueFd tree = idmapped_tree(pid, lowerdir);
  char mapped = 'm';
  iovec iov{&mapped, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  int fd = tree.get();
  std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  ssize_t n;
  do n = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  // EPIPE / ECONNRESET: the child died; release() reports it.
}

// A user namespace is charged to its owner, the euid of the thread that creates it: per-user
// kernel counts made inside (inotify instances and watches, epoll watches, ...) are counted again
// for the owner at every ancestor level (ucounts), so a namespace owned by root would still spend
// host root's quotas. For the clone only, this thread (credentials are per thread; the raw
// syscalls touch no other) takes the range's first uid as euid, keeping fsuid 0 (the child still
// reaches the store's paths as root until it enters the range) and its capabilities
// (SECBIT_NO_SETUID_FIXUP: CLONE_INTO_CGROUP and the new namespaces still need them). Restored,
// with the dumpable flag an euid change resets, by the destructor.
class CloneAsRangeOwner {
 public:
  explicit CloneAsRangeOwner(uid_t owner) {
    securebits_ = static_cast<int>(::prctl(PR_GET_SECUREBITS, 0, 0, 0, 0));
    dumpable_ = static_cast<int>(::prctl(PR_GET_DUMPABLE, 0, 0, 0, 0));
    if (securebits_ < 0 || dumpable_ < 0) throw_errno("prctl", "get securebits");
    if (::prctl(PR_SET_SECUREBITS, securebits_ | SECBIT_NO_SETUID_FIXUP, 0, 0, 0) != 0)
      throw_errno("prctl", "set SECBIT_NO_SETUID_FIXUP");
    if (::syscall(SYS_setresuid, -1, owner, -1) != 0) {
      int err = errno;
      restore();
      errno = err;
      throw_errno("setresuid", "user namespace owner " + std::to_string(owner));
    }
    ::syscall(SYS_setfsuid, 0);
  }
  ~CloneAsRangeOwner() { restore(); }
  CloneAsRangeOwner(const CloneAsRangeOwner&) = delete;
  CloneAsRangeOwner& operator=(const CloneAsRangeOwner&) = delete;

 private:
  void restore() noexcept {
    ::syscall(SYS_setresuid, -1, 0, -1);  // fsuid follows: 0 again
    ::prctl(PR_SET_SECUREBITS, securebits_, 0, 0, 0);
    ::prctl(PR_SET_DUMPABLE, dumpable_, 0, 0, 0);
  }
  int securebits_ = 0, dumpable_ = 1;
};

}  // namespace

SandboxedChild::SandboxedChild(SandboxedChild&& o) noexcept
    : pid_(std::exchange(o.pid_, -1)),
      pidfd_(std::move(o.pidfd_)),
      status_fd_(std::move(o.status_fd_)),
      sock_fd_(std::move(o.sock_fd_)),
      root_fd_(std::move(o.root_fd_)),
      released_at_(o.released_at_),
      reaped_(o.reaped_),
      status_(o.status_),
      rusage_(o.rusage_),
      argv0_(std::move(o.argv0_)),
      search_path_(std::move(o.search_path_)),
      exec_paths_(std::move(o.exec_paths_)) {}

SandboxedChild::~SandboxedChild() {
  if (!pidfd_ || reaped_) return;
  ::syscall(SYS_pidfd_send_signal, pidfd_.get(), SIGKILL, nullptr, 0);
  siginfo_t si{};
  while (::waitid(P_PIDFD, static_cast<id_t>(pidfd_.get()), &si, WEXITED) != 0 && errno == EINTR) {
  }
}

void SandboxedChild::release() {
  if (!sock_fd_ || !status_fd_)
    throw SandboxError("release: the sandboxed child was already released", "release");
  // EOF instead of the root fd: the child failed (or died) before sending it. Its record, if any,
  // is already in the pipe: it is written before _exit, and the socket closes at exit.
  root_fd_ = receive_fd(sock_fd_.get());
  if (root_fd_) released_at_ = send_go(sock_fd_.get());
  StatusRecord rec{};
  bool failed = read_status(status_fd_.get(), rec);  // blocks until exec (EOF) or a report
  sock_fd_.reset();
  status_fd_.reset();
  if (failed) throw failure_error(rec, argv0_, search_path_, exec_paths_);
  if (!root_fd_) throw silent_exit_error(pidfd_.get());
}

int SandboxedChild::wait() {
  if (reaped_) return status_;
  if (!pidfd_) throw SandboxError("wait: no sandboxed child to wait for", "wait");
  siginfo_t si{};
  // The raw syscall: its fifth argument returns the rusage that glibc's waitid() drops.
  while (::syscall(SYS_waitid, P_PIDFD, pidfd_.get(), &si, WEXITED, &rusage_) != 0) {
    if (errno != EINTR) throw_errno("waitid", "sandboxed child " + std::to_string(pid_));
  }
  reaped_ = true;
  status_ = to_wait_status(si);
  return status_;
}

SandboxedChild spawn_sandboxed(const SpawnSpec& spec) {
  PreparedChild prepared(spec, read_cap_last_cap());
  UniqueFd devnull = above_stdio(open_file("/dev/null", O_RDWR), "/dev/null");
  FdPair sock = make_socketpair();
  FdPair status = make_status_pipe();

  ChildPlan& plan = prepared.plan();
  plan.sock_fd = sock.child.get();
  plan.status_fd = status.child.get();
  plan.parent_sock_fd = sock.parent.get();
  plan.parent_status_fd = status.parent.get();
  plan.devnull_fd = devnull.get();
  UniqueFd upper_mount;  // a copy above stdio (the child dup2()s onto 0..2 before it attaches it)
  if (spec.upper_mount_fd >= 0) {
    int fd = ::fcntl(spec.upper_mount_fd, F_DUPFD_CLOEXEC, 3);
    if (fd < 0) throw_errno("fcntl(F_DUPFD_CLOEXEC)", "upper filesystem");
    upper_mount.reset(fd);
    plan.upper_mount_fd = fd;
  }

  SandboxedChild child;
  child.argv0_ = spec.argv.front();
  child.search_path_ = prepared.search_path();
  child.exec_paths_ = prepared.exec_paths();

  int pidfd = -1;
  clone_args args;
  std::memset(&args, 0, sizeof args);
  args.flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP |
               CLONE_PIDFD | (spec.network ? 0 : CLONE_NEWNET) |
               (spec.cgroup_fd >= 0 ? CLONE_INTO_CGROUP : 0) |
               (spec.user_namespace ? CLONE_NEWUSER : 0);
  args.pidfd = reinterpret_cast<uintptr_t>(&pidfd);
  args.exit_signal = SIGCHLD;
  if (spec.cgroup_fd >= 0) args.cgroup = static_cast<uint64_t>(spec.cgroup_fd);

  std::optional<CloneAsRangeOwner> owner;
  if (spec.user_namespace && spec.id_range.count > 0) owner.emplace(spec.id_range.uid);
  sigset_t all, saved;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &saved);
  long pid = ::syscall(SYS_clone3, &args, sizeof args);
  if (pid == 0) child_main(plan);  // never returns
  int err = errno;
  ::pthread_sigmask(SIG_SETMASK, &saved, nullptr);
  owner.reset();
  if (pid < 0) {
    std::string msg = std::string("clone3: ") + std::strerror(err);
    if (err == ENOSYS || err == EINVAL)
      msg += " (hint: needs Linux >= 5.7 for clone3 with CLONE_INTO_CGROUP)";
    else if (err == EPERM && spec.user_namespace)
      msg +=
          " (hint: unprivileged user namespaces are disabled here: sysctl "
          "kernel.unprivileged_userns_clone / user.max_user_namespaces, or an AppArmor or "
          "seccomp policy; run as root instead)";
    else if ((err == ENOSPC || err == EUSERS) && spec.user_namespace)
      msg += " (hint: the user namespace limit is reached: sysctl user.max_user_namespaces)";
    else if (err == EPERM)
      msg += " (hint: run as root: new namespaces need CAP_SYS_ADMIN)";
    else if (err == EBUSY && spec.cgroup_fd >= 0)
      msg += " (hint: the target cgroup must not have controllers enabled for its children)";
    throw SandboxError(msg, "clone");
  }
  child.pid_ = static_cast<pid_t>(pid);
  child.pidfd_.reset(pidfd);
  child.sock_fd_ = std::move(sock.parent);
  child.status_fd_ = std::move(status.parent);
  if (spec.user_namespace && spec.id_range.count > 0)
    map_range(child.pid_, child.sock_fd_.get(), spec.id_range, spec.idmapped_lower);
  else if (spec.user_namespace)
    map_caller_to_root(child.pid_, child.sock_fd_.get());
  return child;  // our copies of the child's ends close here; the child keeps its own
}

}  // namespace benchrun::sandbox
