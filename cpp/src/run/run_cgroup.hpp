// run_cgroup.hpp: a host-side run's cgroup (sandbox, OCI runtimes) with the limits it asked for.
#pragma once

#include <optional>
#include <string>

#include "benchrun/host/cgroup.hpp"
#include "benchrun/run/result.hpp"
#include "benchrun/run/spec.hpp"
#include "run/limits.hpp"

namespace benchrun::run {

// The run's cgroup, named name under host.cgroup, with the CPU limits of spec and the memory and
// pids limits of limits. Rootless, creating one works only in a subtree delegated to the user:
// without it the run goes on with none (and a notice in r) unless a limit the user asked for
// needs one. A default memory or pids limit whose controller the host does not offer is dropped
// the same way, with a notice. limits records what was applied.
std::optional<host::Cgroup> create_cgroup(const HostConfig& host, const std::string& name,
                                          const RunSpec& spec, Limits& limits, bool rootless,
                                          RunResult& r);

// CPU time, peak memory and OOM kills of a run's cgroup into r.
void record_cgroup_metrics(const host::CgroupMetrics& m, RunResult& r);

}  // namespace benchrun::run
