// vm_process.cpp: fork + exec of QEMU with a release pipe: the child waits until the parent has
// placed it (cgroup) before exec, and reports an exec failure over a CLOEXEC pipe. Between fork
// and exec only async-signal-safe calls (the parent may have threads).
#include "benchrun/vm/vm_process.hpp"

#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <algorithm>

#include "benchrun/common/clock.hpp"
#include "benchrun/common/eintr.hpp"
#include "benchrun/common/error.hpp"

namespace benchrun::vm {

namespace {

std::string resolve(const std::string& prog) {
  if (prog.find('/') != std::string::npos) return prog;
  for (const char* dir : {"/usr/local/bin/", "/usr/bin/", "/bin/"}) {
    std::string p = dir + prog;
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  errno = ENOENT;
  throw_errno("exec", prog);
}

std::pair<UniqueFd, UniqueFd> cloexec_pipe() {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) throw_errno("pipe", "qemu");
  return {UniqueFd(p[0]), UniqueFd(p[1])};
}

[[noreturn]] void child_fail(int status_fd, int err) {
  ssize_t ignored = ::write(status_fd, &err, sizeof err);
  (void)ignored;
  ::_exit(127);
}

}  // namespace

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "ended with wait status " + std::to_string(status);
}

VmProcess VmProcess::spawn(const VmProcessOptions& o) {
  if (o.argv.empty()) throw ConfigError("qemu argv is empty");
  const std::string path = resolve(o.argv[0]);
  std::vector<std::string> env_s = {"TMPDIR=" + o.tmpdir, "PATH=/usr/local/bin:/usr/bin:/bin"};
  std::vector<char*> argv, envp;
  for (const auto& a : o.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const auto& e : env_s) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  UniqueFd log(::open(o.log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!log) throw_errno("open", o.log_path);
  UniqueFd devnull(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!devnull) throw_errno("open", "/dev/null");
  if (o.pass_fds.size() > 16) throw ConfigError("qemu: at most 16 fds can be passed");
  const std::vector<int>& pass = o.pass_fds;
  auto [release_r, release_w] = cloexec_pipe();
  auto [status_r, status_w] = cloexec_pipe();
  sigset_t all, old;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);  // no handler of ours may run in the child
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int sfd = ::fcntl(status_w.get(), F_DUPFD_CLOEXEC, 64);  // above 3, 4, ... (see below)
    if (sfd < 0) ::_exit(127);
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != parent) ::_exit(127);
    for (int sig = 1; sig < NSIG; ++sig) ::signal(sig, SIG_DFL);
    char go;
    if (::read(release_r.get(), &go, 1) != 1) ::_exit(127);  // parent gave up
    // Passed fds first move above every target number, then land on 3, 4, ... without CLOEXEC.
    int moved[16];
    const size_t npass = std::min<size_t>(pass.size(), 16);
    for (size_t i = 0; i < npass; ++i)
      if ((moved[i] = ::fcntl(pass[i], F_DUPFD_CLOEXEC, 64)) < 0) child_fail(sfd, errno);
    if (::dup2(devnull.get(), 0) < 0 || ::dup2(log.get(), 1) < 0 || ::dup2(log.get(), 2) < 0)
      child_fail(sfd, errno);
    for (size_t i = 0; i < npass; ++i)
      if (::dup2(moved[i], static_cast<int>(3 + i)) < 0) child_fail(sfd, errno);
    // Nothing else the caller holds reaches QEMU (Python may hold inheritable fds).
    ::syscall(SYS_close_range, 3 + npass, ~0U, CLOSE_RANGE_CLOEXEC);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execve(path.c_str(), argv.data(), envp.data());
    child_fail(sfd, errno);
  }
  const int fork_errno = errno;
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) throw_errno(fork_errno, "fork", "qemu");
  VmProcess p;
  p.pid_ = pid;
  p.reaped_ = false;
  p.pidfd_ = UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!p.pidfd_) throw_errno("pidfd_open", "qemu");
  release_r.reset();
  status_w.reset();
  if (o.before_exec) o.before_exec(pid);  // on throw, ~VmProcess kills the waiting child
  if (::write(release_w.get(), "g", 1) != 1) throw_errno("write", "qemu release pipe");
  release_w.reset();
  int err = 0;
  const ssize_t n = retry_eintr([&] { return ::read(status_r.get(), &err, sizeof err); });
  if (n == static_cast<ssize_t>(sizeof err)) {
    p.reap(0);
    throw_errno(err, "exec", path);
  }
  return p;
}

VmProcess::VmProcess(VmProcess&& o) noexcept
    : pid_(o.pid_),
      pidfd_(std::move(o.pidfd_)),
      reaped_(o.reaped_),
      status_(o.status_),
      usage_(o.usage_) {
  o.reaped_ = true;
  o.pid_ = -1;
}

VmProcess::~VmProcess() { kill(); }

bool VmProcess::reap(int flags) {
  if (reaped_) return true;
  int status = 0;
  rusage ru{};
  const pid_t r = retry_eintr([&] { return ::wait4(pid_, &status, flags, &ru); });
  if (r == pid_) {
    reaped_ = true;
    status_ = status;
    usage_ = ru;
    return true;
  }
  if (r < 0) reaped_ = true;  // ECHILD: someone else reaped it; nothing left to wait for
  return reaped_;
}

bool VmProcess::wait_exit(Deadline deadline) {
  while (!reaped_) {
    const int left_ms = poll_timeout_ms(deadline);
    if (left_ms == 0) return reap(WNOHANG);
    pollfd p{pidfd_.get(), POLLIN, 0};
    int n = ::poll(&p, 1, left_ms < 0 ? 1000 : std::min(left_ms, 1000));
    if (n > 0) return reap(0);
  }
  return true;
}

void VmProcess::stop(const std::function<void(Deadline)>& ask_quit,
                     std::chrono::milliseconds grace) noexcept {
  if (reaped_) return;
  const auto deadline = Clock::now() + grace;
  if (ask_quit && !reap(WNOHANG)) {
    try {
      ask_quit(deadline);
    } catch (const std::exception&) {
      // Falls through to SIGKILL below.
    }
  }
  try {
    if (wait_exit(deadline)) return;
  } catch (const std::exception&) {
  }
  kill();
}

void VmProcess::kill() noexcept {
  if (reaped_) return;
  ::syscall(SYS_pidfd_send_signal, pidfd_.get(), SIGKILL, nullptr, 0);
  reap(0);
}

}  // namespace benchrun::vm
