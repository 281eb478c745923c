// result.hpp: what one run produced, whatever the backend: exit status, output, collected files,
// the metrics map (name -> value + unit), the time each phase took, and backend facts.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "benchrun/common/metrics.hpp"
#include "benchrun/common/output_file.hpp"

namespace benchrun::run {

// A fact about how the backend ran the workload (kernel release, accelerator, ...): not a
// measurement, so not a metric.
using Fact = std::variant<std::string, int64_t, double, bool>;

// Wall-clock seconds of each step of run_image, in order; the workload's own time is the
// wall_time metric (measured by the backend, as close to the workload as it gets).
struct Phases {
  double prepare_s = 0, start_s = 0, run_s = 0, collect_s = 0;
};

struct RunResult {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;
  // Held in anonymous files (at most max_output_bytes each), read once by the caller.
  OutputFile stdout_data, stderr_data;
  bool stdout_truncated = false, stderr_truncated = false;
  std::map<std::string, std::string> outputs;
  std::map<std::string, std::string> missing_outputs;  // path -> why
  bool timed_out = false;
  bool oom_killed = false;
  bool interrupted = false;             // the run's Interrupt stopped it (e.g. Ctrl-C)
  double start_time = 0, end_time = 0;  // unix seconds, the workload's start and end
  Metrics metrics;                      // wall_time, cpu_user, cpu_system, peak_memory, ...
  Phases phases;
  std::map<std::string, Fact> facts;  // backend-specific, e.g. the VM's kernel_release
  // The limits that applied (run/limits.hpp): memory, tmpfs, disk (bytes), pids, nofile; nullopt:
  // unlimited.
  std::map<std::string, std::optional<uint64_t>> limits;
  // What this run could not provide and why (e.g. no cgroup as an unprivileged user), a line each.
  std::vector<std::string> notices;
  std::string backend;
  std::string image_digest;

  void set_metric(const std::string& name, double value, const std::string& unit) {
    metrics[name] = Metric{value, unit};
  }
  double metric(const std::string& name) const {
    auto it = metrics.find(name);
    return it == metrics.end() ? 0 : it->second.value;
  }
};

}  // namespace benchrun::run
