// cpio.hpp: a streaming writer of "newc" cpio archives, the format the kernel unpacks as initramfs.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace benchrun::rootfs {

// Writes a newc ("070701") archive to a file descriptor it does not own. Every entry is owned by
// uid/gid 0 with mtime 0 and gets the next inode number, so the same calls produce the same bytes.
// Paths are relative ("dev/console"): empty, absolute, "."/".."/empty components, NUL and the
// trailer's own name are refused with ConfigError. Modes are permission bits (<= 07777); the type
// comes from the method. Parents must be added before their children (the kernel does not create
// them). Write errors throw SysError; nothing is valid until finish() has returned.
class CpioWriter {
 public:
  explicit CpioWriter(int fd) : fd_(fd) {}
  CpioWriter(const CpioWriter&) = delete;
  CpioWriter& operator=(const CpioWriter&) = delete;

  void add_directory(std::string_view path, uint32_t mode);
  void add_file(std::string_view path, uint32_t mode, std::string_view data);
  // Streams a regular host file; ConfigError if it is not one or if its size changes meanwhile.
  void add_file_from(std::string_view path, uint32_t mode, const std::string& host_path);
  void add_symlink(std::string_view path, std::string_view target);
  void add_char_device(std::string_view path, uint32_t mode, uint32_t major, uint32_t minor);
  // Writes the "TRAILER!!!" entry and flushes. No entry may be added afterwards.
  void finish();

  // Bytes handed to the fd so far plus those still buffered.
  uint64_t size() const noexcept { return written_ + buffer_.size(); }

 private:
  void header(std::string_view path, uint32_t mode, uint64_t file_size, uint32_t nlink,
              uint32_t rdev_major, uint32_t rdev_minor);
  void append(std::string_view bytes);
  void pad();
  void flush();
  void write_direct(std::string_view bytes);
  void check_open() const;

  int fd_;
  uint32_t next_ino_ = 1;
  uint64_t written_ = 0;
  std::string buffer_;
  bool finished_ = false;
};

}  // namespace benchrun::rootfs
