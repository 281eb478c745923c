// mounts.hpp: init's filesystems: its own /dev, /proc, /sys, and the workload's root (the image's
// ext4 device) with the same /tmp, /dev and /sys the sandbox backend gives a workload.
#pragma once

#include <chrono>
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

// Below root (the workload's view once it switched into it): tmpfs /tmp (1777), a minimal tmpfs
// /dev (null zero full random urandom tty, fd/stdin/stdout/stderr links, a private devpts with
// ptmx, tmpfs /dev/shm), read-only sysfs /sys, and an empty /proc for the workload's own procfs
// (mounted by the workload's child, inside its pid namespace). Never devtmpfs: it would expose the
// root disk and the host channel's port to a uid-0 workload. Mount points must be real directories
// in the image (created if missing): a symlink there would resolve in init's view, outside root,
// so it is refused (ELOOP). Throws SysError.
void populate_root(const std::string& root);

}  // namespace benchrun::guest
