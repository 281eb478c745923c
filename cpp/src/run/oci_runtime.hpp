// oci_runtime.hpp: finding an OCI runtime (runc, runsc, crun, or any binary with the OCI runtime
// CLI) and checking it can run here, with errors a user can act on (RuntimeUnavailable).
#pragma once

#include <string>
#include <vector>

#include "benchrun/run/spec.hpp"

namespace benchrun::run {

struct OciRuntime {
  std::string kind;      // "runc", "runsc", "crun" or "oci" (any other)
  std::string path;      // the binary
  std::string version;   // as the runtime says it ("1.1.5+ds1", "0.0~20221219.0")
  std::string platform;  // runsc: "systrap", "ptrace" or "kvm"; empty otherwise
};

// Finds and checks the runtime of backend kind (runc, runsc, crun; oci: spec.runtime), once per
// binary (cached by path and mtime): RuntimeUnavailable{reason="not-installed"} when it is not
// found or does not run, "wrong-version" when older than benchrun supports, "unsupported-host"
// when it cannot run on this host (crun on a cgroup v1 hybrid host, runsc's kvm platform without
// usable hardware virtualisation, a platform this runsc lacks). ConfigError for a bad
// spec.runtime.
OciRuntime find_oci_runtime(const std::string& kind, const RunSpec& spec, const HostConfig& host);

// Where a runtime given by name is looked up (the core reads no $PATH: STYLE rule 7).
inline const std::vector<std::string> kRuntimeDirs = {
    "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"};

namespace detail {
// The first version-like token of `<runtime> --version` output ("runc version 1.1.5+ds1" ->
// "1.1.5+ds1"; "runsc version 0.0~20221219.0" -> "0.0~20221219.0"); empty if none.
std::string parse_runtime_version(const std::string& kind, const std::string& output);
// Whether a version of kind is supported; the minimum, for the message, in *minimum.
bool runtime_version_ok(const std::string& kind, const std::string& version, std::string* minimum);
// The platforms runsc's `flags` help lists for -platform ("ptrace (default), kvm" -> ptrace, kvm).
std::vector<std::string> runsc_platforms(const std::string& flags_help);
// True for a v1 host whose cgroup root also holds a cgroup2 mount at <root>/unified (hybrid).
bool cgroup_hybrid(const std::string& cgroup_root);
}  // namespace detail

}  // namespace benchrun::run
