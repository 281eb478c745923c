// run_name_test.cpp: "run-<pid>-<random>" names: made with our pid, parsed strictly, and stale only
// when their runner is gone.
#include "benchrun/common/run_name.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <regex>

using benchrun::make_run_name;
using benchrun::run_name_is_stale;
using benchrun::run_name_pid;

TEST(RunName, MadeWithOurPidAndRandomSuffix) {
  const std::string a = make_run_name(), b = make_run_name();
  EXPECT_TRUE(std::regex_match(a, std::regex("run-" + std::to_string(::getpid()) + "-[0-9a-f]{8}")))
      << a;
  EXPECT_NE(a, b);
  EXPECT_EQ(run_name_pid(a), ::getpid());
  EXPECT_FALSE(run_name_is_stale(a));  // we are alive
}

TEST(RunName, ParsesOnlyRunPidDashNames) {
  EXPECT_EQ(run_name_pid("run-123-abc"), 123);
  EXPECT_EQ(run_name_pid("run-7-"), 7);  // the suffix may be anything, also empty
  EXPECT_EQ(run_name_pid("run-2147483647-x"), 2147483647);
  for (const char* other :
       {"", "run-", "run-123", "run-abc-1", "run--1-x", "run-0-x", "run-+5-x", "run- 5-x",
        "run-99999999999-x", "xrun-1-x", "Run-1-x", "run_1-x", "benchrun", "run-12a-x"})
    EXPECT_FALSE(run_name_pid(other)) << other;
}

TEST(RunName, StaleOnlyWhenTheRunnerIsGone) {
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) ::_exit(0);
  const std::string name = "run-" + std::to_string(child) + "-deadbeef";
  // Running or a zombie (not reaped yet): the pid is still taken, so its runs are not stale.
  EXPECT_FALSE(run_name_is_stale(name));
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(run_name_is_stale(name));        // unless the pid was recycled within microseconds
  EXPECT_FALSE(run_name_is_stale("run-1-x"));  // init is alive (EPERM would also mean alive)
  EXPECT_FALSE(run_name_is_stale("leftover-" + std::to_string(child)));  // not a run name
}
