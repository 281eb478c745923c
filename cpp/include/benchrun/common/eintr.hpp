// eintr.hpp: retry a system call that a signal handler interrupted.
#pragma once

#include <cerrno>
#include <type_traits>

namespace benchrun {

// Calls f() until it does not fail with EINTR and returns that result: for the calls that report
// failure as -1 with errno (read, write, open, waitpid, poll, flock, ...). errno is left as the
// last call set it, so `if (n < 0) throw_errno(...)` after it reports the real error. Not for calls
// that return the error number itself (clock_nanosleep, pthread_*), nor for close(2), which must
// never be retried on Linux (the fd is gone even when it reports EINTR).
template <class F>
auto retry_eintr(F&& f) -> decltype(f()) {
  using R = decltype(f());
  static_assert(std::is_integral_v<R> && std::is_signed_v<R>,
                "retry_eintr is for calls returning -1 and setting errno on failure");
  for (;;) {
    R r = f();
    if (r != -1 || errno != EINTR) return r;
  }
}

}  // namespace benchrun
