// child_plan.cpp: validates a SpawnSpec and lays it out as the child's plan (parent side, may
// allocate and throw).
#include "sandbox/child_plan.hpp"

#include <fcntl.h>
#include <limits.h>

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
void require_overlay_safe(std::string_view what, const std::string& path, bool allow_colon) {
  require_absolute(what, path);
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
    require_overlay_safe("lowerdir", spec.lowerdir, /*allow_colon=*/true);
    require_overlay_safe("upperdir", spec.upperdir, false);
    require_overlay_safe("workdir", spec.workdir, false);
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
      const fs::path dir = fs::path(spec.merged).parent_path();
      for (const std::string* p : {&spec.upperdir, &spec.workdir})
        if (fs::path(*p).parent_path() != dir)
          throw ConfigError("spawn: upperdir, workdir and merged must be in one directory ('" +
                            dir.string() + "') for an id-mapped run");
      run_dir_ = dir.string();
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
    // Relative to the run directory, the child's cwd when it mounts (see attach_idmapped_lower).
    namespace fs = std::filesystem;
    root_ = fs::path(spec.merged).filename().string();
    overlay_options_ = "lowerdir=lower,upperdir=" + fs::path(spec.upperdir).filename().string() +
                       ",workdir=" + fs::path(spec.workdir).filename().string() +
                       ",index=off,metacopy=off,redirect_dir=nofollow,userxattr";
  } else if (overlay) {
    // index/metacopy off and redirects neither created nor followed: the per-run upper stays a
    // plain tree, and overlay xattrs planted in an image's lowerdir are ignored.
    overlay_options_ = "lowerdir=" + spec.lowerdir + ",upperdir=" + spec.upperdir +
                       ",workdir=" + spec.workdir + ",index=off,metacopy=off,redirect_dir=nofollow";
    // In a user namespace overlayfs may not use trusted.* xattrs; user.* ones (Linux >= 5.11) do.
    if (spec.user_namespace) overlay_options_ += ",userxattr";
  }
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
  plan_.hostname = hostname_.c_str();
  plan_.hostname_len = hostname_.size();
  plan_.loopback_up = !spec.network;
  plan_.user_namespace = spec.user_namespace;
  plan_.id_mapped = id_mapped;
  plan_.run_dir = run_dir_.c_str();
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
  plan_.cwd = cwd_.c_str();
  plan_.argv = argv_ptrs_.data();
  plan_.envp = env_ptrs_.data();
  plan_.exec_paths = exec_path_ptrs_.data();
  plan_.exec_path_count = exec_path_ptrs_.size();
  plan_.stdout_fd = spec.stdout_fd;
  plan_.stderr_fd = spec.stderr_fd;
}

}  // namespace benchrun::sandbox
