// clock.cpp: deadline arithmetic for poll(2) and an EINTR-proof sleep.
#include "benchrun/common/clock.hpp"

#include <time.h>

#include <cerrno>
#include <climits>

namespace benchrun {

int poll_timeout_ms(Deadline deadline, Clock::time_point now) noexcept {
  if (deadline == kNoDeadline) return -1;
  if (now >= deadline) return 0;
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count();
  return ms > INT_MAX ? INT_MAX : static_cast<int>(ms);
}

void sleep_for(std::chrono::nanoseconds d) noexcept {
  if (d.count() <= 0) return;
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(d);
  struct timespec ts {
    static_cast<time_t>(secs.count()), static_cast<long>((d - secs).count())
  };
  while (::nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

}  // namespace benchrun
