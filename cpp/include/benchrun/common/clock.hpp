// clock.hpp: the clocks benchrun measures and waits with, and the conversions between them.
#pragma once

#include <sys/time.h>

#include <chrono>

namespace benchrun {

// Durations and deadlines use the monotonic clock: wall-clock steps (NTP, an admin) must not
// stretch or shorten a measurement.
using Clock = std::chrono::steady_clock;
// A point on Clock by which something must happen; kNoDeadline means "wait as long as it takes".
using Deadline = Clock::time_point;
inline constexpr Deadline kNoDeadline = Deadline::max();

// Seconds elapsed on Clock since t.
inline double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Wall-clock time as Unix seconds: only for timestamps a human or another host reads.
inline double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// A timeval (rusage's CPU times) in seconds.
inline double seconds(const timeval& tv) {
  return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
}

// poll(2)'s timeout until deadline: the milliseconds left rounded up (truncating would wake just
// before the deadline and spin), 0 once it has passed, -1 for kNoDeadline; at most INT_MAX.
int poll_timeout_ms(Deadline deadline, Clock::time_point now = Clock::now()) noexcept;

// Sleeps for d, resuming after signal handlers (nanosleep's remaining time), so a signal does not
// shorten the pause. Negative or zero: returns at once.
void sleep_for(std::chrono::nanoseconds d) noexcept;

}  // namespace benchrun
