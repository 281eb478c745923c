// poll_deadline.hpp: private helper: wait for one fd with poll() until a steady-clock deadline.
#pragma once

#include <poll.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <string_view>

#include "benchrun/common/error.hpp"

namespace benchrun::proto::detail {

// The revents of fd for events, or 0 once the deadline has passed (time_point::max(): none).
// Strict: after the deadline nothing is polled, so a peer that keeps sending cannot stretch it.
inline short poll_until(int fd, short events, std::chrono::steady_clock::time_point deadline,
                        std::string_view what) {
  using Clock = std::chrono::steady_clock;
  for (;;) {
    int timeout_ms = -1;
    if (deadline != Clock::time_point::max()) {
      auto now = Clock::now();
      if (now >= deadline) return 0;
      // Rounded up: poll's millisecond timeout would otherwise wake just before the deadline.
      auto ms = std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count();
      timeout_ms = ms > INT_MAX ? INT_MAX : static_cast<int>(ms);
    }
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
