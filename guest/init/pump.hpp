// pump.hpp: init's loop while the workload runs: its output forwarded to the host as it is
// produced, children reaped, the timeout enforced.
#pragma once

#include <sys/resource.h>

#include <chrono>
#include <functional>

#include "benchrun/common/unique_fd.hpp"
#include "benchrun/proto/channel.hpp"
#include "benchrun/proto/messages.hpp"
#include "init/workload.hpp"

namespace benchrun::guest {

// Blocks SIGCHLD, SIGTERM and SIGINT (delivered through the returned signalfd instead) and ignores
// SIGPIPE (a closed channel is an EPIPE to report, not a death). Call before anything is forked.
// Throws SysError.
UniqueFd open_init_signalfd();

struct RunOutcome {
  int wait_status = 0;      // the workload's, from wait4
  struct rusage rusage {};  // the workload's and its reaped descendants' (the cgroup-less metrics)
  bool timed_out = false;
  bool stdout_truncated = false, stderr_truncated = false;
  std::chrono::nanoseconds wall{0};  // exec to exit
};

// Polls the workload's stdout and stderr, the signalfd and the deadline (config.timeout_ms after
// the exec; 0: none) until the workload has been reaped and both pipes reached EOF. Output goes to
// the host in chunks of at most 64 KiB, at most config.max_output_bytes per stream (the rest is
// read and dropped, and the stream marked truncated). kill_all is called on timeout, on
// SIGTERM/SIGINT to init (the Exit then shows the SIGKILL), and once the workload has exited (for
// stragglers holding the pipes); after the exit, draining is bounded by a short grace period. Every
// child is reaped (init adopts orphans). Throws ProtocolError / DeadlineExceeded from the channel,
// SysError.
RunOutcome pump_until_exit(proto::Channel& channel, Workload& workload, int signal_fd,
                           const proto::RunConfig& config, const std::function<void()>& kill_all);

}  // namespace benchrun::guest
