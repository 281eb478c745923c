// pinning.hpp: QEMU's threads on the run's CPUs: each vCPU thread (QMP query-cpus-fast thread-id)
// pinned to one of the run's CPUs, one to one, every other thread (main loop, I/O, RCU, TCG
// workers) on the housekeeping CPUs.
#pragma once

#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

#include "benchrun/host/cpus.hpp"

namespace benchrun::vm {

// {cpu-index, thread-id} of each vCPU in a query-cpus-fast reply, by cpu-index. VmError when the
// reply is not what QEMU documents.
std::vector<std::pair<int, pid_t>> parse_vcpu_threads(const std::string& query_cpus_fast_json);

struct Pinning {
  std::vector<std::pair<pid_t, int>> vcpus;  // thread -> host CPU
  int others = 0;                            // QEMU threads moved to the housekeeping CPUs
  std::string notice;                        // what could not be done ("" when everything was)
};

// Pins QEMU's (pid) threads. vcpu i goes to vcpu_cpus[i]; a thread shared by several vCPUs
// (single-threaded TCG) gets all of theirs. Threads that vanish meanwhile are skipped; a CPU the
// cgroup does not allow is reported in notice, not thrown.
Pinning pin_qemu_threads(pid_t pid, const std::vector<std::pair<int, pid_t>>& vcpu_threads,
                         const host::CpuList& vcpu_cpus, const host::CpuList& housekeeping);

}  // namespace benchrun::vm
