// cgroup.hpp: the workload's cgroup v2 inside the guest: its limits, killing everything in it,
// and the metrics it accumulates (CPU time, peak memory, OOM kills).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "benchrun/common/unique_fd.hpp"

namespace benchrun::guest {

struct CgroupLimits {
  uint64_t memory_bytes = 0;  // memory.max (and memory.swap.max 0); 0: none
  uint64_t pids_max = 0;      // pids.max; 0: none
};

struct CgroupMetrics {
  uint64_t cpu_user_ns = 0, cpu_system_ns = 0;  // cpu.stat
  uint64_t memory_peak_bytes = 0;               // memory.peak
  bool has_memory_peak = false;                 // false: no memory controller (or Linux < 5.19)
  uint64_t oom_kills = 0;                       // memory.events oom_kill
};

class WorkloadCgroup {
 public:
  // Mounts cgroup2 at mount_point (init's view only), enables +memory +pids +cpu for the children
  // of the root, creates <mount_point>/workload and writes the limits. Throws SysError, or
  // InitError when a limit's controller is missing.
  static WorkloadCgroup create(const std::string& mount_point, const CgroupLimits& limits);

  WorkloadCgroup(WorkloadCgroup&&) noexcept = default;
  WorkloadCgroup& operator=(WorkloadCgroup&&) noexcept = default;
  ~WorkloadCgroup();  // kills what is left in it

  // For clone3(CLONE_INTO_CGROUP).
  int dir_fd() const noexcept { return dir_.get(); }
  // SIGKILLs every process in the cgroup (cgroup.kill; a cgroup.procs sweep on kernels before
  // 5.14). Never throws.
  void kill_all() noexcept;
  // Reads cpu.stat, memory.peak and memory.events; a file the kernel lacks reads as 0.
  CgroupMetrics metrics() const;

 private:
  WorkloadCgroup(std::string path, UniqueFd dir) : path_(std::move(path)), dir_(std::move(dir)) {}
  std::string path_;
  UniqueFd dir_;
};

// The cgroup if it can be set up. Without one the run goes on (metrics then come from wait4's
// rusage and OOM kills are not detected) unless a limit was asked for: a limit that cannot be
// enforced is an error (SysError from create), never silently dropped — the sandbox's rule.
// why_not receives the reason when the result is empty.
std::optional<WorkloadCgroup> create_workload_cgroup(const std::string& mount_point,
                                                     const CgroupLimits& limits,
                                                     std::string& why_not);

}  // namespace benchrun::guest
