// result.cpp: assembling the Exit message.
#include "init/result.hpp"

#include <sys/wait.h>

namespace benchrun::guest {

namespace {
uint64_t ns(const timeval& tv) {
  return static_cast<uint64_t>(tv.tv_sec) * 1'000'000'000u +
         static_cast<uint64_t>(tv.tv_usec) * 1000u;
}
}  // namespace

proto::Exit make_exit(const RunOutcome& outcome, const std::optional<CgroupMetrics>& metrics) {
  proto::Exit e;
  if (WIFEXITED(outcome.wait_status)) {
    e.exit_code = WEXITSTATUS(outcome.wait_status);
  } else if (WIFSIGNALED(outcome.wait_status)) {
    e.exit_code = -1;
    e.signal = WTERMSIG(outcome.wait_status);
  }
  e.timed_out = outcome.timed_out;
  e.stdout_truncated = outcome.stdout_truncated;
  e.stderr_truncated = outcome.stderr_truncated;
  e.wall_ns = static_cast<uint64_t>(outcome.wall.count());
  const uint64_t maxrss = static_cast<uint64_t>(outcome.rusage.ru_maxrss) * 1024;  // KiB
  if (metrics) {
    e.cpu_user_ns = metrics->cpu_user_ns;
    e.cpu_system_ns = metrics->cpu_system_ns;
    e.peak_memory_bytes = metrics->has_memory_peak ? metrics->memory_peak_bytes : maxrss;
    e.oom_killed = metrics->oom_kills > 0;
  } else {
    e.cpu_user_ns = ns(outcome.rusage.ru_utime);
    e.cpu_system_ns = ns(outcome.rusage.ru_stime);
    e.peak_memory_bytes = maxrss;
  }
  return e;
}

}  // namespace benchrun::guest
