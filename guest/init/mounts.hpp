// mounts.hpp: init's filesystems: its own /dev, /proc, /sys, and the workload's root (the image's
// ext4 device) with its /tmp.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace benchrun::guest {

// devtmpfs on /dev, proc on /proc, sysfs on /sys (init's own view). Throws SysError.
void mount_early();

// Waits (bounded) until path exists as a block device: devtmpfs creates the node when the driver
// probes it, which may come a little after its module was loaded. Throws SysError (ENOENT /
// ENOTBLK) when it has not appeared by then.
void wait_for_block_device(const std::string& path, std::chrono::milliseconds timeout);

// Mounts the image's ext4 root read-write (the host gives each run its own copy or a snapshot)
// and nodev, so that a device node planted in an image cannot open guest devices. Throws SysError.
void mount_root(const std::string& device, const std::string& root);

// tmpfs /tmp (1777) below root, mounted here in init's mount namespace, where it outlives the
// workload's so that init can collect outputs written there. /proc, /dev (a minimal tmpfs, never
// devtmpfs, which would expose the root disk and the host channel's port to a uid-0 workload) and
// /sys are the workload child's, as in the sandbox (RootKind::kPrepared). The mount point must be
// a real directory in the image (created if missing): a symlink there would resolve in init's
// view, outside root, so it is refused (ELOOP). Throws SysError.
// tmpfs_bytes: size= of /tmp (half the workload's memory limit); 0: the kernel's, half of RAM.
void populate_root(const std::string& root, uint64_t tmpfs_bytes);

}  // namespace benchrun::guest
