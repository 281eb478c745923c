// mounts.hpp: the sandbox's filesystem steps (overlay root, /proc, /dev, /tmp, /sys, masked and
// read-only paths, pivot_root or switch_root's move), in the child's dialect.
//
// Every function runs between clone and exec: no allocation, returns 0 or an errno. After
// mount_overlay_and_enter() the working directory is the new root and every other path is relative
// to it, so nothing needs to be joined at run time.
#pragma once

#include <sys/types.h>

#include <cstddef>

#include "sandbox/child.hpp"

namespace benchrun::sandbox {

// mount(NULL, "/", MS_REC|MS_PRIVATE): nothing we mount propagates back to the host.
int make_mounts_private() noexcept;
// Mounts overlayfs on merged and chdirs into it.
int mount_overlay_and_enter(const char* merged, const char* options) noexcept;

int mount_proc() noexcept;
int mount_dev_tmpfs() noexcept;
int create_dev_nodes(int* failed_index) noexcept;  // null zero full random urandom tty
int mount_devpts(bool tty_gid) noexcept;  // tty_gid: ptys get gid 5 (not in a user namespace)
// options: "mode=1777[,size=N]" (nullptr: "mode=1777", the kernel's default size, half of RAM).
int mount_dev_shm(const char* options) noexcept;
int create_dev_links(int* failed_index) noexcept;  // fd stdin stdout stderr ptmx
int mount_tmp(const char* options) noexcept;       // as mount_dev_shm
int mount_sys() noexcept;                          // read-only; skipped when sysfs refuses (EPERM)
int mask_paths(int* failed_index) noexcept;
int make_readonly_paths(int* failed_index) noexcept;
// pivot_root(".", ".") then detach the old root: the working directory becomes "/".
int pivot_to_cwd() noexcept;
// switch_root(8)'s way, where the old root is an initramfs that pivot_root refuses to move: the
// working directory's mount is moved onto "/" and chroot'ed into; it becomes "/".
int move_cwd_to_root() noexcept;
// Instruction counting's tools (SpawnSpec::tool_dir), in the new root (the cwd) before
// pivot_root: a tmpfs on /.benchrun-tools (a real directory of the image, created if missing; a
// symlink there is refused), tool_dir bound read-only at its "valgrind", tool_launcher at its
// "launch", a tmpfs with out_options at its "out"; then the tmpfs itself goes read-only.
int mount_tools(const char* tool_dir, const char* tool_launcher, const char* out_options,
                int* failed_step) noexcept;
// --init: host_path (absolute) bound read-only, nosuid, nodev at /.benchrun-pid1 of the new root
// (the cwd), an empty file created for it (an existing non-regular file or symlink: EEXIST).
int mount_pid1(const char* host_path) noexcept;
// Secrets (SpawnSpec::secrets), in the new root (the cwd) before pivot_root: a tmpfs with options
// on /run/secrets (created if missing; a symlink at /run or /run/secrets is refused), one file per
// secret of mode 0400 owned by uid:gid, then the tmpfs goes read-only.
int mount_secrets(const ChildSecret* secrets, size_t count, const char* options, uid_t uid,
                  gid_t gid, int* failed_step) noexcept;
// mkdir -p for an absolute path (mode 0755); existing directories are fine.
int make_dirs(const char* path) noexcept;

// Names for error messages (the parent maps failed_index back); nullptr when out of range.
const char* dev_node_path(int index) noexcept;
const char* dev_link_path(int index) noexcept;
const char* masked_path(int index) noexcept;
const char* readonly_path(int index) noexcept;
const char* tool_mount_step(int index) noexcept;
const char* secret_mount_step(int index) noexcept;

}  // namespace benchrun::sandbox
