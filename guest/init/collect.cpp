// collect.cpp: output files through the workload's root, after it exited.
#include "init/collect.hpp"

#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "benchrun/common/error.hpp"
#include "benchrun/common/unique_fd.hpp"

namespace benchrun::guest {

namespace {

constexpr size_t kChunk = proto::kMaxChunkData;  // 512 KiB

// The open file, or why it cannot be collected.
UniqueFd open_output(int rootfd, const std::string& path, const proto::RunConfig& config,
                     uint64_t& size, std::string& why) {
  if (path.empty() || path.front() != '/') {
    why = "not an absolute path";
    return {};
  }
  open_how how{};
  how.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  UniqueFd fd(static_cast<int>(::syscall(SYS_openat2, rootfd, path.c_str() + 1, &how, sizeof how)));
  if (!fd) {
    why = std::strerror(errno);
    return {};
  }
  struct stat st {};
  struct statfs sfs {};
  if (::fstat(fd.get(), &st) != 0 || ::fstatfs(fd.get(), &sfs) != 0) {
    why = std::strerror(errno);
    return {};
  }
  if (!S_ISREG(st.st_mode)) {
    why = "not a regular file";
    return {};
  }
  if (sfs.f_type == PROC_SUPER_MAGIC || sfs.f_type == SYSFS_MAGIC) {
    why = "resolves into /proc or /sys";
    return {};
  }
  size = static_cast<uint64_t>(st.st_size);
  if (size > config.max_file_bytes) {
    why = "larger than the limit of " + std::to_string(config.max_file_bytes) + " bytes";
    return {};
  }
  return fd;
}

// Streams size bytes of fd as File frames. Every writer is dead by now, so the size cannot change
// under us. Returns 0, or the errno when nothing could be read (the caller reports the file
// missing); a read error after the first chunk ends the file early (the host sees fewer bytes).
int send_file(proto::Channel& channel, int fd, const std::string& path, uint64_t size,
              std::vector<char>& buf) {
  proto::FileChunk chunk;
  chunk.path = path;
  chunk.size = size;
  do {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), size - chunk.offset));
    size_t got = 0;
    int err = 0;
    while (got < want) {
      ssize_t n = ::read(fd, buf.data() + got, want - got);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        err = n < 0 ? errno : EIO;
        break;
      }
      got += static_cast<size_t>(n);
    }
    if (got == 0 && want != 0) return chunk.offset == 0 ? err : 0;
    chunk.data.assign(buf.data(), got);
    channel.send(proto::encode_file(chunk));
    chunk.offset += got;
  } while (chunk.offset < size);
  return 0;
}

}  // namespace

void collect_outputs(proto::Channel& channel, const std::string& root,
                     const proto::RunConfig& config) {
  if (config.outputs.empty()) return;
  UniqueFd rootfd(::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!rootfd) throw_errno("open", root);
  std::vector<char> buf(kChunk);
  uint32_t collected = 0;
  for (const auto& path : config.outputs) {
    std::string why;
    uint64_t size = 0;
    UniqueFd fd;
    if (collected >= config.max_files)
      why = "more than " + std::to_string(config.max_files) + " output files";
    else
      fd = open_output(rootfd.get(), path, config, size, why);
    if (fd) {
      if (int err = send_file(channel, fd.get(), path, size, buf)) why = std::strerror(err);
    }
    if (!why.empty()) {
      channel.send(proto::encode_file_missing({path, why}));
      continue;
    }
    ++collected;
  }
}

}  // namespace benchrun::guest
