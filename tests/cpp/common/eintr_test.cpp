// eintr_test.cpp: retry_eintr retries exactly the EINTR failures, also of a real interrupted read.
#include "benchrun/common/eintr.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>

#include "benchrun/common/unique_fd.hpp"
#include "support/interrupter.hpp"

using benchrun::retry_eintr;
using benchrun::UniqueFd;
using namespace std::chrono_literals;

TEST(RetryEintr, RetriesOnlyEintr) {
  int calls = 0;
  auto flaky = [&]() -> ssize_t {
    if (++calls < 3) {
      errno = EINTR;
      return -1;
    }
    return 42;
  };
  EXPECT_EQ(retry_eintr(flaky), 42);
  EXPECT_EQ(calls, 3);

  calls = 0;
  auto broken = [&]() -> int {
    ++calls;
    errno = EBADF;
    return -1;
  };
  EXPECT_EQ(retry_eintr(broken), -1);
  EXPECT_EQ(errno, EBADF);  // the real error survives for throw_errno
  EXPECT_EQ(calls, 1);

  // A negative result other than -1 is a value, not a failure; errno is not consulted.
  calls = 0;
  errno = EINTR;
  EXPECT_EQ(retry_eintr([&] { return ++calls, -2; }), -2);
  EXPECT_EQ(calls, 1);
}

TEST(RetryEintr, ResumesAReadInterruptedByASignal) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  UniqueFd r(p[0]), w(p[1]);
  benchrun::test::Interrupter interrupt(50ms, [&] {
    std::this_thread::sleep_for(50ms);
    ASSERT_EQ(::write(w.get(), "x", 1), 1);
  });
  char c = 0;
  ssize_t n = retry_eintr([&] { return ::read(r.get(), &c, 1); });
  EXPECT_EQ(n, 1);
  EXPECT_EQ(c, 'x');
  EXPECT_EQ(interrupt.delivered(), 1);
}
