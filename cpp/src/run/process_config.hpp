// process_config.hpp: the workload's process from the image config plus the user's overrides,
// with Docker's semantics; hostile image values are refused here, before anything starts.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "benchrun/oci/manifest.hpp"
#include "benchrun/run/spec.hpp"

namespace benchrun::run {

struct ProcessConfig {
  std::vector<std::string> argv;
  std::vector<std::string> env;
  std::string cwd;
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
};

// rootfd: the image's unpacked root (read-only), used to resolve user and group names.
ProcessConfig resolve_process(const oci::ImageConfig& image, const RunSpec& spec, int rootfd);

// Lexically normalises an absolute path inside the image ("/a/./b/" -> "/a/b"); throws ConfigError
// (naming what) when it is relative, escapes the root with "..", or points into /proc, /sys, /dev.
std::string checked_image_path(const std::string& path, const std::string& what);

// Resolves an absolute, checked path inside the image root as a process chrooted there would see it
// (symlinks followed within the root), then checks the result with checked_image_path. Missing
// trailing components are kept as given. Throws ConfigError naming what.
std::string resolve_image_dir(int rootfd, const std::string& path, const std::string& what);

// Reads a small file inside root (openat2 RESOLVE_IN_ROOT, no magic links); nullopt if missing.
std::optional<std::string> read_in_root(int rootfd, const std::string& path, size_t max_bytes);

}  // namespace benchrun::run
