// oci_bundle.hpp: the runtime-spec config.json of one run (OCI runtime bundle), from the resolved
// process, the run's limits and the host paths the backend prepared. The security lists (seccomp,
// masked and read-only paths) are the sandbox's own (sandbox/seccomp.hpp, sandbox/mounts.hpp).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "benchrun/host/cgroup.hpp"
#include "benchrun/run/spec.hpp"
#include "run/limits.hpp"
#include "run/process_config.hpp"

namespace benchrun::run {

struct BundlePlan {
  ProcessConfig process;
  std::string rootfs;        // absolute: the overlay over the image's tree
  std::string tmp_source;    // absolute: the host tmpfs bound on /tmp (read back for outputs)
  std::string netns_path;    // a network namespace with only lo, up; empty: a new, empty one
  std::string cgroups_path;  // "/<parent>/<name>": the run's cgroup, benchrun's metrics source
  host::CgroupLimits cgroup;
  Limits limits;
  std::string hostname = "benchrun";
  uint64_t nofile = 1024;
};

// runtime-spec 1.0 config: process (args, env, cwd, user, rlimits, noNewPrivileges, no
// capabilities), root, mounts (/proc, /dev, /dev/pts, /dev/shm, /dev/mqueue, /sys read-only, /tmp),
// linux (namespaces, cgroupsPath, resources, seccomp, maskedPaths, readonlyPaths).
nlohmann::json make_oci_config(const BundlePlan& plan);

// The sandbox's seccomp policy in runtime-spec form: default allow, rules by errno and arguments.
nlohmann::json oci_seccomp();

}  // namespace benchrun::run
