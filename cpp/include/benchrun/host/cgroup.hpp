// cgroup.hpp: a run's cgroup on cgroup v2 (unified) or v1 (a directory per controller hierarchy): a
// host resource that every backend uses (the sandbox's workload, the microVM's QEMU).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "benchrun/common/error.hpp"
#include "benchrun/common/unique_fd.hpp"

namespace benchrun::host {

enum class CgroupVersion { kV1, kV2 };

struct CgroupConfig {
  // Where cgroupfs is mounted. v2 when root itself is a cgroup2 mount; otherwise v1 with one
  // hierarchy per controller under root/<controller> (cpu, cpuacct, cpuset, memory, pids, freezer).
  std::string root = "/sys/fs/cgroup";
  std::string parent = "benchrun";  // runs live in root[/controller]/parent/<name>
  // Unset: detect_cgroup_version(root). Set: trust it (tests use it on a fake tree of plain files).
  std::optional<CgroupVersion> version;
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
  uint64_t memory_peak_bytes =
      0;                   // memory.peak (v2, 0 if the kernel lacks it) / max_usage_in_bytes
  uint64_t oom_kills = 0;  // memory.events oom_kill (v2) / memory.oom_control oom_kill (v1)
  // Times the memory limit was hit: memory.events max (v2) / memory.failcnt + memory.memsw.failcnt
  // (v1). Both count the subtree, where v1's oom_kill counts only the cgroup of the killed process.
  uint64_t memory_limit_hits = 0;
};

// A SandboxError{stage="cgroup"} for cgroupfs refusing this process (EACCES, EPERM, EROFS): not
// root, and no cgroup subtree delegated to the user. A rootless runner goes on without a cgroup.
class CgroupAccessDenied : public SandboxError {
 public:
  using SandboxError::SandboxError;
};

// A SandboxError{stage="cgroup"} for a limit whose controller the host does not offer here (v2: not
// in cgroup.controllers; v1: no hierarchy). controller() names it ("memory", "pids", ...).
class CgroupControllerMissing : public SandboxError {
 public:
  CgroupControllerMissing(const std::string& message, std::string controller)
      : SandboxError(message, "cgroup"), controller_(std::move(controller)) {}
  const std::string& controller() const noexcept { return controller_; }

 private:
  std::string controller_;
};

// Detects the layout at config.root: v2 if it is a cgroup2 mount, v1 if it has controller dirs.
// A hybrid host (tmpfs root with v1 controllers and an empty cgroup2 at root/unified) is v1.
CgroupVersion detect_cgroup_version(const std::string& root);

// A run's cgroup. Created with limits applied; destruction kills every process in it and removes it
// (never throws). Move-only.
class Cgroup {
 public:
  // name must match [A-Za-z0-9_.-]+ (ConfigError otherwise). Throws SandboxError{stage="cgroup"}
  // naming the file written, or the controller missing for a requested limit.
  static Cgroup create(const CgroupConfig& config, const std::string& name,
                       const CgroupLimits& limits);
  Cgroup(Cgroup&&) noexcept;
  Cgroup& operator=(Cgroup&&) noexcept;
  ~Cgroup();

  CgroupVersion version() const noexcept { return version_; }
  // v2: an O_DIRECTORY fd of the cgroup for clone3(CLONE_INTO_CGROUP); -1 on v1.
  int dir_fd() const noexcept { return dir_fd_.get(); }
  // Moves pid into the cgroup (every v1 hierarchy). Used on v1 before the child is released.
  void add_process(pid_t pid);
  // Kills every process in the cgroup: cgroup.kill on v2 (fallback: SIGKILL each pid until empty),
  // freeze + SIGKILL + thaw on v1. Returns when the cgroup is empty (bounded wait: SandboxError
  // after 5 s, e.g. for a process stuck in uninterruptible sleep).
  void kill_all();
  // Reads the counters; a file the kernel lacks counts 0. SandboxError once destroyed.
  CgroupMetrics metrics() const;
  // Kills, then removes the cgroup directories. Idempotent.
  void destroy() noexcept;
  // Paths (one on v2, one per controller hierarchy on v1); empty once destroyed.
  const std::vector<std::string>& paths() const noexcept { return paths_; }

 private:
  friend int cleanup_stale_cgroups(const CgroupConfig& config);
  Cgroup() = default;
  CgroupVersion version_ = CgroupVersion::kV2;
  std::vector<std::string> paths_;
  UniqueFd dir_fd_;
  bool destroyed_ = true;
};

// Removes leftover run cgroups (killing their processes) under the benchrun parent: what a runner
// that was SIGKILLed mid-run left behind. Returns how many were removed (a run counts once, however
// many v1 hierarchies it spans).
//
// Other runners may be live under the same parent, so only groups named "run-<pid>-<anything>"
// whose <pid> is not alive in our PID namespace (kill(pid, 0) fails with ESRCH) are removed. Groups
// with other names are never touched. Caveats: a recycled pid keeps a stale group until that
// process ends; a runner in another PID namespace sharing this cgroupfs must use a different
// parent.
int cleanup_stale_cgroups(const CgroupConfig& config);

namespace detail {
// The limit files create() writes into a fresh v2 run cgroup dir (parent_dir: the directory above
// it, whose cpuset.mems.effective is copied). Exposed for tests: cgroupfs fills a new directory
// with these files on mkdir, which a fake tree of plain files cannot imitate.
void write_v2_limits(const std::string& dir, const std::string& parent_dir,
                     const CgroupLimits& limits);
}  // namespace detail

}  // namespace benchrun::host
