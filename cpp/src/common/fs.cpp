// fs.cpp: filesystem helpers used by the store and the unpacker.
#include "benchrun/common/fs.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <vector>

#include "benchrun/common/dir.hpp"
#include "benchrun/common/eintr.hpp"
#include "benchrun/common/error.hpp"

namespace benchrun {

namespace fs = std::filesystem;

UniqueFd open_file(const fs::path& path, int flags, mode_t mode) {
  int fd = retry_eintr([&] { return ::open(path.c_str(), flags | O_CLOEXEC, mode); });
  if (fd < 0) throw_errno("open", path.string());
  return UniqueFd(fd);
}

void write_all(int fd, std::string_view data, std::string_view what) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = retry_eintr([&] { return ::write(fd, data.data() + off, data.size() - off); });
    if (n < 0) throw_errno("write", what);
    off += static_cast<size_t>(n);
  }
}

size_t read_full(int fd, void* buf, size_t len, std::string_view what) {
  char* p = static_cast<char*>(buf);
  size_t have = 0;
  while (have < len) {
    ssize_t n = retry_eintr([&] { return ::read(fd, p + have, len - have); });
    if (n < 0) throw_errno("read", what);
    if (n == 0) break;
    have += static_cast<size_t>(n);
  }
  return have;
}

std::string read_file(const fs::path& path, size_t max_bytes) {
  UniqueFd fd = open_file(path, O_RDONLY);
  // Read to EOF rather than trusting st_size: procfs and sysfs files report 0.
  std::string out;
  char buf[64 << 10];
  for (;;) {
    ssize_t n = retry_eintr([&] { return ::read(fd.get(), buf, sizeof buf); });
    if (n < 0) throw_errno("read", path.string());
    if (n == 0) break;
    if (out.size() + static_cast<size_t>(n) > max_bytes)
      throw ImageError("read '" + path.string() + "': larger than the limit of " +
                       std::to_string(max_bytes) + " bytes");
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

void write_file_atomic(const fs::path& path, std::string_view data) {
  std::string tmpl = (path.parent_path() / ("." + path.filename().string() + ".XXXXXX")).string();
  int raw = ::mkostemp(tmpl.data(), O_CLOEXEC);
  if (raw < 0) throw_errno("mkstemp", tmpl);
  UniqueFd fd(raw);
  bool done = false;
  struct Cleanup {
    const std::string& p;
    bool& done;
    ~Cleanup() {
      if (!done) ::unlink(p.c_str());
    }
  } cleanup{tmpl, done};
  write_all(fd.get(), data, tmpl);
  publish_file(fd.get(), tmpl, path);
  done = true;
}

void publish_file(int fd, const std::string& tmp, const fs::path& target) {
  if (::fchmod(fd, 0644) != 0) throw_errno("chmod", tmp);
  if (::fsync(fd) != 0) throw_errno("fsync", tmp);
  if (::rename(tmp.c_str(), target.c_str()) != 0) throw_errno("rename", target.string());
}

void make_dirs(const fs::path& path, mode_t mode) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec) throw SysError(ec.value(), "mkdir", path.string());
  (void)mode;
}

namespace {
// Removes every entry below dirfd; dirfd is an open directory. Never follows symlinks.
void remove_children(int dirfd, const std::string& where) {
  // The names first, then the removals: unlinking while readdir runs may skip entries.
  for (const std::string& name : list_dir(dirfd, where)) {
    if (::unlinkat(dirfd, name.c_str(), 0) == 0) continue;
    if (errno == ENOENT) continue;
    const int unlink_err = errno;
    if (unlink_err != EISDIR && unlink_err != EPERM) throw_errno("unlink", where + "/" + name);
    // A mode-000 directory (overlayfs leaves work/work so) cannot be opened by its non-root owner
    // until it is made accessible. EISDIR means the entry is a directory, never a symlink.
    if (unlink_err == EISDIR) ::fchmodat(dirfd, name.c_str(), 0700, 0);
    int child = ::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (child < 0) throw_errno("open", where + "/" + name);
    UniqueFd cfd(child);
    ::fchmod(cfd.get(), 0700);  // a read-only dir in an image must not block its removal
    remove_children(cfd.get(), where + "/" + name);
    if (::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT)
      throw_errno("rmdir", where + "/" + name);
  }
}
}  // namespace

void remove_tree(const fs::path& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return;
    throw_errno("stat", path.string());
  }
  if (!S_ISDIR(st.st_mode)) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) throw_errno("unlink", path.string());
    return;
  }
  ::chmod(path.c_str(), 0700);  // a mode-000 directory of ours must not block its removal
  int raw = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (raw < 0) throw_errno("open", path.string());
  UniqueFd fd(raw);
  ::fchmod(fd.get(), 0700);
  remove_children(fd.get(), path.string());
  if (::rmdir(path.c_str()) != 0 && errno != ENOENT) throw_errno("rmdir", path.string());
}

TempDir::TempDir(const fs::path& parent, std::string_view prefix) {
  std::string tmpl = (parent / (std::string(prefix) + "XXXXXX")).string();
  if (::mkdtemp(tmpl.data()) == nullptr) throw_errno("mkdtemp", tmpl);
  path_ = tmpl;
}

TempDir::TempDir(TempDir&& o) noexcept : path_(std::exchange(o.path_, {})) {}

TempDir::~TempDir() {
  if (path_.empty()) return;
  try {
    remove_tree(path_);
  } catch (...) {
    // Destructors never throw; leftovers under the cache's tmp/ are swept by prune.
  }
}

fs::path TempDir::release() noexcept { return std::exchange(path_, {}); }

FileLock::FileLock(const fs::path& path, bool shared) {
  fd_ = open_file(path, O_RDWR | O_CREAT, 0644);
  if (retry_eintr([&] { return ::flock(fd_.get(), shared ? LOCK_SH : LOCK_EX); }) != 0)
    throw_errno("flock", path.string());
}

}  // namespace benchrun
