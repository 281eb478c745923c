// runner.hpp: run one image in the sandbox backend and return its Result.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "benchrun/oci/manifest.hpp"
#include "benchrun/sandbox/cgroup.hpp"

namespace benchrun::run {

struct RunSpec {
  // Docker semantics: a given entrypoint replaces the image's and clears its Cmd; a given command
  // replaces Cmd. Env = image Env overridden by env (K=V); nothing from the runner's environment.
  std::optional<std::vector<std::string>> entrypoint;
  std::optional<std::vector<std::string>> command;
  std::vector<std::string> env;
  std::optional<std::string> workdir;
  std::optional<std::string> user;  // name, uid, name:group, uid:gid (resolved in the image)
  std::optional<uint64_t> memory_bytes;
  std::optional<uint64_t> pids_limit;
  std::vector<int> cpus;                // pinned CPU set (empty: no pinning)
  std::optional<double> cpu_quota;      // CPUs' worth of time (e.g. 1.5); none = unlimited
  double timeout_s = 0;                 // wall-clock limit of the workload; 0 = none
  std::vector<std::string> outputs;     // absolute paths inside the image to collect after the run
  uint64_t max_output_bytes = 64ull << 20;  // per stream (stdout, stderr)
  uint64_t max_file_bytes = 64ull << 20;    // per collected file
  size_t max_files = 64;
  uint64_t nofile = 1024;
  bool network = false;
  std::string hostname = "benchrun";
  sandbox::CgroupConfig cgroup;
  std::string run_dir;  // where per-run upper/work dirs go (created if missing)
  // Unprivileged mode: a user namespace maps the caller to root (the workload must run as root),
  // and the run has a cgroup only where one can be created (a delegated subtree); without one,
  // requesting a limit is a SandboxError and RunResult::notices says what is missing. Unset:
  // rootless exactly when geteuid() != 0.
  std::optional<bool> rootless;
  // Polled while the workload runs; returning true kills the run (RunResult::interrupted).
  std::function<bool()> interrupted;
};

struct Phases {
  double prepare_s = 0, start_s = 0, run_s = 0, collect_s = 0;
};

struct RunResult {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;
  std::string stdout_data, stderr_data;
  bool stdout_truncated = false, stderr_truncated = false;
  std::map<std::string, std::string> outputs;
  std::map<std::string, std::string> missing_outputs;  // path -> why
  bool timed_out = false;
  bool oom_killed = false;
  bool interrupted = false;  // RunSpec::interrupted stopped it (e.g. Ctrl-C)
  double wall_s = 0;  // from exec to exit of the workload
  double cpu_user_s = 0, cpu_system_s = 0;
  uint64_t peak_memory_bytes = 0;
  double start_time = 0, end_time = 0;  // unix seconds
  Phases phases;
  // What this run could not provide and why (e.g. no cgroup as an unprivileged user), a line each.
  std::vector<std::string> notices;
};

// Runs the image's process in the sandbox over rootfs (the image's unpacked, read-only tree).
// Throws ConfigError (bad spec / hostile image config), SandboxError{stage} (setup failed).
RunResult run_sandbox(const oci::ImageConfig& image, const std::string& rootfs, const RunSpec& spec);

// Removes what a SIGKILLed runner left: run dirs under run_dir and stale cgroups. Returns the count.
int cleanup_leftovers(const std::string& run_dir, const sandbox::CgroupConfig& cgroup);

}  // namespace benchrun::run
