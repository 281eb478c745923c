// cpu_alloc.hpp: exclusive CPUs for concurrent runs. Each CPU has a lock file
// (<lock_dir>/cpu-<N>); a run holds an exclusive flock(2) on the file of every CPU it runs on. The
// kernel drops the locks however the holder ends (also SIGKILL), so a CPU never leaks (the id slots
// of sandbox/idmap.cpp work the same way). The holder writes "<pid> <run name>" into the file so a
// run that finds the CPU taken can say who has it.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "benchrun/common/unique_fd.hpp"
#include "benchrun/host/cpus.hpp"

namespace benchrun::host {

struct CpuRequest {
  CpuList cpus;        // these CPUs exactly (each must be in the available set) ...
  unsigned count = 0;  // ... or this many free ones, lowest-numbered first
  double wait_s = 0;   // busy CPUs: retry this long (every 50 ms), then fail; 0: fail at once
};

// CPUs held by one run; released on destruction (or when the process dies). Move-only.
class CpuLease {
 public:
  CpuLease() = default;
  CpuLease(CpuLease&&) noexcept = default;
  CpuLease& operator=(CpuLease&& o) noexcept;
  ~CpuLease();
  const CpuList& cpus() const noexcept { return cpus_; }

 private:
  friend CpuLease acquire_cpus(const CpuList&, const CpuRequest&, const std::string&,
                               const std::string&, const std::function<bool()>&);
  void release() noexcept;  // empties the holder notes, then unlocks
  std::vector<UniqueFd> locks_;
  CpuList cpus_;
};

// Locks the requested CPUs out of available (the runs' cpuset: a partition's CPUs, or all).
// ConfigError: a listed CPU outside available, or a count larger than it. SandboxError{stage="cpu
// allocation"} naming the holders when the CPUs stay busy past wait_s. interrupted (may be empty)
// is polled while waiting; it returning true gives an empty lease.
CpuLease acquire_cpus(const CpuList& available, const CpuRequest& request,
                      const std::string& holder, const std::string& lock_dir,
                      const std::function<bool()>& interrupted = {});

// Who holds a CPU's lock now ("run-12-ab (pid 12)"), or "" when it is free. For status and errors.
std::string cpu_holder(const std::string& lock_dir, int cpu);

}  // namespace benchrun::host
