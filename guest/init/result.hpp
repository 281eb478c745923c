// result.hpp: the Exit frame's contents from what the loop saw and what the cgroup measured.
#pragma once

#include <optional>

#include "benchrun/proto/messages.hpp"
#include "init/cgroup.hpp"
#include "init/pump.hpp"

namespace benchrun::guest {

// Exit status, flags and wall time from the outcome; CPU time, peak memory and OOM kills from the
// cgroup, or without one from wait4's rusage (CPU time and ru_maxrss; OOM kills undetected).
// ru_maxrss is the largest single process's RSS, not the sum memory.peak measures: a lower bound.
proto::Exit make_exit(const RunOutcome& outcome, const std::optional<CgroupMetrics>& metrics);

}  // namespace benchrun::guest
