// poll_deadline.hpp: private helper: wait for one fd with poll() until a steady-clock deadline.
#pragma once

#include <poll.h>

#include <cerrno>
#include <chrono>
#include <string_view>

#include "benchrun/common/clock.hpp"
#include "benchrun/common/error.hpp"

namespace benchrun::proto::detail {

// The revents of fd for events, or 0 once the deadline has passed (time_point::max(): none).
// Strict: after the deadline nothing is polled, so a peer that keeps sending cannot stretch it.
inline short poll_until(int fd, short events, Deadline deadline, std::string_view what) {
  for (;;) {
    const int timeout_ms = poll_timeout_ms(deadline);
    if (timeout_ms == 0) return 0;
    struct pollfd p = {fd, events, 0};
    int r = ::poll(&p, 1, timeout_ms);
    if (r > 0) {
      if (p.revents & POLLNVAL) throw_errno(EBADF, "poll", what);
      return p.revents;
    }
    if (r < 0 && errno != EINTR) throw_errno("poll", what);
  }
}

}  // namespace benchrun::proto::detail
