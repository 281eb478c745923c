// workload.hpp: starting the workload from a RunConfig: everything the child needs prepared in
// init, clone3 into the namespaces (and the cgroup), its release and the wait until it has exec'd.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>

#include "benchrun/common/unique_fd.hpp"
#include "benchrun/perf/counters.hpp"
#include "benchrun/proto/messages.hpp"

namespace benchrun::guest {

class WorkloadCgroup;

struct Workload {
  pid_t pid = -1;
  UniqueFd stdout_fd, stderr_fd;  // read ends of the workload's stdout and stderr
  std::chrono::steady_clock::time_point released_at;  // the "go": the run's wall clock starts here
  perf::CounterGroup counters;  // opened on pid before its release, counting from its execve
};

// Validates config, prepares the child's plan, clones it (into cgroup when given), opens
// config.counters on it (perf/counters.hpp) before its release and waits until it has exec'd.
// Throws ConfigError (bad argv, cwd, seccomp program, counters), SysError (pipes, clone3), or
// InitError of origin kWorkload with the child's stage when it failed before or at execve, worded
// as the sandbox words it (e.g. "exec 'cmd': No such file or directory in the image (PATH=...)").
// The failed child is reaped before the throw.
Workload start_workload(const proto::RunConfig& config, const std::string& root,
                        const WorkloadCgroup* cgroup);

}  // namespace benchrun::guest
