// output_file.cpp: O_TMPFILE (fallback: create + unlink) in the run directory; pwrite/pread.
#include "benchrun/common/output_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>

#include "benchrun/common/error.hpp"

namespace benchrun {

namespace {

UniqueFd anonymous_file(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0) return UniqueFd(fd);
  if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) throw_errno("open O_TMPFILE", dir);
  static std::atomic<unsigned> counter{0};
  for (int attempt = 0; attempt < 100; ++attempt) {
    std::string path =
        dir + "/.output-" + std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1));
    fd = ::open(path.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd >= 0) {
      ::unlink(path.c_str());
      return UniqueFd(fd);
    }
    if (errno != EEXIST) throw_errno("create", path);
  }
  throw_errno("create", dir + "/.output-*");
}

}  // namespace

OutputFile::OutputFile(const std::string& dir, uint64_t cap)
    : fd_(anonymous_file(dir)), cap_(cap) {}

bool OutputFile::append(const char* data, size_t n) {
  const uint64_t room = cap_ > size_ ? cap_ - size_ : 0;
  size_t keep = static_cast<size_t>(std::min<uint64_t>(room, n));
  if (!fd_) keep = 0;
  size_t done = 0;
  while (done < keep) {
    ssize_t w = ::pwrite(fd_.get(), data + done, keep - done, static_cast<off_t>(size_ + done));
    if (w < 0) {
      if (errno == EINTR) continue;
      throw_errno("write", "captured output");
    }
    done += static_cast<size_t>(w);
  }
  size_ += keep;
  return keep == n;
}

void OutputFile::read_into(char* dst) const {
  uint64_t done = 0;
  while (done < size_) {
    ssize_t r =
        ::pread(fd_.get(), dst + done, static_cast<size_t>(size_ - done), static_cast<off_t>(done));
    if (r < 0) {
      if (errno == EINTR) continue;
      throw_errno("read", "captured output");
    }
    if (r == 0) throw SysError(EIO, "read", "captured output (file shorter than written)");
    done += static_cast<uint64_t>(r);
  }
}

std::string OutputFile::str() const {
  std::string s(static_cast<size_t>(size_), '\0');
  read_into(s.data());
  return s;
}

}  // namespace benchrun
