// subprocess.cpp: posix_spawn + poll loop for short-lived helpers (credential helpers, tools).
//
// Design: posix_spawn (glibc clones with CLONE_VFORK and reports exec errors as its return value,
// so no error pipe is needed and it is safe in a threaded process). All pipe fds are O_CLOEXEC; the
// child gets them via dup2 file actions and, where glibc supports it, every other fd is closed.
// The parent pumps stdin/stdout/stderr with poll() on non-blocking ends so neither side can
// deadlock on a full pipe. Child exit is noticed through a pidfd, so a grandchild that keeps the
// pipes open cannot stall us. SIGPIPE is blocked in this thread while writing stdin (a child that
// exits without reading must not kill the caller) and a SIGPIPE we caused is consumed afterwards.
#include "benchrun/common/subprocess.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <thread>

#include "benchrun/common/clock.hpp"
#include "benchrun/common/eintr.hpp"
#include "benchrun/common/error.hpp"
#include "benchrun/common/text.hpp"
#include "benchrun/common/scope_exit.hpp"
#include "benchrun/common/unique_fd.hpp"

extern char** environ;

namespace benchrun {

namespace {

constexpr size_t kChunk = 64 * 1024;
constexpr size_t kMaxArgInMessage = 160;

// Moves fd above the standard fds so the child's dup2 file actions cannot clobber each other when
// the caller runs with 0/1/2 closed.
UniqueFd above_stdio(UniqueFd fd) {
  if (fd.get() > STDERR_FILENO) return fd;
  int moved = ::fcntl(fd.get(), F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
  if (moved < 0) throw_errno("fcntl F_DUPFD_CLOEXEC", "pipe");
  return UniqueFd(moved);
}

struct Pipe {
  UniqueFd read;
  UniqueFd write;
};

Pipe make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw_errno("pipe2", "");
  Pipe p{UniqueFd(fds[0]), UniqueFd(fds[1])};
  p.read = above_stdio(std::move(p.read));
  p.write = above_stdio(std::move(p.write));
  return p;
}

void set_nonblocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0)
    throw_errno("fcntl O_NONBLOCK", "pipe");
}

UniqueFd open_pidfd(pid_t pid) {
#ifdef SYS_pidfd_open
  long fd = ::syscall(SYS_pidfd_open, pid, 0);  // close-on-exec by default
  if (fd >= 0) return UniqueFd(static_cast<int>(fd));
#else
  (void)pid;
#endif
  return UniqueFd();  // old kernel: fall back to end-of-file on the output pipes
}

// Owns a spawned child until it is reaped; on an early exit (exception) kills and reaps it.
class Child {
 public:
  explicit Child(pid_t pid) : pid_(pid) {}
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    retry_eintr([&] { return ::waitpid(pid_, &status, 0); });
  }
  pid_t pid() const noexcept { return pid_; }
  void kill() noexcept { ::kill(pid_, SIGKILL); }
  // Non-blocking reap; true once the child is gone (status filled in).
  bool try_reap(int& status) {
    pid_t r = retry_eintr([&] { return ::waitpid(pid_, &status, WNOHANG); });
    if (r == 0) return false;
    if (r < 0) {
      if (errno != ECHILD) throw_errno("waitpid", std::to_string(pid_));
      status = -1;  // someone else reaped it (SIGCHLD set to SIG_IGN): status unknown
    }
    pid_ = -1;
    return true;
  }
  void reap(int& status) {
    if (retry_eintr([&] { return ::waitpid(pid_, &status, 0); }) < 0) {
      if (errno != ECHILD) throw_errno("waitpid", std::to_string(pid_));
      status = -1;
    }
    pid_ = -1;
  }

 private:
  pid_t pid_;
};

// One captured output stream.
struct Sink {
  UniqueFd fd;
  std::string* out;
  bool* truncated;
  size_t max;

  // Reads what is available; closes fd at end-of-file or on a hard error.
  void drain() {
    char buf[kChunk];
    while (fd) {
      ssize_t n = retry_eintr([&] { return ::read(fd.get(), buf, sizeof buf); });
      if (n > 0) {
        size_t room = max > out->size() ? max - out->size() : 0;
        size_t take = std::min(room, static_cast<size_t>(n));
        out->append(buf, take);
        if (take < static_cast<size_t>(n)) *truncated = true;
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      fd.reset();  // EOF, or an error we cannot do anything about
    }
  }
};

}  // namespace

SubprocessResult run_subprocess(const std::vector<std::string>& argv,
                                const SubprocessOptions& options) {
  if (argv.empty() || argv[0].empty()) throw ConfigError("run subprocess: empty argv");
  std::vector<char*> cargv;
  cargv.reserve(argv.size() + 1);
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);

  Pipe in = make_pipe();
  Pipe out = make_pipe();
  Pipe err = make_pipe();

  posix_spawn_file_actions_t actions;
  if (int e = ::posix_spawn_file_actions_init(&actions)) throw_errno(e, "posix_spawn", "actions");
  ScopeExit destroy_actions([&] { ::posix_spawn_file_actions_destroy(&actions); });
  posix_spawnattr_t attr;
  if (int e = ::posix_spawnattr_init(&attr)) throw_errno(e, "posix_spawn", "attributes");
  ScopeExit destroy_attr([&] { ::posix_spawnattr_destroy(&attr); });

  int e = ::posix_spawn_file_actions_adddup2(&actions, in.read.get(), STDIN_FILENO);
  if (!e) e = ::posix_spawn_file_actions_adddup2(&actions, out.write.get(), STDOUT_FILENO);
  if (!e) e = ::posix_spawn_file_actions_adddup2(&actions, err.write.get(), STDERR_FILENO);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
  // Our own fds are O_CLOEXEC; this also keeps fds other code opened without it from leaking.
  if (!e) e = ::posix_spawn_file_actions_addclosefrom_np(&actions, STDERR_FILENO + 1);
#endif
  if (e) throw_errno(e, "posix_spawn", "file actions");

  // The child starts with an empty signal mask and default dispositions (Python ignores SIGPIPE,
  // which exec would otherwise pass on).
  sigset_t empty_set;
  sigset_t default_set;
  sigemptyset(&empty_set);
  sigfillset(&default_set);
  e = ::posix_spawnattr_setsigmask(&attr, &empty_set);
  if (!e) e = ::posix_spawnattr_setsigdefault(&attr, &default_set);
  if (!e) e = ::posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  if (e) throw_errno(e, "posix_spawn", "attributes");

  pid_t pid = -1;
  bool has_slash = argv[0].find('/') != std::string::npos;
  e = has_slash ? ::posix_spawn(&pid, cargv[0], &actions, &attr, cargv.data(), environ)
                : ::posix_spawnp(&pid, cargv[0], &actions, &attr, cargv.data(), environ);
  if (e) throw_errno(e, "exec", printable(argv[0], kMaxArgInMessage));
  Child child(pid);

  in.read.reset();
  out.write.reset();
  err.write.reset();

  SubprocessResult result;
  Sink sinks[2] = {
      {std::move(out.read), &result.stdout_data, &result.stdout_truncated, options.max_output},
      {std::move(err.read), &result.stderr_data, &result.stderr_truncated, options.max_output}};
  for (auto& s : sinks) set_nonblocking(s.fd.get());
  UniqueFd stdin_fd = std::move(in.write);
  size_t stdin_off = 0;
  if (options.stdin_data.empty()) stdin_fd.reset();
  if (stdin_fd) set_nonblocking(stdin_fd.get());
  UniqueFd pidfd = open_pidfd(pid);

  // Block SIGPIPE for this thread while we write; consume one we raised ourselves.
  sigset_t pipe_set;
  sigset_t old_mask;
  sigset_t pending;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  ::pthread_sigmask(SIG_BLOCK, &pipe_set, &old_mask);
  sigemptyset(&pending);
  ::sigpending(&pending);
  const bool sigpipe_was_pending = sigismember(&pending, SIGPIPE) == 1;
  bool raised_sigpipe = false;
  ScopeExit restore_mask([&] {
    if (raised_sigpipe && !sigpipe_was_pending) {
      struct timespec zero {};
      ::sigtimedwait(&pipe_set, nullptr, &zero);
    }
    ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  });

  const auto deadline = options.timeout.count() > 0 ? Clock::now() + options.timeout : kNoDeadline;
  bool exited = false;
  while (!exited && (stdin_fd || sinks[0].fd || sinks[1].fd || pidfd)) {
    if (Clock::now() >= deadline) {
      child.kill();
      result.timed_out = true;
      break;
    }
    struct pollfd fds[4];
    int nfds = 0;
    int stdin_slot = -1, pid_slot = -1, sink_slot[2] = {-1, -1};
    if (stdin_fd) {
      stdin_slot = nfds;
      fds[nfds++] = {stdin_fd.get(), POLLOUT, 0};
    }
    for (int i = 0; i < 2; ++i) {
      if (!sinks[i].fd) continue;
      sink_slot[i] = nfds;
      fds[nfds++] = {sinks[i].fd.get(), POLLIN, 0};
    }
    if (pidfd) {
      pid_slot = nfds;
      fds[nfds++] = {pidfd.get(), POLLIN, 0};
    }
    int r = retry_eintr(
        [&] { return ::poll(fds, static_cast<nfds_t>(nfds), poll_timeout_ms(deadline)); });
    if (r < 0) throw_errno("poll", "subprocess pipes");
    if (r == 0) continue;  // deadline check at the top of the loop
    if (stdin_slot >= 0 && fds[stdin_slot].revents != 0) {
      size_t len = std::min(kChunk, options.stdin_data.size() - stdin_off);
      ssize_t n = ::write(stdin_fd.get(), options.stdin_data.data() + stdin_off, len);
      if (n > 0) {
        stdin_off += static_cast<size_t>(n);
        if (stdin_off == options.stdin_data.size()) stdin_fd.reset();
      } else if (n < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
        if (errno == EPIPE) raised_sigpipe = true;
        stdin_fd.reset();  // the child closed its stdin: it gets no more input
      }
    }
    for (int i = 0; i < 2; ++i)
      if (sink_slot[i] >= 0 && fds[sink_slot[i]].revents != 0) sinks[i].drain();
    if (pid_slot >= 0 && fds[pid_slot].revents != 0) {
      // The child is gone: take what it left in the pipes, but do not wait for grandchildren
      // that may still hold the write ends.
      for (auto& s : sinks) s.drain();
      exited = true;
    }
  }
  stdin_fd.reset();
  for (auto& s : sinks) s.fd.reset();

  int status = 0;
  if (result.timed_out) {
    child.reap(status);
  } else {
    // Without a pidfd the pipes reached end-of-file, but the child may still run: poll for its
    // exit until the deadline.
    while (!child.try_reap(status)) {
      if (Clock::now() >= deadline) {
        child.kill();
        result.timed_out = true;
        child.reap(status);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  if (status == -1) {
    result.exit_code = -1;
  } else if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.signal = WTERMSIG(status);
  }
  return result;
}

}  // namespace benchrun
