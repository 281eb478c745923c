// clock_test.cpp: deadline-to-poll-timeout conversion, timeval seconds, and a sleep that signals
// cannot shorten.
#include "benchrun/common/clock.hpp"

#include <gtest/gtest.h>

#include <climits>
#include <ctime>

#include "support/interrupter.hpp"

using benchrun::Clock;
using benchrun::kNoDeadline;
using benchrun::poll_timeout_ms;
using namespace std::chrono_literals;

TEST(Clock, PollTimeoutRoundsUpAndClamps) {
  const Clock::time_point now = Clock::now();
  EXPECT_EQ(poll_timeout_ms(kNoDeadline, now), -1);
  EXPECT_EQ(poll_timeout_ms(now, now), 0);
  EXPECT_EQ(poll_timeout_ms(now - 5s, now), 0);
  EXPECT_EQ(poll_timeout_ms(now + 1us, now), 1);  // not 0: poll would return before the deadline
  EXPECT_EQ(poll_timeout_ms(now + 1500us, now), 2);
  EXPECT_EQ(poll_timeout_ms(now + 3ms, now), 3);
  EXPECT_EQ(poll_timeout_ms(now + std::chrono::hours(24 * 365), now), INT_MAX);
  EXPECT_GE(poll_timeout_ms(Clock::now() + 10s), 9'000);  // the default "now"
}

TEST(Clock, SecondsAndSince) {
  EXPECT_DOUBLE_EQ(benchrun::seconds(timeval{2, 250'000}), 2.25);
  EXPECT_DOUBLE_EQ(benchrun::seconds(timeval{0, 0}), 0.0);
  const double s = benchrun::since(Clock::now() - 2s);
  EXPECT_GE(s, 2.0);
  EXPECT_LT(s, 3.0);
  const double unix = benchrun::unix_now();
  EXPECT_NEAR(unix, static_cast<double>(std::time(nullptr)), 2.0);
}

TEST(Clock, SleepForIsNotShortenedBySignals) {
  benchrun::test::Interrupter interrupt(10ms);
  const Clock::time_point t0 = Clock::now();
  benchrun::sleep_for(80ms);
  EXPECT_GE(Clock::now() - t0, 80ms);
  EXPECT_EQ(interrupt.delivered(), 1);

  const Clock::time_point t1 = Clock::now();
  benchrun::sleep_for(-5ms);
  benchrun::sleep_for(0ms);
  EXPECT_LT(Clock::now() - t1, 5ms);
}
