// dir.cpp: the directory stream behind every readdir loop.
#include "benchrun/common/dir.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "benchrun/common/eintr.hpp"
#include "benchrun/common/error.hpp"

namespace benchrun {

Dir Dir::adopt(int fd, std::string where) {
  DIR* dir = ::fdopendir(fd);
  if (!dir) {
    const int err = errno;
    ::close(fd);
    throw_errno(err, "opendir", where);
  }
  return Dir(dir, std::move(where));
}

Dir Dir::open(const std::filesystem::path& path) {
  int fd = retry_eintr([&] { return ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); });
  if (fd < 0) throw_errno("opendir", path.string());
  return adopt(fd, path.string());
}

std::optional<Dir> Dir::open_if_exists(const std::filesystem::path& path) {
  int fd = retry_eintr([&] { return ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); });
  if (fd < 0) {
    if (errno == ENOENT) return std::nullopt;
    throw_errno("opendir", path.string());
  }
  return adopt(fd, path.string());
}

Dir Dir::open_at(int dirfd, const std::string& name, std::string where) {
  int fd = retry_eintr([&] {
    return ::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  });
  if (fd < 0) throw_errno("opendir", where);
  return adopt(fd, std::move(where));
}

Dir Dir::from_fd(int dirfd, std::string where) {
  // closedir closes the DIR's fd: a duplicate keeps the caller's fd open. The duplicate shares the
  // file offset, so rewind in case the caller has read from dirfd before.
  int fd = ::fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) throw_errno("dup", where);
  Dir d = adopt(fd, std::move(where));
  ::rewinddir(d.dir_);
  return d;
}

Dir::Dir(Dir&& o) noexcept : dir_(std::exchange(o.dir_, nullptr)), where_(std::move(o.where_)) {}

Dir& Dir::operator=(Dir&& o) noexcept {
  if (this != &o) {
    if (dir_) ::closedir(dir_);
    dir_ = std::exchange(o.dir_, nullptr);
    where_ = std::move(o.where_);
  }
  return *this;
}

Dir::~Dir() {
  if (dir_) ::closedir(dir_);
}

std::optional<DirEntry> Dir::next() {
  for (;;) {
    errno = 0;  // readdir returns nullptr both at the end and on error; only errno tells them apart
    const struct dirent* de = ::readdir(dir_);
    if (!de) {
      if (errno != 0) throw_errno("readdir", where_);
      return std::nullopt;
    }
    std::string_view name(de->d_name);
    if (name == "." || name == "..") continue;
    return DirEntry{name, de->d_type};
  }
}

bool Dir::is_dir(const DirEntry& e) const {
  if (e.type != DT_UNKNOWN) return e.type == DT_DIR;
  struct stat st {};
  // e.name points into the dirent, which is NUL-terminated.
  if (::fstatat(fd(), e.name.data(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return false;
    throw_errno("stat", where_ + "/" + std::string(e.name));
  }
  return S_ISDIR(st.st_mode);
}

int Dir::fd() const noexcept { return ::dirfd(dir_); }

namespace {
std::vector<std::string> names_of(Dir& d) {
  std::vector<std::string> names;
  while (std::optional<DirEntry> e = d.next()) names.emplace_back(e->name);
  return names;
}
}  // namespace

std::vector<std::string> list_dir(const std::filesystem::path& path) {
  Dir d = Dir::open(path);
  return names_of(d);
}

std::vector<std::string> list_dir_if_exists(const std::filesystem::path& path) {
  std::optional<Dir> d = Dir::open_if_exists(path);
  return d ? names_of(*d) : std::vector<std::string>{};
}

std::vector<std::string> list_dir(int dirfd, std::string where) {
  Dir d = Dir::from_fd(dirfd, std::move(where));
  return names_of(d);
}

}  // namespace benchrun
