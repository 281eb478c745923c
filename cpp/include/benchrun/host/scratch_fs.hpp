// scratch_fs.hpp: a run's size-bounded filesystem for its writable layer: a sparse ext4 image file
// on a loop device, mounted detached (fsopen/fsmount), so that a run that fills it gets ENOSPC
// (blocks and inodes) and the host's filesystem only ever holds one file of at most that size.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "benchrun/common/unique_fd.hpp"

namespace benchrun::host {

// The mount exists only as an fd: it is in no mount table until a run's child attaches it in its
// own mount namespace (move_mount), and it is unmounted when the last reference goes (this fd, that
// namespace, an overlay on top); the loop device then detaches itself (LO_FLAGS_AUTOCLEAR) and
// drops the image file, which was unlinked as soon as the device held it.
class ScratchFs {
 public:
  // Creates image_path (size bytes, sparse; unlinked again once attached) from a formatted template
  // cached in template_dir (built once per size with mkfs, an ext4 without journal, resize inode or
  // lazy inode-table initialisation), attaches it to a free loop device and mounts it nodev,nosuid.
  // The mount's root holds the empty directories "upper" and "work" (root-owned, 0755).
  // SandboxError{stage= "disk"} when a step fails (no loop devices, not root, no mkfs), SysError
  // for the files.
  static ScratchFs create(const std::string& image_path, uint64_t size,
                          const std::string& template_dir, const std::string& mkfs);

  ScratchFs(ScratchFs&&) noexcept = default;
  ScratchFs& operator=(ScratchFs&&) noexcept = default;

  // The detached mount (O_PATH-like; a directory fd for *at() calls and move_mount).
  int mount_fd() const noexcept { return mount_.get(); }

 private:
  ScratchFs() = default;
  UniqueFd mount_;
};

// Clears the loop devices whose backing file lies under run_dir in an entry for which
// is_stale(name) is true (what a SIGKILLed runner may leave while a mount still held them):
// LOOP_CLR_FD, which on a device still in use only marks it to detach at its last close. Returns
// how many it cleared.
int clear_stale_loop_devices(const std::string& run_dir, bool (*is_stale)(std::string_view name),
                             const std::string& sys_block = "/sys/block");

}  // namespace benchrun::host
