// run_common.hpp: small helpers both backends' runners share (run names, CPU lists, clocks).
#pragma once

#include <sys/time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "benchrun/common/error.hpp"
#include "benchrun/run/spec.hpp"

namespace benchrun::run {

using Clock = std::chrono::steady_clock;

inline double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

inline double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

inline double seconds(const timeval& tv) {
  return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
}

// "run-<our pid>-<random>": cleanup_leftovers recognises a dead runner's leftovers by the pid.
inline std::string run_name() {
  std::random_device rd;
  char buf[16];
  snprintf(buf, sizeof buf, "%08x", rd());
  return "run-" + std::to_string(::getpid()) + "-" + buf;
}

// "0,2,3" for a cpuset; ConfigError for a negative CPU.
inline std::string cpu_list(const std::vector<int>& cpus) {
  std::string out;
  for (int c : cpus) {
    if (c < 0) throw ConfigError("cpu " + std::to_string(c) + ": must be >= 0");
    out += (out.empty() ? "" : ",") + std::to_string(c);
  }
  return out;
}

// Removes the run dirs under host.run_dir() and the run cgroups whose runner (the pid in
// "run-<pid>-") is dead: what a SIGKILLed runner left. Returns how many. (run/run_image.cpp)
int sweep_stale_runs(const HostConfig& host);

}  // namespace benchrun::run
