// subprocess_test.cpp: run_subprocess I/O, exit status, deadlines, and that nothing leaks.
#include "benchrun/common/subprocess.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>

#include "benchrun/common/dir.hpp"
#include "benchrun/common/error.hpp"

using benchrun::run_subprocess;
using benchrun::SubprocessOptions;
using namespace std::chrono_literals;

namespace {

int count_open_fds() { return static_cast<int>(benchrun::list_dir("/proc/self/fd").size()); }

bool has_children() {
  int status = 0;
  return !(::waitpid(-1, &status, WNOHANG) < 0 && errno == ECHILD);
}

}  // namespace

TEST(Subprocess, CapturesStdoutStderrAndExitCode) {
  auto r = run_subprocess({"/bin/sh", "-c", "echo out; echo err >&2; exit 3"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.signal, 0);
  EXPECT_EQ(r.stdout_data, "out\n");
  EXPECT_EQ(r.stderr_data, "err\n");
  EXPECT_FALSE(r.timed_out);
  EXPECT_FALSE(r.ok());
}

TEST(Subprocess, SearchesPath) {
  auto r = run_subprocess({"sh", "-c", "printf hi"});
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.stdout_data, "hi");
}

TEST(Subprocess, FeedsStdin) {
  SubprocessOptions o;
  o.stdin_data = "hello\nworld\n";
  auto r = run_subprocess({"cat"}, o);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.stdout_data, o.stdin_data);
}

TEST(Subprocess, EmptyStdinIsEofNotTheTerminal) {
  auto r = run_subprocess({"cat"});
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.stdout_data, "");
}

TEST(Subprocess, LargeStdinAndStdoutDoNotDeadlock) {
  SubprocessOptions o;
  o.stdin_data.assign(3 << 20, 'x');
  o.max_output = 4 << 20;
  o.timeout = 20s;
  auto r = run_subprocess({"cat"}, o);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.stdout_data.size(), o.stdin_data.size());
  EXPECT_FALSE(r.stdout_truncated);
}

TEST(Subprocess, OutputIsBounded) {
  SubprocessOptions o;
  o.max_output = 1000;
  auto r = run_subprocess({"/bin/sh", "-c", "head -c 3000000 /dev/zero; echo tail >&2"}, o);
  EXPECT_TRUE(r.ok());  // the child was drained, not blocked on a full pipe
  EXPECT_EQ(r.stdout_data.size(), 1000u);
  EXPECT_TRUE(r.stdout_truncated);
  EXPECT_EQ(r.stderr_data, "tail\n");
  EXPECT_FALSE(r.stderr_truncated);
}

TEST(Subprocess, ChildIgnoringStdinDoesNotRaiseSigpipe) {
  SubprocessOptions o;
  o.stdin_data.assign(2 << 20, 'x');  // more than a pipe buffer
  auto r = run_subprocess({"/bin/sh", "-c", "exec 0<&-; echo done"}, o);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.stdout_data, "done\n");
  sigset_t pending;
  sigemptyset(&pending);
  ::sigpending(&pending);
  EXPECT_NE(sigismember(&pending, SIGPIPE), 1);
}

TEST(Subprocess, ReportsTerminatingSignal) {
  auto r = run_subprocess({"/bin/sh", "-c", "kill -TERM $$"});
  EXPECT_EQ(r.exit_code, -1);
  EXPECT_EQ(r.signal, SIGTERM);
}

TEST(Subprocess, TimeoutKillsAndReaps) {
  SubprocessOptions o;
  o.timeout = 200ms;
  auto start = std::chrono::steady_clock::now();
  auto r = run_subprocess({"/bin/sh", "-c", "echo started; exec sleep 30"}, o);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.signal, SIGKILL);
  EXPECT_EQ(r.stdout_data, "started\n");
  EXPECT_LT(took, 5s);
  EXPECT_FALSE(has_children());
}

TEST(Subprocess, GrandchildHoldingPipesDoesNotStall) {
  SubprocessOptions o;
  o.timeout = 20s;
  auto start = std::chrono::steady_clock::now();
  auto r = run_subprocess({"/bin/sh", "-c", "sleep 3 & echo parent-done"}, o);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.stdout_data, "parent-done\n");
  EXPECT_LT(took, 2500ms);  // needs pidfd_open (Linux 5.3+); older kernels wait for EOF
}

TEST(Subprocess, MissingProgramThrowsSysError) {
  try {
    run_subprocess({"/nonexistent/benchrun-no-such-tool"});
    FAIL() << "expected SysError";
  } catch (const benchrun::SysError& e) {
    EXPECT_EQ(e.code(), ENOENT);
    EXPECT_EQ(e.op(), "exec");
  }
  EXPECT_THROW(run_subprocess({"benchrun-no-such-tool-in-path"}), benchrun::SysError);
  EXPECT_THROW(run_subprocess({}), benchrun::ConfigError);
}

TEST(Subprocess, LeaksNoFdsAndNoZombies) {
  int before = count_open_fds();
  for (int i = 0; i < 20; ++i) {
    SubprocessOptions o;
    o.stdin_data = "x";
    run_subprocess({"/bin/sh", "-c", "cat; exit 1"}, o);
  }
  EXPECT_THROW(run_subprocess({"/nonexistent/tool"}), benchrun::SysError);
  EXPECT_EQ(count_open_fds(), before);
  EXPECT_FALSE(has_children());
}

TEST(Subprocess, ChildInheritsOnlyStdio) {
  int fd = ::open("/dev/null", O_RDONLY);  // deliberately without O_CLOEXEC
  ASSERT_GE(fd, 0);
  std::string script = "[ -e /proc/self/fd/" + std::to_string(fd) + " ] && echo leaked || echo ok";
  auto r = run_subprocess({"/bin/sh", "-c", script});
  ::close(fd);
  EXPECT_EQ(r.stdout_data, "ok\n");
}
