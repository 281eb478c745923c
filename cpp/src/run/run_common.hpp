// run_common.hpp: small helpers the backends share (CPU lists, the leftover sweep); clocks and run
// names are common/clock.hpp and common/run_name.hpp.
#pragma once

#include <string>
#include <vector>

#include "benchrun/common/clock.hpp"
#include "benchrun/common/error.hpp"
#include "benchrun/common/run_name.hpp"
#include "benchrun/common/fs.hpp"
#include "benchrun/host/cpu_alloc.hpp"
#include "benchrun/run/backend.hpp"
#include "benchrun/run/spec.hpp"

namespace benchrun::run {

// Locks the CPUs the spec asks for (cpus, or cpu_count free ones) out of the runs' CPUs, and fills
// ctx.pool/housekeeping and r.facts (cpus, housekeeping_cpus, cpu_partition). An empty lease
// when the spec asks for none, or when interrupted while waiting. (run/run_image.cpp)
host::CpuLease allocate_cpus(RunContext& ctx, RunResult& r);

// The run's CPU limits for its cgroup: the pinned CPUs as a cpuset ("0,2,3") and the quota.
host::CgroupLimits cpu_limits(const RunSpec& spec);

// The run's own directory, <store>/runs/<name>-XXXXXX (removed with everything in it).
TempDir make_run_dir(const RunContext& ctx);

// Removes the run dirs under host.run_dir() and the run cgroups whose runner (the pid in
// "run-<pid>-") is dead: what a SIGKILLed runner left. Returns how many. (run/run_image.cpp)
int sweep_stale_runs(const HostConfig& host);

// What a killed runner of an OCI runtime backend left in and for run dir d (it names its runtime
// and container): the container (`delete --force`), its mounts, the runtime's own cgroups in the
// hierarchies benchrun does not use. Nothing for other run dirs. (run/oci_backend.cpp)
void sweep_oci_run_dir(const HostConfig& host, const std::filesystem::path& d);

}  // namespace benchrun::run
