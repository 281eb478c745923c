// caps.cpp: dropping every capability; the child-side functions are async-signal-safe.
//
// capabilities(7): the bounding set caps what an execve can ever grant (even to uid 0 or a file
// with file capabilities), so with it empty and no_new_privs set, the workload cannot regain a
// capability. capset is a raw syscall (libcap is not needed for "all zero").
#include "sandbox/caps.hpp"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <charconv>

#include "benchrun/common/error.hpp"
#include "benchrun/common/fs.hpp"
#include "benchrun/common/unique_fd.hpp"

namespace benchrun::sandbox {

int read_cap_last_cap(const std::string& path) {
  // procfs reports st_size 0, so read until EOF rather than by size (read_file() would see "").
  UniqueFd fd = open_file(path, O_RDONLY);
  char buf[32];
  size_t len = 0;
  while (len < sizeof buf) {
    ssize_t n = ::read(fd.get(), buf + len, sizeof buf - len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno("read", path);
    if (n == 0) break;
    len += static_cast<size_t>(n);
  }
  std::string text(buf, len);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  int value = -1;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < 0 || value > 63)
    throw ConfigError("read '" + path + "': not a capability number: '" + text + "'");
  return value;
}

int drop_bounding_set(int cap_last) noexcept {
  for (int cap = 0; cap <= cap_last; ++cap) {
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) return errno;
  }
  return 0;
}

int clear_capabilities() noexcept {
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
    return errno;  // EINVAL: a kernel without ambient capabilities (< 4.3)
  __user_cap_header_struct header{};
  header.version = _LINUX_CAPABILITY_VERSION_3;
  header.pid = 0;
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (::syscall(SYS_capset, &header, data) != 0) return errno;
  return 0;
}

}  // namespace benchrun::sandbox
