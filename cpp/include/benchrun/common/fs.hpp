// fs.hpp: small filesystem helpers: temp dirs, atomic files, locks, fd-relative tree removal.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "benchrun/common/unique_fd.hpp"

namespace benchrun {

// Opens path with flags (O_CLOEXEC added); throws SysError.
UniqueFd open_file(const std::filesystem::path& path, int flags, mode_t mode = 0644);

// Writes all of data to fd, through short writes and EINTR; SysError("write", what).
void write_all(int fd, std::string_view data, std::string_view what);

// Reads into buf until it is full or the file ends, through short reads and EINTR; returns the
// bytes read (< len only at end of file). SysError("read", what).
size_t read_full(int fd, void* buf, size_t len, std::string_view what);

// Reads a whole file, refusing files larger than max_bytes (ImageError names the path).
std::string read_file(const std::filesystem::path& path, size_t max_bytes);

// Writes data to path atomically: temp file in the same dir, fsync, rename.
void write_file_atomic(const std::filesystem::path& path, std::string_view data);

// Publishes a finished temp file (fd open on tmp): mode 0644, fsync, then rename(tmp, target), so
// readers see no target or the whole file, also after a crash. SysError naming the step.
void publish_file(int fd, const std::string& tmp, const std::filesystem::path& target);

// mkdir -p, throwing SysError.
void make_dirs(const std::filesystem::path& path, mode_t mode = 0755);

// Removes a tree without following symlinks; missing is fine. Makes read-only dirs writable first.
void remove_tree(const std::filesystem::path& path);

// A directory created with mkdtemp under parent, removed (recursively) on destruction unless
// released.
class TempDir {
 public:
  TempDir(const std::filesystem::path& parent, std::string_view prefix);
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  TempDir(TempDir&& o) noexcept;
  TempDir& operator=(TempDir&&) = delete;
  ~TempDir();
  const std::filesystem::path& path() const noexcept { return path_; }
  std::filesystem::path release() noexcept;

 private:
  std::filesystem::path path_;
};

// A flock on a lock file (exclusive, or shared), held for the object's lifetime.
class FileLock {
 public:
  explicit FileLock(const std::filesystem::path& path, bool shared = false);
  FileLock(FileLock&&) noexcept = default;
  FileLock& operator=(FileLock&&) noexcept = default;

 private:
  UniqueFd fd_;
};

}  // namespace benchrun
