// dir.hpp: a directory stream owned by RAII, and the names in a directory ("." and ".." skipped).
#pragma once

#include <dirent.h>

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace benchrun {

struct DirEntry {
  std::string_view name;  // valid until the next call of next() on the same Dir
  unsigned char type;     // d_type (DT_DIR, DT_REG, ...); DT_UNKNOWN where the filesystem omits it
};

// An open directory stream (closedir on destruction). Move-only. Errors are SysError naming the
// directory ("opendir", "readdir", "stat").
class Dir {
 public:
  // Opens path (symlinks followed).
  static Dir open(const std::filesystem::path& path);
  // Like open, but nullopt when nothing exists at path (ENOENT).
  static std::optional<Dir> open_if_exists(const std::filesystem::path& path);
  // Opens name under the directory dirfd without following a symlink at name (O_NOFOLLOW), so a
  // tree walk cannot be led out of the tree. where names the directory in errors.
  static Dir open_at(int dirfd, const std::string& name, std::string where);
  // Reads the directory dirfd refers to, from its start, through a duplicate: dirfd stays the
  // caller's (it shares the file offset, so do not read dirfd while the Dir lives).
  static Dir from_fd(int dirfd, std::string where);

  Dir(Dir&& o) noexcept;
  Dir& operator=(Dir&& o) noexcept;
  Dir(const Dir&) = delete;
  Dir& operator=(const Dir&) = delete;
  ~Dir();

  // The next entry other than "." and ".."; nullopt at the end.
  std::optional<DirEntry> next();
  // Whether e is a directory itself (a symlink to one is not): d_type, or fstatat where that is
  // DT_UNKNOWN. false when the entry vanished meanwhile.
  bool is_dir(const DirEntry& e) const;
  // The stream's fd, for *at() calls on its entries; owned by the Dir.
  int fd() const noexcept;
  const std::string& where() const noexcept { return where_; }

 private:
  Dir(DIR* dir, std::string where) noexcept : dir_(dir), where_(std::move(where)) {}
  static Dir adopt(int fd, std::string where);  // fdopendir(fd), closing fd on failure
  DIR* dir_ = nullptr;
  std::string where_;
};

// The names in a directory (unsorted, "." and ".." skipped).
std::vector<std::string> list_dir(const std::filesystem::path& path);
// Like list_dir(path), but none when nothing exists at path (ENOENT).
std::vector<std::string> list_dir_if_exists(const std::filesystem::path& path);
// The names in the directory dirfd refers to (read through a duplicate of dirfd).
std::vector<std::string> list_dir(int dirfd, std::string where);

}  // namespace benchrun
