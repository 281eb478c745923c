// result.cpp: the exit and metrics frames' contents.
#include "init/result.hpp"

#include <sys/wait.h>

namespace benchrun::guest {

namespace {
double seconds(const timeval& tv) {
  return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
}
}  // namespace

proto::Exit make_exit(const RunOutcome& outcome, const std::optional<CgroupMetrics>& cgroup) {
  proto::Exit e;
  if (WIFEXITED(outcome.wait_status)) {
    e.exit_code = WEXITSTATUS(outcome.wait_status);
  } else if (WIFSIGNALED(outcome.wait_status)) {
    e.exit_code = -1;
    e.signal = WTERMSIG(outcome.wait_status);
  }
  e.timed_out = outcome.timed_out;
  e.oom_killed = cgroup && cgroup->oom_kills > 0;
  e.stdout_truncated = outcome.stdout_truncated;
  e.stderr_truncated = outcome.stderr_truncated;
  return e;
}

Metrics make_metrics(const RunOutcome& outcome, const std::optional<CgroupMetrics>& cgroup,
                     const perf::CounterGroup& counters, std::vector<std::string>& notices) {
  Metrics m;
  m[metric::kWallTime] = {static_cast<double>(outcome.wall.count()) / 1e9, "s"};
  const double maxrss = static_cast<double>(outcome.rusage.ru_maxrss) * 1024;  // KiB
  if (cgroup) {
    m[metric::kCpuUser] = {static_cast<double>(cgroup->cpu_user_ns) / 1e9, "s"};
    m[metric::kCpuSystem] = {static_cast<double>(cgroup->cpu_system_ns) / 1e9, "s"};
    m[metric::kPeakMemory] = {
        cgroup->has_memory_peak ? static_cast<double>(cgroup->memory_peak_bytes) : maxrss, "bytes"};
  } else {
    m[metric::kCpuUser] = {seconds(outcome.rusage.ru_utime), "s"};
    m[metric::kCpuSystem] = {seconds(outcome.rusage.ru_stime), "s"};
    m[metric::kPeakMemory] = {maxrss, "bytes"};
  }
  counters.read_into(m, notices);
  return m;
}

}  // namespace benchrun::guest
