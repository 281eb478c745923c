// mounts.cpp: init's mounts and the workload's root disk with its /tmp. The rest of the workload's
// filesystem (/proc, /dev, /sys, masked and read-only paths) is the sandbox child's
// (cpp/src/sandbox/mounts.cpp).
#include "init/mounts.hpp"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <thread>

#include "benchrun/common/error.hpp"

namespace benchrun::guest {

namespace {

void do_mount(const char* source, const std::string& target, const char* type, unsigned long flags,
              const char* data) {
  if (::mount(source, target.c_str(), type, flags, data) != 0)
    throw_errno(std::string("mount ") + type, target);
}

// mkdir path (mode exact: init runs with umask 0) unless it exists; it must be a real directory.
void ensure_dir(const std::string& path, mode_t mode) {
  if (::mkdir(path.c_str(), mode) == 0) return;
  if (errno != EEXIST) throw_errno("mkdir", path);
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) throw_errno("stat", path);
  if (S_ISLNK(st.st_mode)) throw_errno(ELOOP, "mount point", path);
  if (!S_ISDIR(st.st_mode)) throw_errno(ENOTDIR, "mount point", path);
}

}  // namespace

void mount_early() {
  // Each may already be mounted (CONFIG_DEVTMPFS_MOUNT mounts /dev for the initramfs): EBUSY.
  auto mount_once = [](const char* source, const char* target, const char* type,
                       unsigned long flags) {
    if (::mount(source, target, type, flags, nullptr) != 0 && errno != EBUSY)
      throw_errno(std::string("mount ") + type, target);
  };
  mount_once("devtmpfs", "/dev", "devtmpfs", MS_NOSUID);
  mount_once("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC);
  mount_once("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC);
}

void wait_for_block_device(const std::string& path, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    struct stat st {};
    int err = ::stat(path.c_str(), &st) == 0 ? (S_ISBLK(st.st_mode) ? 0 : ENOTBLK) : errno;
    if (err == 0) return;
    if (err != ENOENT || std::chrono::steady_clock::now() >= deadline)
      throw_errno(err, "wait for block device", path);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

void mount_root(const std::string& device, const std::string& root) {
  ensure_dir(root, 0755);
  do_mount(device.c_str(), root, "ext4", MS_NODEV, nullptr);
}

void populate_root(const std::string& root, uint64_t tmpfs_bytes) {
  ensure_dir(root + "/tmp", 01777);
  const std::string options =
      "mode=1777" + (tmpfs_bytes ? ",size=" + std::to_string(tmpfs_bytes) : std::string());
  do_mount("tmpfs", root + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, options.c_str());
}

}  // namespace benchrun::guest
