// ext4_image.hpp: a cached ext4 disk image of an unpacked rootfs tree, the microVM's root disk.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace benchrun::rootfs {

struct Ext4Options {
  uint64_t headroom_bytes = 256ull << 20;  // free space on top of the tree (the file is sparse)
  double headroom_ratio = 0.25;            // the tree's size is scaled by 1 + ratio
  std::string mkfs = "mkfs.ext4";          // e2fsprogs >= 1.43 (-d); a name is looked up in PATH
  std::chrono::milliseconds timeout = std::chrono::minutes(30);
  // Kept free on the cache's filesystem: the image needs about the tree's size in real blocks, and
  // is refused (ImageTooLarge) when that would eat into the reserve. UINT64_MAX = 5 % of the
  // filesystem, at most 1 GiB.
  uint64_t min_free_bytes = UINT64_MAX;
};

// Bytes the tree needs on ext4 with 4 KiB blocks, not following symlinks: each regular file
// rounded up to whole blocks (hard links counted once), directory blocks, long symlink targets,
// and 256 bytes of inode table per inode. When inodes is not null it receives the inode count
// (the root included). SysError for an unreadable directory.
uint64_t tree_apparent_size(const std::string& tree, uint64_t* inodes = nullptr);

// Returns <cache_dir>/ext4/<hex>.ext4, building it first unless it exists: an ext4 filesystem
// made by mkfs.ext4 -d from tree, root-owned root directory, label "benchrun", no journal.
// key is the tree's content digest ("sha256:<64 hex>", e.g. its chain ID); anything else is a
// ConfigError, and only its hex part names the file. Concurrent builders of one key wait for each
// other (a lock file) and the image appears atomically (temp file + rename). ImageError with
// mkfs's message when it fails; VmError when mkfs cannot be run or times out.
std::string ext4_image(const std::string& tree, const std::string& key,
                       const std::string& cache_dir, const Ext4Options& options = {});

}  // namespace benchrun::rootfs
