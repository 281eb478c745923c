// ext4_image.cpp: size a tree, then build its ext4 image once with mkfs.ext4 -d (e2fsprogs).
//
// mke2fs(8) -d copies a directory into the new filesystem (ownership, modes incl. setuid, times,
// xattrs, hard links, symlinks, device nodes) without mounting anything, so no loop device or
// privilege beyond reading the tree is needed. The size is estimated from the tree rather than
// grown by trial: (apparent size + allocation-group metadata) x (1 + ratio) + headroom. The image
// file is sparse, so headroom costs address space, not disk. One retry at twice the size and
// inode count covers trees the estimate misjudges (huge directories, many large xattrs).
//
// No journal (-O ^has_journal): the image is the root disk of runs that QEMU opens in snapshot
// mode and of nothing else, so crash consistency buys nothing, while a journal costs 16 MiB (at
// these sizes; up to 1 GiB on big ones) of blocks zeroed by lazy_journal_init=0 in every cached
// image, and jbd2 commits inside the guest while the benchmark runs. Measured with e2fsprogs
// 1.47.0 on a loaded 2-core VM, mkfs time is the same either way within noise: a busybox tree
// 0.06-0.09 s (3 MiB on disk without a journal, 19 MiB with), /usr/lib/python3{,.11} (117 MB,
// 5.7k inodes) 1.0-1.5 s (112 MiB vs 128 MiB). lazy_itable_init=0 zeroes the inode tables now
// (cheap at the -N we pass) so the guest does not start ext4lazyinit during a measurement.
//
// mke2fs -d inserts directory entries linearly and leaves directories unindexed: a directory of
// n entries costs O(n^2) (3000 files in one directory 2.2 s, 6000 6.8 s; 6000 spread over 30
// directories 0.6 s).
#include "benchrun/rootfs/ext4_image.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <filesystem>
#include <set>
#include <utility>

#include "benchrun/common/dir.hpp"
#include "benchrun/common/error.hpp"
#include "benchrun/common/free_space.hpp"
#include "benchrun/common/fs.hpp"
#include "benchrun/common/scope_exit.hpp"
#include "benchrun/common/subprocess.hpp"
#include "benchrun/common/text.hpp"
#include "benchrun/common/unique_fd.hpp"
#include "benchrun/oci/digest.hpp"

namespace benchrun::rootfs {

namespace fs = std::filesystem;

namespace {

constexpr uint64_t kBlock = 4096;
constexpr uint64_t kInodeSize = 256;
constexpr uint64_t kFastSymlinkMax = 59;  // targets this short live inside the inode
constexpr uint64_t kExtentSpan = 128ull << 20;
constexpr uint64_t kMiB = 1ull << 20;
// Superblock and descriptor backups, reserved GDT blocks, bitmaps, lost+found: a few MiB for any
// size we build, plus a share that grows with the number of block groups.
constexpr uint64_t kFixedMetadata = 8 * kMiB;
constexpr uint64_t kInodeRatio = 16384;  // mke2fs.conf's default bytes-per-inode, for headroom

uint64_t round_up(uint64_t v, uint64_t to) { return (v + to - 1) / to * to; }

struct TreeWalk {
  uint64_t bytes = 0;
  uint64_t inodes = 0;
  std::set<std::pair<dev_t, ino_t>> linked;  // inodes with nlink > 1 already counted

  void add_inode(const struct stat& st) {
    ++inodes;
    bytes += kInodeSize;
    if (S_ISREG(st.st_mode)) {
      const uint64_t size = static_cast<uint64_t>(st.st_size);
      bytes += round_up(size, kBlock);
      // Four extents fit in the inode; beyond that extent-tree leaves (340 extents each).
      if (size > 4 * kExtentSpan) bytes += kBlock * (1 + size / (340 * kExtentSpan));
    } else if (S_ISLNK(st.st_mode) && static_cast<uint64_t>(st.st_size) > kFastSymlinkMax) {
      bytes += kBlock;
    }
  }

  void walk(Dir& dir) {
    uint64_t dir_bytes = 12 + 12;  // "." and ".."
    while (std::optional<DirEntry> e = dir.next()) {
      const std::string name(e->name);
      dir_bytes += round_up(8 + name.size(), 4);
      struct stat st {};
      if (::fstatat(dir.fd(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
        throw_errno("stat", dir.where() + "/" + name);
      if (!S_ISDIR(st.st_mode) && st.st_nlink > 1 && !linked.emplace(st.st_dev, st.st_ino).second)
        continue;  // another name of an inode already counted
      add_inode(st);
      if (!S_ISDIR(st.st_mode)) continue;
      Dir child = Dir::open_at(dir.fd(), name, dir.where() + "/" + name);
      walk(child);
    }
    // mke2fs -d leaves directories linear, but the guest kernel indexes a multi-block one when
    // it adds an entry: keep a block for the htree root.
    const uint64_t blocks = round_up(dir_bytes, kBlock);
    bytes += blocks > kBlock ? blocks + kBlock : blocks;
  }
};

struct Geometry {
  uint64_t size_bytes;
  uint64_t inodes;
};

Geometry geometry(uint64_t apparent, uint64_t tree_inodes, const Ext4Options& o) {
  if (!(o.headroom_ratio >= 0.0) || o.headroom_ratio > 100.0)
    throw ConfigError("ext4 image: headroom_ratio " + std::to_string(o.headroom_ratio) +
                      " is outside [0, 100]");
  const double scale = 1.0 + o.headroom_ratio;
  const double need = static_cast<double>(apparent + apparent / 32 + kFixedMetadata) * scale +
                      static_cast<double>(o.headroom_bytes);
  const double inodes = std::ceil(static_cast<double>(tree_inodes) * scale) +
                        static_cast<double>(o.headroom_bytes / kInodeRatio) + 64;
  // ext4 with 4 KiB blocks stops at 16 TiB without the 64bit feature; 2^32 inodes is its hard
  // limit.
  if (need > static_cast<double>(uint64_t{1} << 44) || inodes > 4.0e9)
    throw ConfigError("ext4 image: " + std::to_string(static_cast<uint64_t>(need)) + " bytes / " +
                      std::to_string(static_cast<uint64_t>(inodes)) + " inodes is too large");
  return {round_up(static_cast<uint64_t>(need), kMiB), static_cast<uint64_t>(inodes)};
}

// mkfs's stderr as one line for an error message.
std::string one_line(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '\n') {
      if (!out.empty() && out.back() != ' ') out += "; ";
    } else {
      out += c;
    }
  }
  while (!out.empty() && (out.back() == ' ' || out.back() == ';')) out.pop_back();
  return printable(out, 600);
}

// Runs mkfs into path; returns "" on success, else mkfs's message. Throws VmError when mkfs
// cannot be run at all or runs out of time.
std::string run_mkfs(const std::string& tree, const std::string& path, const Geometry& g,
                     const Ext4Options& o) {
  // clang-format off
  const std::vector<std::string> argv = {
      o.mkfs, "-q", "-F", "-d", tree,
      "-E", "lazy_itable_init=0,lazy_journal_init=0,root_owner=0:0",
      "-L", "benchrun", "-b", "4096", "-I", "256", "-N", std::to_string(g.inodes), "-m", "0",
      "-O", "^has_journal",
      path, std::to_string(g.size_bytes / kMiB) + "M"};
  // clang-format on
  SubprocessOptions so;
  so.timeout = o.timeout;
  SubprocessResult r;
  try {
    r = run_subprocess(argv, so);
  } catch (const SysError& e) {
    throw VmError("run '" + o.mkfs + "': " + e.what() + " (hint: install e2fsprogs >= 1.43)");
  }
  if (r.timed_out)
    throw VmError("run '" + o.mkfs + "' for '" + tree + "': killed after " +
                  std::to_string(o.timeout.count()) + " ms");
  if (r.ok()) return "";
  std::string msg = one_line(r.stderr_data.empty() ? r.stdout_data : r.stderr_data);
  if (r.signal != 0) return "killed by signal " + std::to_string(r.signal) + ": " + msg;
  return "exit " + std::to_string(r.exit_code) + ": " + msg;
}

// Removes .<hex>.ext4.* temp files left by a builder that died; called with the key's lock held.
void sweep_leftovers(const fs::path& dir, const std::string& hex) {
  const std::string prefix = "." + hex + ".ext4.";
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.compare(0, prefix.size(), prefix) == 0) ::unlink(entry.path().c_str());
  }
}

bool is_file(const fs::path& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

}  // namespace

uint64_t tree_apparent_size(const std::string& tree, uint64_t* inodes) {
  Dir root = Dir::open(tree);
  struct stat st {};
  if (::fstat(root.fd(), &st) != 0) throw_errno("stat", tree);
  TreeWalk walk;
  walk.add_inode(st);
  walk.walk(root);
  if (inodes) *inodes = walk.inodes;
  return walk.bytes;
}

std::string ext4_image(const std::string& tree, const std::string& key,
                       const std::string& cache_dir, const Ext4Options& options) {
  if (!oci::Digest::valid(key))
    throw ConfigError("ext4 image key '" + printable(key) +
                      "': expected a content digest like sha256:<64 lowercase hex>");
  const std::string hex = oci::Digest::parse(key).hex();
  if (cache_dir.empty()) throw ConfigError("ext4 image: no cache directory given");
  const fs::path dir = fs::path(cache_dir) / "ext4";
  const fs::path target = dir / (hex + ".ext4");
  if (is_file(target)) return target.string();

  struct stat st {};
  if (::stat(tree.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    throw ConfigError("ext4 image of '" + tree + "': not a directory");
  make_dirs(dir);
  // The images hold the trees' setuid binaries and private files: only the owner reaches them.
  if (::chmod(dir.c_str(), 0700) != 0) throw_errno("chmod", dir.string());
  const fs::path lock_path = dir / ("." + hex + ".lock");
  FileLock lock(lock_path);
  if (is_file(target)) return target.string();  // built while we waited
  sweep_leftovers(dir, hex);

  uint64_t tree_inodes = 0;
  const uint64_t apparent = tree_apparent_size(tree, &tree_inodes);
  Geometry g = geometry(apparent, tree_inodes, options);
  // The file is sparse, but mkfs writes about the tree's size (plus inode tables) in real blocks.
  require_free_space(dir.string(), apparent + tree_inodes * kInodeSize + kFixedMetadata,
                     options.min_free_bytes, "build the ext4 image of '" + tree + "'");

  std::string tmp = (dir / ("." + hex + ".ext4.XXXXXX")).string();
  int raw = ::mkostemp(tmp.data(), O_CLOEXEC);
  if (raw < 0) throw_errno("mkstemp", tmp);
  UniqueFd fd(raw);
  ScopeExit remove_tmp([&] { ::unlink(tmp.c_str()); });

  std::string failure;
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (::ftruncate(fd.get(), 0) != 0 ||
        ::ftruncate(fd.get(), static_cast<off_t>(g.size_bytes)) != 0)
      throw_errno("truncate", tmp);
    failure = run_mkfs(tree, tmp, g, options);
    if (failure.empty() || failure.find("Could not allocate") == std::string::npos) break;
    g = {g.size_bytes * 2, g.inodes * 2};  // the estimate was short: one retry, twice as large
  }
  if (!failure.empty())
    throw ImageError("mkfs.ext4 '" + tree + "' (" + std::to_string(g.size_bytes / kMiB) + " MiB, " +
                     std::to_string(g.inodes) + " inodes): " + failure);
  publish_file(fd.get(), tmp, target);
  remove_tmp.release();
  // The lock file stays: unlinking it would let a builder that waits on the old inode and one
  // that creates a new file run at once (after a prune), and sweep each other's temp files.
  return target.string();
}

}  // namespace benchrun::rootfs
