// metrics.hpp: what a run measured, as an open map from metric name to value + unit. Producers
// (the sandbox, the guest init, the VM backend, later counters) add entries; everything between
// them and the user (the run result, the guest protocol, the bindings) carries the map unchanged.
#pragma once

#include <map>
#include <string>

namespace benchrun {

struct Metric {
  double value = 0;
  std::string unit;  // "s", "bytes", "count", ...

  bool operator==(const Metric&) const = default;
};

using Metrics = std::map<std::string, Metric>;

// Names of the metrics every backend produces (others are backend-specific, documented where
// they are produced). Names are [a-z0-9_.]+, at most kMaxMetricName bytes.
namespace metric {
inline constexpr const char* kWallTime = "wall_time";      // s: the workload, exec to exit
inline constexpr const char* kCpuUser = "cpu_user";        // s: all processes of the workload
inline constexpr const char* kCpuSystem = "cpu_system";    // s
inline constexpr const char* kPeakMemory = "peak_memory";  // bytes
inline constexpr size_t kMaxName = 64;
inline constexpr size_t kMaxUnit = 16;
inline constexpr size_t kMaxCount = 256;  // per run
}  // namespace metric

// Whether name is a valid metric name ([a-z0-9_.]+, 1..kMaxName bytes).
bool valid_metric_name(const std::string& name) noexcept;

}  // namespace benchrun
