// pump.cpp: poll(2) over the workload's pipes and init's signalfd; a pipe never fills up, so the
// workload never blocks on its output because of us.
#include "init/pump.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string_view>
#include <vector>

#include "benchrun/common/error.hpp"
#include "init/console.hpp"

namespace benchrun::guest {

namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kChunk = 64 << 10;
// After the workload exits and the rest is killed, the pipes close at once; this only bounds a
// kernel surprise.
constexpr auto kDrainGrace = std::chrono::seconds(2);

struct Stream {
  int fd;
  proto::FrameType type;
  uint64_t cap;
  uint64_t forwarded = 0;
  bool truncated = false;
  bool eof = false;
};

void read_some(proto::Channel& channel, Stream& s, std::vector<char>& buf) {
  ssize_t n = ::read(s.fd, buf.data(), buf.size());
  if (n < 0) {
    if (errno == EINTR || errno == EAGAIN) return;
    throw_errno("read",
                s.type == proto::FrameType::kStdout ? "workload stdout" : "workload stderr");
  }
  if (n == 0) {
    s.eof = true;
    return;
  }
  const uint64_t room = s.cap > s.forwarded ? s.cap - s.forwarded : 0;
  const size_t keep = static_cast<size_t>(std::min<uint64_t>(room, static_cast<uint64_t>(n)));
  if (keep < static_cast<size_t>(n)) s.truncated = true;
  if (keep == 0) return;
  std::string_view data(buf.data(), keep);
  channel.send(s.type == proto::FrameType::kStdout ? proto::encode_stdout(data)
                                                   : proto::encode_stderr(data));
  s.forwarded += keep;
}

}  // namespace

UniqueFd open_init_signalfd() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  if (::sigprocmask(SIG_BLOCK, &set, nullptr) != 0) throw_errno("sigprocmask", "init");
  ::signal(SIGPIPE, SIG_IGN);
  UniqueFd fd(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!fd) throw_errno("signalfd", "init");
  return fd;
}

RunOutcome pump_until_exit(proto::Channel& channel, Workload& workload, int signal_fd,
                           const proto::RunConfig& config, const std::function<void()>& kill_all) {
  RunOutcome outcome;
  std::vector<char> buf(kChunk);
  Stream out{workload.stdout_fd.get(), proto::FrameType::kStdout, config.max_output_bytes};
  Stream err{workload.stderr_fd.get(), proto::FrameType::kStderr, config.max_output_bytes};
  const Clock::time_point deadline =
      config.timeout_ms ? workload.released_at + std::chrono::milliseconds(config.timeout_ms)
                        : Clock::time_point::max();
  bool exited = false, killed = false;
  Clock::time_point drain_deadline = Clock::time_point::max();

  while (!exited || !out.eof || !err.eof) {
    const Clock::time_point now = Clock::now();
    if (!exited && !killed && now >= deadline) {
      breadcrumb("timeout: killing the workload");
      outcome.timed_out = true;
      kill_all();
      killed = true;
    }
    if (exited && now >= drain_deadline) break;
    const Clock::time_point until = exited   ? drain_deadline
                                    : killed ? Clock::time_point::max()
                                             : deadline;
    int timeout_ms = -1;
    if (until != Clock::time_point::max()) {
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(until - now).count();
      timeout_ms = static_cast<int>(std::clamp<int64_t>(ms + 1, 0, 60'000));
    }
    pollfd fds[3];
    nfds_t n = 0;
    int out_i = -1, err_i = -1;
    if (!out.eof) fds[out_i = static_cast<int>(n++)] = {out.fd, POLLIN, 0};
    if (!err.eof) fds[err_i = static_cast<int>(n++)] = {err.fd, POLLIN, 0};
    const int sig_i = static_cast<int>(n++);
    fds[sig_i] = {signal_fd, POLLIN, 0};
    if (::poll(fds, n, timeout_ms) < 0) {
      if (errno == EINTR) continue;
      throw_errno("poll", "workload");
    }
    if (out_i >= 0 && fds[out_i].revents) read_some(channel, out, buf);
    if (err_i >= 0 && fds[err_i].revents) read_some(channel, err, buf);
    if (!fds[sig_i].revents) continue;

    signalfd_siginfo si;
    bool child_event = false;
    while (::read(signal_fd, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
      if (si.ssi_signo == SIGCHLD) {
        child_event = true;
      } else if (!exited && !killed) {
        breadcrumb(si.ssi_signo == SIGTERM ? "SIGTERM: killing the workload"
                                           : "SIGINT: killing the workload");
        kill_all();
        killed = true;
      }
    }
    if (!child_event) continue;
    // SIGCHLD coalesces: reap everything that is ready, the workload and any orphan.
    for (;;) {
      int status = 0;
      struct rusage ru {};
      pid_t pid = ::wait4(-1, &status, WNOHANG | __WALL, &ru);
      if (pid <= 0) break;
      if (pid != workload.pid) continue;
      exited = true;
      outcome.wait_status = status;
      outcome.rusage = ru;
      outcome.wall =
          std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - workload.released_at);
      kill_all();  // nothing should be left (its pid namespace died with it); the cgroup says so
      drain_deadline = Clock::now() + kDrainGrace;
    }
  }
  outcome.stdout_truncated = out.truncated;
  outcome.stderr_truncated = err.truncated;
  return outcome;
}

}  // namespace benchrun::guest
