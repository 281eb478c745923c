// cgroup.hpp: one cgroup per run, on cgroup v2 (unified) or v1 (a directory per controller hierarchy).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "benchrun/common/unique_fd.hpp"

namespace benchrun::sandbox {

struct CgroupConfig {
  // Where cgroupfs is mounted. v2 when root itself is a cgroup2 mount; otherwise v1 with one
  // hierarchy per controller under root/<controller> (cpu, cpuacct, cpuset, memory, pids, freezer).
  std::string root = "/sys/fs/cgroup";
  std::string parent = "benchrun";  // runs live in root[/controller]/parent/<name>
};

struct CgroupLimits {
  std::optional<uint64_t> memory_bytes;  // memory.max (v2) / memory.limit_in_bytes (v1); swap 0
  std::optional<uint64_t> pids_max;
  std::string cpuset_cpus;               // e.g. "2-3"; empty = inherit
  std::optional<uint64_t> cpu_quota_us;  // with cpu_period_us: cpu.max / cfs_quota_us
  uint64_t cpu_period_us = 100'000;
};

struct CgroupMetrics {
  uint64_t cpu_usage_ns = 0;
  uint64_t cpu_user_ns = 0;
  uint64_t cpu_system_ns = 0;
  uint64_t memory_peak_bytes = 0;  // memory.peak (v2, 0 if the kernel lacks it) / max_usage_in_bytes
  uint64_t oom_kills = 0;          // memory.events oom_kill (v2) / memory.oom_control oom_kill (v1)
};

enum class CgroupVersion { kV1, kV2 };

// Detects the layout at config.root: v2 if it is a cgroup2 mount, v1 if it has controller dirs.
CgroupVersion detect_cgroup_version(const std::string& root);

// A run's cgroup. Created with limits applied; destruction kills every process in it and removes it
// (never throws). Move-only.
class Cgroup {
 public:
  // name must match [A-Za-z0-9_.-]+. Throws SandboxError{stage="cgroup"} naming the file written.
  static Cgroup create(const CgroupConfig& config, const std::string& name, const CgroupLimits& limits);
  Cgroup(Cgroup&&) noexcept;
  Cgroup& operator=(Cgroup&&) noexcept;
  ~Cgroup();

  CgroupVersion version() const noexcept { return version_; }
  // v2: an O_DIRECTORY fd of the cgroup for clone3(CLONE_INTO_CGROUP); -1 on v1.
  int dir_fd() const noexcept { return dir_fd_.get(); }
  // Moves pid into the cgroup (every v1 hierarchy). Used on v1 before the child is released.
  void add_process(pid_t pid);
  // Kills every process in the cgroup: cgroup.kill on v2 (fallback: SIGKILL each pid until empty),
  // freeze + SIGKILL + thaw on v1. Returns when the cgroup is empty (bounded wait).
  void kill_all();
  CgroupMetrics metrics() const;
  // Kills, then removes the cgroup directories. Idempotent.
  void destroy() noexcept;
  // Paths (one on v2, one per controller on v1).
  const std::vector<std::string>& paths() const noexcept { return paths_; }

 private:
  Cgroup() = default;
  CgroupVersion version_ = CgroupVersion::kV2;
  std::vector<std::string> paths_;
  UniqueFd dir_fd_;
  bool destroyed_ = true;
};

// Removes leftover run cgroups (killing their processes) under the benchrun parent: what a runner
// that was SIGKILLed mid-run left behind. Returns how many were removed.
int cleanup_stale_cgroups(const CgroupConfig& config);

}  // namespace benchrun::sandbox
