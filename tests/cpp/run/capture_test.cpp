// capture_test.cpp: the deadline's polite form (run/capture.hpp GracefulStop, used by --init):
// stop() at the deadline, kill_all only after the grace, and not at all when stop() sufficed.
#include "run/capture.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>

namespace benchrun::run {
namespace {

using Clock = std::chrono::steady_clock;

struct Child {
  pid_t pid = -1;
  UniqueFd pidfd;
  CapturedStream out, err;
};

// A child holding both pipes' write ends, sleeping; SIGTERM ignored when ignore_term.
Child start_child(bool ignore_term) {
  int o[2], e[2];
  EXPECT_EQ(::pipe2(o, O_CLOEXEC), 0);
  EXPECT_EQ(::pipe2(e, O_CLOEXEC), 0);
  Child c;
  c.pid = ::fork();
  if (c.pid == 0) {
    if (ignore_term) ::signal(SIGTERM, SIG_IGN);
    ::dup2(o[1], 1);
    for (;;) ::pause();
  }
  ::close(o[1]);
  ::close(e[1]);
  c.pidfd = UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, c.pid, 0)));
  const std::string dir = std::filesystem::temp_directory_path().string();
  c.out = CapturedStream{UniqueFd(o[0]), OutputFile(dir, 1024)};
  c.err = CapturedStream{UniqueFd(e[0]), OutputFile(dir, 1024)};
  return c;
}

TEST(Capture, GracefulStopEndsWithoutTheKill) {
  Child c = start_child(/*ignore_term=*/false);
  int stops = 0, kills = 0;
  GracefulStop g{[&] {
                   ++stops;
                   ::kill(c.pid, SIGTERM);
                 },
                 std::chrono::seconds(30)};
  const auto t0 = Clock::now();
  CaptureOutcome r = capture_until_exit(
      c.out, c.err, c.pidfd.get(), t0 + std::chrono::milliseconds(50),
      [&] {
        ++kills;
        ::kill(c.pid, SIGKILL);
      },
      {}, g);
  int status = 0;
  ::waitpid(c.pid, &status, 0);
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(stops, 1);
  EXPECT_EQ(kills, 1);  // once, after the exit: stragglers (none here)
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(10));
}

TEST(Capture, GracefulStopKillsAfterTheGrace) {
  Child c = start_child(/*ignore_term=*/true);
  int stops = 0;
  Clock::time_point killed_at{};
  GracefulStop g{[&] {
                   ++stops;
                   ::kill(c.pid, SIGTERM);
                 },
                 std::chrono::milliseconds(300)};
  const auto t0 = Clock::now();
  CaptureOutcome r = capture_until_exit(
      c.out, c.err, c.pidfd.get(), t0 + std::chrono::milliseconds(50),
      [&] {
        if (killed_at == Clock::time_point{}) killed_at = Clock::now();
        ::kill(c.pid, SIGKILL);
      },
      {}, g);
  int status = 0;
  ::waitpid(c.pid, &status, 0);
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(stops, 1);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  EXPECT_GE(killed_at - t0, std::chrono::milliseconds(340));
}

TEST(Capture, NoGracefulStopKillsAtTheDeadline) {
  Child c = start_child(/*ignore_term=*/true);
  Clock::time_point killed_at{};
  const auto t0 = Clock::now();
  CaptureOutcome r =
      capture_until_exit(c.out, c.err, c.pidfd.get(), t0 + std::chrono::milliseconds(50), [&] {
        if (killed_at == Clock::time_point{}) killed_at = Clock::now();
        ::kill(c.pid, SIGKILL);
      });
  int status = 0;
  ::waitpid(c.pid, &status, 0);
  EXPECT_TRUE(r.timed_out);
  EXPECT_LT(killed_at - t0, std::chrono::milliseconds(300));
}

}  // namespace
}  // namespace benchrun::run
