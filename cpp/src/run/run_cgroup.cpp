// run_cgroup.cpp: a host-side run's cgroup with its limits, or a notice why it has none.
#include "run/run_cgroup.hpp"

#include <vector>

#include "run/run_common.hpp"

namespace benchrun::run {

namespace {

// The limits a run asked for, by name ("memory limit", "pids and cpus limits"), for the rootless
// error message.
std::string requested_limits(const host::CgroupLimits& l) {
  std::vector<std::string> names;
  if (l.memory_bytes) names.push_back("memory");
  if (l.pids_max) names.push_back("pids");
  if (!l.cpuset_cpus.empty()) names.push_back("cpus");
  if (l.cpu_quota_us) names.push_back("cpu quota");
  std::string out;
  for (size_t i = 0; i < names.size(); ++i)
    out += (i == 0 ? "" : i + 1 == names.size() ? " and " : ", ") + names[i];
  return names.empty() ? out : out + (names.size() == 1 ? " limit needs" : " limits need");
}

}  // namespace

std::optional<host::Cgroup> create_cgroup(const HostConfig& host, const std::string& name,
                                          const RunSpec& spec, Limits& limits, bool rootless,
                                          RunResult& r) {
  for (;;) {  // each pass applies one default fewer, or returns, or throws
    host::CgroupLimits cg = cpu_limits(spec), wanted = cg;
    cg.memory_bytes = limits.memory.value;
    cg.pids_max = limits.pids.value;
    if (limits.memory.explicit_) wanted.memory_bytes = limits.memory.value;
    if (limits.pids.explicit_) wanted.pids_max = limits.pids.value;
    try {
      return host::Cgroup::create(host.cgroup, name, cg);
    } catch (const host::CgroupControllerMissing& e) {
      Limit* dropped = e.controller() == "memory" ? &limits.memory
                       : e.controller() == "pids" ? &limits.pids
                                                  : nullptr;
      if (dropped == nullptr || dropped->explicit_ || !dropped->value) throw;
      dropped->value = std::nullopt;
      r.notices.push_back("no default " + e.controller() + " limit: " + e.what());
    } catch (const host::CgroupAccessDenied& e) {
      if (!rootless) throw;
      const std::string asked = requested_limits(wanted);
      if (!asked.empty())
        throw SandboxError("the " + asked + " a cgroup, which this user cannot create: " + e.what(),
                           "cgroup");
      r.notices.push_back("no cgroup (this user cannot create one under '" + host.cgroup.root +
                          "'): limits, OOM detection and cgroup metrics are unavailable; CPU time "
                          "and peak memory come from wait4 (run as root or delegate a cgroup v2 "
                          "subtree)");
      limits.memory.value = limits.pids.value = std::nullopt;
      return std::nullopt;
    }
  }
}

void record_cgroup_metrics(const host::CgroupMetrics& m, RunResult& r) {
  r.set_metric(metric::kCpuUser, static_cast<double>(m.cpu_user_ns) / 1e9, "s");
  r.set_metric(metric::kCpuSystem, static_cast<double>(m.cpu_system_ns) / 1e9, "s");
  r.set_metric(metric::kPeakMemory, static_cast<double>(m.memory_peak_bytes), "bytes");
  r.oom_killed = m.oom_kills > 0;
}

}  // namespace benchrun::run
