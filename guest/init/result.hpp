// result.hpp: the exit and metrics frames' contents from what the loop saw and what the cgroup
// measured.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "benchrun/proto/messages.hpp"
#include "benchrun/perf/counters.hpp"
#include "init/cgroup.hpp"
#include "init/pump.hpp"

namespace benchrun::guest {

// Exit status and flags from the outcome; OOM kills from the cgroup (undetected without one).
proto::Exit make_exit(const RunOutcome& outcome, const std::optional<CgroupMetrics>& cgroup);

// wall_time from the outcome; cpu_user, cpu_system, peak_memory from the cgroup, or without one
// from wait4's rusage. ru_maxrss is the largest single process's RSS, not the sum memory.peak
// measures: a lower bound.
// The workload's performance counters (read after it and every process of its pid namespace
// were reaped) join them; counters it could not count go into notices instead (one line per
// reason), and are absent from the metrics.
Metrics make_metrics(const RunOutcome& outcome, const std::optional<CgroupMetrics>& cgroup,
                     const perf::CounterGroup& counters, std::vector<std::string>& notices);

}  // namespace benchrun::guest
