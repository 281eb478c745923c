// console.cpp: boot breadcrumbs on the kernel console.
#include "init/console.hpp"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

namespace benchrun::guest {

void ensure_std_fds() noexcept {
  for (int fd = 0; fd <= 2; ++fd) {
    if (::fcntl(fd, F_GETFD) >= 0 || errno != EBADF) continue;
    // open() returns the lowest free fd, which is this one.
    if (::open("/dev/console", O_RDWR | O_NOCTTY) < 0) ::open("/dev/null", O_RDWR);
  }
}

void breadcrumb(std::string_view what) noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_BOOTTIME, &ts);
  char line[256];
  int n = std::snprintf(line, sizeof line, "[%4ld.%03ld] benchrun-init: %.*s\n",
                        static_cast<long>(ts.tv_sec), ts.tv_nsec / 1000000L,
                        static_cast<int>(what.size() > 200 ? 200 : what.size()), what.data());
  if (n <= 0) return;
  size_t len = static_cast<size_t>(n) < sizeof line ? static_cast<size_t>(n) : sizeof line - 1;
  ssize_t w;
  do w = ::write(2, line, len);
  while (w < 0 && errno == EINTR);
}

}  // namespace benchrun::guest
