// cpio.cpp: newc cpio writer (Documentation/driver-api/early-userspace/buffer-format.rst).
//
// Each entry is a 110-byte ASCII header (magic "070701" and thirteen 8-digit hex fields: ino, mode,
// uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize, check),
// the name with its NUL padded to a multiple of 4, then the data padded to a multiple of 4. The
// archive ends with an entry named "TRAILER!!!". Sizes are 32-bit, so a file must stay below 4 GiB.
#include "benchrun/rootfs/cpio.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>

#include "benchrun/common/eintr.hpp"
#include "benchrun/common/error.hpp"
#include "benchrun/common/fs.hpp"
#include "benchrun/common/text.hpp"
#include "benchrun/common/unique_fd.hpp"

namespace benchrun::rootfs {

namespace {

constexpr std::string_view kTrailer = "TRAILER!!!";
constexpr size_t kFlushAt = 256 << 10;
constexpr uint64_t kMaxFileSize = 0xffffffffull;

void validate_path(std::string_view path) {
  auto bad = [&](const char* why) {
    throw ConfigError("cpio entry '" + printable(path) + "': " + why);
  };
  if (path.empty()) bad("empty path");
  if (path.front() == '/') bad("absolute path (entries are relative to the archive root)");
  if (path.find('\0') != std::string_view::npos) bad("NUL in path");
  if (path == kTrailer) bad("the name is reserved for the archive trailer");
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view part = path.substr(start, end - start);
    if (part.empty()) bad("empty path component");
    if (part == "." || part == "..") bad("'.' or '..' component");
    start = end + 1;
  }
}

void validate_mode(std::string_view path, uint32_t mode) {
  if (mode > 07777)
    throw ConfigError("cpio entry '" + printable(path) + "': mode " + std::to_string(mode) +
                      " has bits beyond 07777");
}

}  // namespace

void CpioWriter::check_open() const {
  if (finished_) throw ConfigError("cpio archive: entry added after finish()");
}

void CpioWriter::append(std::string_view bytes) {
  buffer_.append(bytes);
  if (buffer_.size() >= kFlushAt) flush();
}

void CpioWriter::pad() {
  static constexpr char kZeros[4] = {0, 0, 0, 0};
  size_t rem = static_cast<size_t>(size() % 4);
  if (rem != 0) append(std::string_view(kZeros, 4 - rem));
}

void CpioWriter::write_direct(std::string_view bytes) {
  write_all(fd_, bytes, "cpio archive");
  written_ += bytes.size();
}

void CpioWriter::flush() {
  write_direct(buffer_);
  buffer_.clear();
}

void CpioWriter::header(std::string_view path, uint32_t mode, uint64_t file_size, uint32_t nlink,
                        uint32_t rdev_major, uint32_t rdev_minor) {
  if (file_size > kMaxFileSize)
    throw ConfigError("cpio entry '" + printable(path) + "': " + std::to_string(file_size) +
                      " bytes do not fit the format's 32-bit size field");
  const uint32_t fields[13] = {next_ino_++,
                               mode,
                               0,  // uid
                               0,  // gid
                               nlink,
                               0,  // mtime: fixed, so archives are reproducible
                               static_cast<uint32_t>(file_size),
                               0,  // devmajor
                               0,  // devminor
                               rdev_major,
                               rdev_minor,
                               static_cast<uint32_t>(path.size() + 1),
                               0};  // check: only used by the "070702" variant
  char hdr[6 + 13 * 8 + 1];
  std::snprintf(hdr, sizeof hdr, "070701");
  for (int i = 0; i < 13; ++i) std::snprintf(hdr + 6 + i * 8, 9, "%08X", fields[i]);
  append(std::string_view(hdr, sizeof hdr - 1));
  append(path);
  append(std::string_view("\0", 1));
  pad();
}

void CpioWriter::add_directory(std::string_view path, uint32_t mode) {
  check_open();
  validate_path(path);
  validate_mode(path, mode);
  header(path, S_IFDIR | mode, 0, 2, 0, 0);
}

void CpioWriter::add_file(std::string_view path, uint32_t mode, std::string_view data) {
  check_open();
  validate_path(path);
  validate_mode(path, mode);
  header(path, S_IFREG | mode, data.size(), 1, 0, 0);
  if (buffer_.size() + data.size() >= kFlushAt) {
    // Large contents go straight to the fd instead of through the buffer.
    flush();
    write_direct(data);
  } else {
    append(data);
  }
  pad();
}

void CpioWriter::add_file_from(std::string_view path, uint32_t mode, const std::string& host_path) {
  check_open();
  validate_path(path);
  validate_mode(path, mode);
  UniqueFd in = open_file(host_path, O_RDONLY);
  struct stat st {};
  if (::fstat(in.get(), &st) != 0) throw_errno("stat", host_path);
  if (!S_ISREG(st.st_mode))
    throw ConfigError("cpio entry '" + printable(path) + "': '" + host_path +
                      "' is not a regular file");
  const uint64_t expected = static_cast<uint64_t>(st.st_size);
  header(path, S_IFREG | mode, expected, 1, 0, 0);
  flush();
  uint64_t copied = 0;
  std::string chunk(kFlushAt, '\0');
  while (copied < expected) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(chunk.size(), expected - copied));
    ssize_t n = retry_eintr([&] { return ::read(in.get(), chunk.data(), want); });
    if (n < 0) throw_errno("read", host_path);
    if (n == 0) break;
    write_direct(std::string_view(chunk.data(), static_cast<size_t>(n)));
    copied += static_cast<uint64_t>(n);
  }
  char extra = 0;
  ssize_t more = ::read(in.get(), &extra, 1);
  if (copied != expected || more > 0)
    throw ConfigError("cpio entry '" + printable(path) + "': '" + host_path +
                      "' changed size while being archived");
  pad();
}

void CpioWriter::add_symlink(std::string_view path, std::string_view target) {
  check_open();
  validate_path(path);
  if (target.empty() || target.find('\0') != std::string_view::npos)
    throw ConfigError("cpio symlink '" + printable(path) + "': empty target or NUL in target");
  header(path, S_IFLNK | 0777, target.size(), 1, 0, 0);
  append(target);
  pad();
}

void CpioWriter::add_char_device(std::string_view path, uint32_t mode, uint32_t major,
                                 uint32_t minor) {
  check_open();
  validate_path(path);
  validate_mode(path, mode);
  header(path, S_IFCHR | mode, 0, 1, major, minor);
}

void CpioWriter::finish() {
  check_open();
  // The trailer is the only entry whose name skips validation and whose inode is 0.
  const uint32_t ino = next_ino_;
  next_ino_ = 0;
  header(kTrailer, 0, 0, 1, 0, 0);
  next_ino_ = ino;
  finished_ = true;
  flush();
}

}  // namespace benchrun::rootfs
