// capture.hpp: drain a workload's stdout/stderr while it runs, enforcing the deadline.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "benchrun/common/output_file.hpp"
#include "benchrun/common/unique_fd.hpp"
#include "benchrun/run/result.hpp"

namespace benchrun::run {

struct CapturedStream {
  UniqueFd fd;      // read end
  OutputFile data;  // up to its cap; the rest is read and dropped so the writer never blocks
  bool truncated = false;
  bool eof = false;
};

struct CaptureOutcome {
  bool timed_out = false;
  bool interrupted = false;
  std::chrono::steady_clock::time_point exited_at;
};

// Polls both streams and the child's pidfd until the child has exited and both streams reached EOF.
// kill_all is called once when the child exits (to end stragglers that still hold the pipes), when
// the deadline passes (deadline == time_point::max() for none), or when interrupted (polled at
// least every 100 ms when set; e.g. Ctrl-C in the caller) returns true.
CaptureOutcome capture_until_exit(CapturedStream& out, CapturedStream& err, int pidfd,
                                  std::chrono::steady_clock::time_point deadline,
                                  const std::function<void()>& kill_all,
                                  const std::function<bool()>& interrupted = {});

// A CLOEXEC pipe for one captured stream: {read end, write end}.
std::pair<UniqueFd, UniqueFd> make_capture_pipe();

// The deadline of a workload started at start with a timeout in seconds (0: none, max()).
std::chrono::steady_clock::time_point deadline_after(std::chrono::steady_clock::time_point start,
                                                     double timeout_s);

// Moves the captured output and the outcome into r (start/end time from start_time, the Unix
// time at started, timed_out, interrupted, the wall_time metric); returns the wall time.
double record_capture(CapturedStream& out, CapturedStream& err, const CaptureOutcome& outcome,
                      std::chrono::steady_clock::time_point started, double start_time,
                      RunResult& r);

// The deadline's polite form (--init): at the deadline stop() is called (SIGTERM to the run's
// init, which forwards it to the workload's group) and kill_all only `grace` later if the child
// has not exited by then. An empty stop: capture_until_exit above.
struct GracefulStop {
  std::function<void()> stop;
  std::chrono::steady_clock::duration grace{};
};
CaptureOutcome capture_until_exit(CapturedStream& out, CapturedStream& err, int pidfd,
                                  std::chrono::steady_clock::time_point deadline,
                                  const std::function<void()>& kill_all,
                                  const std::function<bool()>& interrupted,
                                  const GracefulStop& graceful);

}  // namespace benchrun::run
