// capture.hpp: drain a workload's stdout/stderr while it runs, enforcing the deadline.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "benchrun/common/output_file.hpp"
#include "benchrun/common/unique_fd.hpp"

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
