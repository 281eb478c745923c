// capture.cpp: poll(2) loop over stdout, stderr and the pidfd; never lets a pipe fill up.
#include "run/capture.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "benchrun/common/clock.hpp"
#include "benchrun/common/error.hpp"

namespace benchrun::run {

namespace {

// After the run tree is killed, the pipes close at once; this only bounds a kernel surprise.
constexpr auto kDrainGrace = std::chrono::seconds(5);
constexpr int kInterruptPollMs = 100;

void read_some(CapturedStream& s, std::vector<char>& buf) {
  ssize_t n = ::read(s.fd.get(), buf.data(), buf.size());
  if (n < 0) {
    if (errno == EINTR || errno == EAGAIN) return;
    throw_errno("read", "workload output pipe");
  }
  if (n == 0) {
    s.eof = true;
    return;
  }
  if (!s.data.append(buf.data(), static_cast<size_t>(n))) s.truncated = true;
}

}  // namespace

CaptureOutcome capture_until_exit(CapturedStream& out, CapturedStream& err, int pidfd,
                                  Clock::time_point deadline, const std::function<void()>& kill_all,
                                  const std::function<bool()>& interrupted) {
  return capture_until_exit(out, err, pidfd, deadline, kill_all, interrupted, GracefulStop{});
}

CaptureOutcome capture_until_exit(CapturedStream& out, CapturedStream& err, int pidfd,
                                  Clock::time_point deadline, const std::function<void()>& kill_all,
                                  const std::function<bool()>& interrupted,
                                  const GracefulStop& graceful) {
  CaptureOutcome outcome;
  bool stopping = false;  // graceful.stop was called at the deadline; kill_all at the new one
  std::vector<char> buf(256 << 10);
  bool exited = false, killed = false;
  Clock::time_point drain_deadline = Clock::time_point::max();
  while (!exited || !out.eof || !err.eof) {
    Clock::time_point now = Clock::now();
    if (!killed && now >= deadline) {
      outcome.timed_out = true;
      if (graceful.stop && !stopping) {
        graceful.stop();
        stopping = true;
        deadline = now + graceful.grace;
      } else {
        kill_all();
        killed = true;
      }
    }
    if (!killed && interrupted && interrupted()) {
      outcome.interrupted = true;
      kill_all();
      killed = true;
    }
    if (exited && now >= drain_deadline) break;
    Clock::time_point until = std::min(killed ? drain_deadline : deadline, drain_deadline);
    int timeout_ms = poll_timeout_ms(until, now);
    if (interrupted && !killed && (timeout_ms < 0 || timeout_ms > kInterruptPollMs))
      timeout_ms = kInterruptPollMs;
    struct pollfd fds[3];
    nfds_t n = 0;
    int out_i = -1, err_i = -1, pid_i = -1;
    if (!out.eof) fds[out_i = n++] = {out.fd.get(), POLLIN, 0};
    if (!err.eof) fds[err_i = n++] = {err.fd.get(), POLLIN, 0};
    if (!exited) fds[pid_i = n++] = {pidfd, POLLIN, 0};
    int r = ::poll(fds, n, timeout_ms);
    if (r < 0) {
      if (errno == EINTR) continue;
      throw_errno("poll", "workload");
    }
    if (out_i >= 0 && fds[out_i].revents) read_some(out, buf);
    if (err_i >= 0 && fds[err_i].revents) read_some(err, buf);
    if (pid_i >= 0 && fds[pid_i].revents) {
      exited = true;
      outcome.exited_at = Clock::now();
      if (!killed) {
        kill_all();  // background processes of the run die with it
        killed = true;
      }
      drain_deadline = Clock::now() + kDrainGrace;
    }
  }
  return outcome;
}

std::pair<UniqueFd, UniqueFd> make_capture_pipe() {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) throw_errno("pipe", "workload output");
  return {UniqueFd(p[0]), UniqueFd(p[1])};
}

Clock::time_point deadline_after(Clock::time_point start, double timeout_s) {
  return timeout_s > 0 ? start + std::chrono::duration_cast<Clock::duration>(
                                     std::chrono::duration<double>(timeout_s))
                       : Clock::time_point::max();
}

double record_capture(CapturedStream& out, CapturedStream& err, const CaptureOutcome& outcome,
                      Clock::time_point started, double start_time, RunResult& r) {
  const double wall = std::chrono::duration<double>(outcome.exited_at - started).count();
  r.start_time = start_time;
  r.end_time = start_time + wall;
  r.timed_out = outcome.timed_out;
  r.interrupted = outcome.interrupted;
  r.stdout_data = std::move(out.data);
  r.stderr_data = std::move(err.data);
  r.stdout_truncated = out.truncated;
  r.stderr_truncated = err.truncated;
  r.set_metric(metric::kWallTime, wall, "s");
  return wall;
}

}  // namespace benchrun::run
