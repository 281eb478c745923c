// run_common.hpp: small helpers the backends share (CPU lists, the leftover sweep); clocks and run
// names are common/clock.hpp and common/run_name.hpp.
#pragma once

#include <string>
#include <vector>

#include "benchrun/common/clock.hpp"
#include "benchrun/common/error.hpp"
#include "benchrun/common/run_name.hpp"
#include "benchrun/run/spec.hpp"

namespace benchrun::run {

// "0,2,3" for a cpuset (run::validate has checked the CPUs).
inline std::string cpu_list(const std::vector<int>& cpus) {
  std::string out;
  for (int c : cpus) out += (out.empty() ? "" : ",") + std::to_string(c);
  return out;
}

// Removes the run dirs under host.run_dir() and the run cgroups whose runner (the pid in
// "run-<pid>-") is dead: what a SIGKILLed runner left. Returns how many. (run/run_image.cpp)
int sweep_stale_runs(const HostConfig& host);

}  // namespace benchrun::run
