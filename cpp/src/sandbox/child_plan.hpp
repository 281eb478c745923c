// child_plan.hpp: turns a SpawnSpec into the child's plan (C strings, pointer arrays, the overlay
// options, PATH candidates), in the parent, before clone. The sandbox's spawn and the microVM's
// init both prepare their child here.
#pragma once

#include <linux/filter.h>

#include <string>
#include <vector>

#include "benchrun/common/unique_fd.hpp"
#include "benchrun/sandbox/spawn.hpp"
#include "sandbox/child.hpp"

namespace benchrun::sandbox {

// Owns the storage ChildPlan points into. Neither copyable nor movable (the plan points into it).
class PreparedChild {
 public:
  // Validates spec (ConfigError) and prepares everything but the file descriptors. kPrepared: the
  // root is spec.merged as it is (lowerdir, upperdir and workdir are not used).
  PreparedChild(const SpawnSpec& spec, int cap_last, RootKind root_kind = RootKind::kOverlay);
  ~PreparedChild();  // wipes the secrets' bytes
  PreparedChild(const PreparedChild&) = delete;
  PreparedChild& operator=(const PreparedChild&) = delete;

  ChildPlan& plan() noexcept { return plan_; }
  // The PATH searched for argv[0] (from spec.env, or the default), for error messages.
  const std::string& search_path() const noexcept { return search_path_; }
  const std::vector<std::string>& exec_paths() const noexcept { return exec_paths_; }

 private:
  std::string root_, overlay_options_, layer_dir_, upper_mount_, tmpfs_options_, hostname_, cwd_,
      search_path_, tool_dir_, tool_launcher_, tool_out_options_, pid1_;
  std::vector<std::string> argv_, env_, exec_paths_;
  std::vector<char*> argv_ptrs_, env_ptrs_;
  std::vector<const char*> exec_path_ptrs_;
  std::vector<Rlimit> rlimits_;
  std::vector<gid_t> groups_;
  std::vector<sock_filter> filter_;
  sock_fprog fprog_{};
  std::vector<std::pair<std::string, std::string>> secrets_;  // (name, content)
  std::vector<ChildSecret> secret_files_;
  std::string secret_options_;
  std::string lowerdir_;  // id-mapped runs: where the idmapped image is attached in layer_dir
  ChildPlan plan_;
};

// The PATH used when spec.env has none (Docker's default).
inline constexpr const char* kDefaultPath =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

}  // namespace benchrun::sandbox
