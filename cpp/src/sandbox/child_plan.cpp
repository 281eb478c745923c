// child_plan.cpp: validates a SpawnSpec and lays it out as the child's plan (parent side, may
// allocate and throw).
#include "sandbox/child_plan.hpp"

#include <fcntl.h>
#include <limits.h>
#include <string.h>

#include <algorithm>
#include <filesystem>
#include <string_view>

#include "benchrun/common/error.hpp"
#include "benchrun/common/fs.hpp"

namespace benchrun::sandbox {

namespace {

void require_absolute(std::string_view what, const std::string& path) {
  if (path.empty() || path.front() != '/')
    throw ConfigError("spawn: " + std::string(what) + " '" + path + "' is not an absolute path");
  if (path.size() >= PATH_MAX)
    throw ConfigError("spawn: " + std::string(what) + " is longer than PATH_MAX");
}

// overlayfs splits its options at ',' and lowerdir at ':' (the layer separator, allowed in
// lowerdir only); rather than escape, refuse paths that contain them.
void require_overlay_safe(std::string_view what, const std::string& path, bool allow_colon,
                          bool relative = false) {
  if (relative && (path.empty() || path.front() == '/'))
    throw ConfigError("spawn: " + std::string(what) + " '" + path +
                      "' must be relative to layer_dir");
  if (!relative) require_absolute(what, path);
  for (char c : path) {
    if (c == ',' || c == '\\' || (c == ':' && !allow_colon))
      throw ConfigError("spawn: " + std::string(what) + " '" + path + "' contains '" +
                        std::string(1, c) + "', which overlayfs options cannot carry");
  }
}

std::string find_path_variable(const std::vector<std::string>& env) {
  for (const auto& kv : env)
    if (kv.rfind("PATH=", 0) == 0) return kv.substr(5);  // the first, as getenv would
  return kDefaultPath;
}

// argv[0] as execvpe would try it: itself when it contains '/', else each PATH entry + "/" + it
// (an empty entry is the working directory).
std::vector<std::string> exec_candidates(const std::string& file, const std::string& path) {
  if (file.find('/') != std::string::npos) return {file};
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t end = path.find(':', start);
    std::string dir =
        path.substr(start, end == std::string::npos ? std::string::npos : end - start);
    out.push_back(dir.empty() ? file : dir + "/" + file);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

}  // namespace

PreparedChild::PreparedChild(const SpawnSpec& spec, int cap_last, RootKind root_kind) {
  const bool overlay = root_kind == RootKind::kOverlay;
  if (overlay) {
    const bool relative = !spec.layer_dir.empty();
    if (relative) require_absolute("layer_dir", spec.layer_dir);
    require_overlay_safe("lowerdir", spec.lowerdir, /*allow_colon=*/true, relative);
    require_overlay_safe("upperdir", spec.upperdir, false, relative);
    require_overlay_safe("workdir", spec.workdir, false, relative);
    if (spec.upper_mount_fd >= 0 && (!relative || spec.upper_mount.empty()))
      throw ConfigError("spawn: upper_mount_fd needs layer_dir and upper_mount");
  }
  require_absolute("merged", spec.merged);
  require_absolute("cwd", spec.cwd);
  if (spec.argv.empty() || spec.argv.front().empty())
    throw ConfigError("spawn: argv is empty (nothing to execute)");
  if (spec.hostname.size() > HOST_NAME_MAX)
    throw ConfigError("spawn: hostname '" + spec.hostname + "' is longer than " +
                      std::to_string(HOST_NAME_MAX) + " characters");

  const bool id_mapped = spec.user_namespace && spec.id_range.count > 0;
  if (id_mapped) {
    auto unmapped = [&](uint64_t id) { return id >= spec.id_range.count; };
    if (unmapped(spec.uid) || unmapped(spec.gid) ||
        std::any_of(spec.groups.begin(), spec.groups.end(), unmapped))
      throw ConfigError("the image's user " + std::to_string(spec.uid) + ":" +
                        std::to_string(spec.gid) + " (or a supplementary group) is outside the " +
                        std::to_string(spec.id_range.count) + " ids a run's user namespace maps");
    if (overlay) {
      namespace fs = std::filesystem;
      if (spec.layer_dir.empty() || spec.idmapped_lower.empty() ||
          fs::path(spec.merged).parent_path() != fs::path(spec.layer_dir))
        throw ConfigError("spawn: an id-mapped run needs layer_dir, merged in it and "
                          "idmapped_lower");
      require_absolute("idmapped_lower", spec.idmapped_lower);
    }
  } else if (spec.user_namespace && (spec.uid != 0 || spec.gid != 0)) {
    const std::string who =
        spec.uid != 0 ? "user " + std::to_string(spec.uid) : "group " + std::to_string(spec.gid);
    throw SandboxError(who + " is not available without root: only the calling user is mapped " +
                           "(run as root for other users)",
                       "user namespace");
  }

  root_ = spec.merged;
  if (overlay && id_mapped) {
    // Relative to layer_dir: the child mounts from there as the range's root, which may not
    // search the directories above it.
    root_ = std::filesystem::path(spec.merged).filename().string();
    lowerdir_ = spec.lowerdir;
  }
  if (overlay) {
    // index/metacopy off and redirects neither created nor followed: the per-run upper stays a
    // plain tree, and overlay xattrs planted in an image's lowerdir are ignored.
    overlay_options_ = "lowerdir=" + spec.lowerdir + ",upperdir=" + spec.upperdir +
                       ",workdir=" + spec.workdir + ",index=off,metacopy=off,redirect_dir=nofollow";
    // In a user namespace overlayfs may not use trusted.* xattrs; user.* ones (Linux >= 5.11) do.
    if (spec.user_namespace) overlay_options_ += ",userxattr";
  }
  layer_dir_ = spec.layer_dir;
  upper_mount_ = spec.upper_mount;
  tmpfs_options_ = "mode=1777";
  if (spec.tmpfs_bytes) tmpfs_options_ += ",size=" + std::to_string(spec.tmpfs_bytes);
  hostname_ = spec.hostname;
  cwd_ = spec.cwd;
  argv_ = spec.argv;
  env_ = spec.env;
  search_path_ = find_path_variable(env_);
  exec_paths_ = exec_candidates(argv_.front(), search_path_);
  rlimits_ = spec.rlimits;
  groups_ = spec.groups;
  filter_ = spec.seccomp;

  for (auto& s : argv_) argv_ptrs_.push_back(s.data());
  argv_ptrs_.push_back(nullptr);
  for (auto& s : env_) env_ptrs_.push_back(s.data());
  env_ptrs_.push_back(nullptr);
  for (auto& s : exec_paths_) exec_path_ptrs_.push_back(s.c_str());

  plan_.root_kind = root_kind;
  plan_.root = root_.c_str();
  if (overlay) plan_.overlay_options = overlay_options_.c_str();
  if (overlay && !layer_dir_.empty()) {
    plan_.layer_dir = layer_dir_.c_str();
    plan_.upper_mount = upper_mount_.c_str();
  }
  plan_.tmpfs_options = tmpfs_options_.c_str();
  plan_.hostname = hostname_.c_str();
  plan_.hostname_len = hostname_.size();
  plan_.loopback_up = !spec.network;
  plan_.user_namespace = spec.user_namespace;
  plan_.id_mapped = id_mapped;
  if (id_mapped) plan_.lower_attach = lowerdir_.c_str();
  plan_.rlimits = rlimits_.data();
  plan_.rlimit_count = rlimits_.size();
  plan_.uid = spec.uid;
  plan_.gid = spec.gid;
  plan_.groups = groups_.data();
  plan_.group_count = groups_.size();
  plan_.cap_last = cap_last;
  if (!filter_.empty()) {
    fprog_.len = static_cast<unsigned short>(filter_.size());
    if (fprog_.len != filter_.size())
      throw ConfigError("spawn: the seccomp program has more than 65535 instructions");
    fprog_.filter = filter_.data();
    plan_.seccomp = &fprog_;
  }
  if (!spec.tool_dir.empty()) {
    require_absolute("tool_dir", spec.tool_dir);
    require_absolute("tool_launcher", spec.tool_launcher);
    tool_dir_ = spec.tool_dir;
    tool_launcher_ = spec.tool_launcher;
    tool_out_options_ = spec.tool_out_options.empty() ? "mode=0700" : spec.tool_out_options;
    plan_.tool_dir = tool_dir_.c_str();
    plan_.tool_launcher = tool_launcher_.c_str();
    plan_.tool_out_options = tool_out_options_.c_str();
  }
  if (!spec.pid1.empty()) {
    require_absolute("pid1", spec.pid1);
    pid1_ = spec.pid1;
    plan_.pid1 = pid1_.c_str();
  }
  if (!spec.secrets.empty()) {
    secrets_ = spec.secrets;
    size_t bytes = 0;
    for (const auto& [name, data] : secrets_) {
      secret_files_.push_back(ChildSecret{name.c_str(), data.data(), data.size()});
      bytes += (data.size() + 4095) / 4096 * 4096 + 4096;
    }
    secret_options_ = "mode=0755,size=" + std::to_string(bytes + 4096) +
                      ",nr_inodes=" + std::to_string(secrets_.size() + 16);
    plan_.secrets = secret_files_.data();
    plan_.secret_count = secret_files_.size();
    plan_.secret_options = secret_options_.c_str();
  }
  plan_.cwd = cwd_.c_str();
  plan_.argv = argv_ptrs_.data();
  plan_.envp = env_ptrs_.data();
  plan_.exec_paths = exec_path_ptrs_.data();
  plan_.exec_path_count = exec_path_ptrs_.size();
  plan_.stdout_fd = spec.stdout_fd;
  plan_.stderr_fd = spec.stderr_fd;
}

PreparedChild::~PreparedChild() {
  for (auto& [name, data] : secrets_) explicit_bzero(data.data(), data.size());
}

}  // namespace benchrun::sandbox
