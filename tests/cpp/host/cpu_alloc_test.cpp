// cpu_alloc_test.cpp: per-CPU leases: disjoint for concurrent holders, freed when the holder dies,
// errors that name the holder.
#include "benchrun/host/cpu_alloc.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "benchrun/common/error.hpp"
#include "benchrun/common/fs.hpp"

namespace h = benchrun::host;

namespace {

class CpuAlloc : public ::testing::Test {
 protected:
  void SetUp() override { dir_.emplace(std::filesystem::temp_directory_path(), "cpualloc-"); }
  std::string dir() const { return dir_->path().string(); }
  std::optional<benchrun::TempDir> dir_;
};

}  // namespace

TEST_F(CpuAlloc, CountsTakeFreeCpusAndConcurrentHoldersNeverShare) {
  h::CpuLease a = h::acquire_cpus({1, 2, 3}, {{}, 2, 0}, "run-a", dir());
  EXPECT_EQ(a.cpus(), (h::CpuList{1, 2}));
  h::CpuLease b = h::acquire_cpus({1, 2, 3}, {{}, 1, 0}, "run-b", dir());
  EXPECT_EQ(b.cpus(), (h::CpuList{3}));
  try {
    h::acquire_cpus({1, 2, 3}, {{}, 1, 0}, "run-c", dir());
    FAIL() << "a fourth CPU out of three";
  } catch (const benchrun::SandboxError& e) {
    const std::string m = e.what();
    EXPECT_EQ(e.stage(), "cpu allocation");
    EXPECT_NE(m.find("CPU 1 is held by run-a (pid " + std::to_string(::getpid()) + ")"),
              std::string::npos)
        << m;
    EXPECT_NE(m.find("CPU 3 is held by run-b"), std::string::npos) << m;
  }
  EXPECT_EQ(h::cpu_holder(dir(), 3), "run-b (pid " + std::to_string(::getpid()) + ")");
  b = h::CpuLease();  // released
  EXPECT_EQ(h::cpu_holder(dir(), 3), "");
  EXPECT_EQ(h::acquire_cpus({1, 2, 3}, {{}, 1, 0}, "run-c", dir()).cpus(), h::CpuList{3});
}

TEST_F(CpuAlloc, ExplicitListsAreCheckedAgainstThePoolAndLockedWhole) {
  EXPECT_THROW(h::acquire_cpus({1}, {{0}, 0, 0}, "r", dir()), benchrun::ConfigError);
  EXPECT_THROW(h::acquire_cpus({1}, {{}, 2, 0}, "r", dir()), benchrun::ConfigError);
  h::CpuLease a = h::acquire_cpus({0, 1, 2}, {{1}, 0, 0}, "run-a", dir());
  EXPECT_THROW(h::acquire_cpus({0, 1, 2}, {{0, 1}, 0, 0}, "run-b", dir()), benchrun::SandboxError);
  // The failed attempt left CPU 0 free.
  EXPECT_EQ(h::acquire_cpus({0, 1, 2}, {{0}, 0, 0}, "run-b", dir()).cpus(), h::CpuList{0});
}

TEST_F(CpuAlloc, WaitGetsTheCpuOnceTheHolderLetsGo) {
  std::optional<h::CpuLease> a = h::acquire_cpus({5}, {{}, 1, 0}, "run-a", dir());
  std::thread release([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    a.reset();
  });
  h::CpuLease b = h::acquire_cpus({5}, {{}, 1, 5.0}, "run-b", dir());
  release.join();
  EXPECT_EQ(b.cpus(), h::CpuList{5});
  // An interrupt ends the wait with an empty lease.
  EXPECT_TRUE(
      h::acquire_cpus({5}, {{}, 1, 5.0}, "run-c", dir(), [] { return true; }).cpus().empty());
}

TEST_F(CpuAlloc, LeaseIsReleasedWhenTheHolderIsKilled) {
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    h::CpuLease l = h::acquire_cpus({7}, {{}, 1, 0}, "run-child", dir());
    (void)!::write(ready[1], "x", 1);
    ::pause();
    ::_exit(0);
  }
  ::close(ready[1]);
  char c;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ::close(ready[0]);
  EXPECT_EQ(h::cpu_holder(dir(), 7), "run-child (pid " + std::to_string(pid) + ")");
  EXPECT_THROW(h::acquire_cpus({7}, {{}, 1, 0}, "run-parent", dir()), benchrun::SandboxError);
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_EQ(h::acquire_cpus({7}, {{}, 1, 0}, "run-parent", dir()).cpus(), h::CpuList{7});
}
