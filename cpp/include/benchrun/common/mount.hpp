// mount.hpp: a mount on the host's mount table that is detached when its owner goes (RAII), and
// the sweep of mounts a killed owner left under a directory.
#pragma once

#include <string>
#include <vector>

namespace benchrun {

class Mount {
 public:
  Mount() = default;
  // mount(2); SysError naming the target on failure.
  static Mount make(const std::string& source, const std::string& target, const std::string& type,
                    unsigned long flags, const std::string& data);
  Mount(Mount&& o) noexcept : target_(std::move(o.target_)) { o.target_.clear(); }
  Mount& operator=(Mount&& o) noexcept;
  Mount(const Mount&) = delete;
  Mount& operator=(const Mount&) = delete;
  ~Mount() { detach(); }
  // umount2(MNT_DETACH): gone from the mount table at once, freed at its last user. Idempotent.
  void detach() noexcept;
  const std::string& target() const noexcept { return target_; }

 private:
  std::string target_;
};

// The mount points at or under dir in mountinfo (this process's mount namespace), deepest first.
std::vector<std::string> mounts_under(const std::string& dir,
                                      const std::string& mountinfo = "/proc/self/mountinfo");
// Detaches every mount at or under dir (what a SIGKILLed runner left); returns how many.
int detach_mounts_under(const std::string& dir);

}  // namespace benchrun
