// outputs.cpp: reading a finished run's output files through its root (every host-side backend).
#include "run/outputs.hpp"

#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "benchrun/common/unique_fd.hpp"

namespace benchrun::run {

// Reads output files through the run's root, after the workload exited. Symlinks resolve inside
// the root; only regular files on the run's own filesystems (overlay, tmpfs) are read.
void collect_outputs(int rootfd, const RunSpec& spec, const std::vector<std::string>& paths,
                     RunResult& r) {
  std::vector<char> buf(1 << 20);
  for (const auto& path : paths) {
    if (r.outputs.size() >= spec.max_files) {
      r.missing_outputs[path] = "more than " + std::to_string(spec.max_files) + " output files";
      continue;
    }
    struct open_how how {};
    how.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    int fd = static_cast<int>(::syscall(SYS_openat2, rootfd, path.c_str() + 1, &how, sizeof how));
    if (fd < 0) {
      r.missing_outputs[path] = std::strerror(errno);
      continue;
    }
    UniqueFd f(fd);
    struct stat st {};
    struct statfs sfs {};
    if (::fstat(fd, &st) != 0 || ::fstatfs(fd, &sfs) != 0) {
      r.missing_outputs[path] = std::strerror(errno);
      continue;
    }
    if (!S_ISREG(st.st_mode)) {
      r.missing_outputs[path] = "not a regular file";
      continue;
    }
    if (sfs.f_type == PROC_SUPER_MAGIC || sfs.f_type == SYSFS_MAGIC) {
      r.missing_outputs[path] = "resolves into /proc or /sys";
      continue;
    }
    if (static_cast<uint64_t>(st.st_size) > spec.max_file_bytes) {
      r.missing_outputs[path] =
          "larger than the limit of " + std::to_string(spec.max_file_bytes) + " bytes";
      continue;
    }
    std::string data;
    for (;;) {
      ssize_t n = ::read(fd, buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      if (data.size() + static_cast<size_t>(n) > spec.max_file_bytes) break;
      data.append(buf.data(), static_cast<size_t>(n));
    }
    r.outputs[path] = std::move(data);
  }
}

}  // namespace benchrun::run
