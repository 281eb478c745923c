// cpu_partition.hpp: the CPUs benchmark runs own. The partition is the runs' parent cgroup itself
// (CgroupConfig::parent, "benchrun"), so every run cgroup lives under it and inherits its CPUs:
// - v2: <root>/<name> with cpuset.cpus = the benchmark CPUs and cpuset.cpus.partition = "isolated"
//   (no load balancing, no other task: the kernel takes the CPUs away from every other cgroup),
//   else "root" (its own scheduling domain), else none (reported, or an error when required).
// - v1: <root>/cpuset/<name> with cpuset.cpus = the benchmark CPUs and cpuset.cpu_exclusive = 1,
//   which the kernel grants only when no sibling cpuset overlaps those CPUs. v1 does not move the
//   tasks of other cpusets (the root's included) away: that is the host's job (systemd's
//   AllowedCPUs, isolcpus=), and this module reports it rather than moving arbitrary processes.
// The housekeeping CPUs are the online CPUs outside the partition: the runner, the agent and QEMU's
// own threads run there.
#pragma once

#include <optional>
#include <string>

#include "benchrun/host/cgroup.hpp"
#include "benchrun/host/cpus.hpp"

namespace benchrun::host {

struct PartitionConfig {
  std::string root = "/sys/fs/cgroup";
  std::string name = "benchrun";         // the runs' parent (CgroupConfig::parent): one component
  std::optional<CgroupVersion> version;  // unset: detect_cgroup_version(root)
  std::string online = "/sys/devices/system/cpu/online";
};

struct PartitionStatus {
  bool exists = false;  // the cgroup exists and has benchmark CPUs set
  CgroupVersion version = CgroupVersion::kV2;
  std::string path;      // the cpuset cgroup directory
  CpuList cpus;          // the benchmark CPUs (empty: no partition, runs may use any CPU)
  CpuList housekeeping;  // online CPUs outside the partition
  // v2: cpuset.cpus.partition as the kernel reports it ("isolated", "root", "member",
  // "root invalid (reason)"); v1: "exclusive" or "shared".
  std::string mode;
  bool exclusive = false;  // no other cgroup may use the CPUs (v2 valid partition, v1 exclusive)
  std::string note;        // what could not be done, e.g. the overlapping sibling cpusets
};

// Creates (or changes) the partition. require_exclusive: fail (SandboxError{stage="cpu
// partition"}, naming the sibling cgroups in the way) rather than keep a partition other cgroups
// may share; the cgroup is then left as it was. Without it the partition keeps what the kernel
// granted and status.note says what it refused.
// isolated (v2): try "isolated" first — no load balancing between the CPUs, the quietest for
// single-threaded benchmarks, but a multi-threaded run's threads then stay where they were placed;
// false: "root" only (a scheduling domain of its own, load-balanced). v1 has no such choice.
PartitionStatus create_partition(const PartitionConfig& config, const CpuList& cpus,
                                 bool require_exclusive = true, bool isolated = true);
// Undoes create_partition: exclusivity off, the CPUs back to all, the directory removed when no
// run cgroup is left in it. A missing partition is fine (idempotent).
void remove_partition(const PartitionConfig& config);
PartitionStatus partition_status(const PartitionConfig& config);

// The CPUs runs may be given under the runs' parent: the partition's when there is one, else every
// CPU the cgroup root (or, failing that, this thread) may use.
CpuList run_cpus(const PartitionConfig& config);

}  // namespace benchrun::host
