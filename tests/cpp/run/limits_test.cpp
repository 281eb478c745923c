// limits_test.cpp: the defaults every run gets, "unlimited", and what the result records.
#include "run/limits.hpp"

#include <gtest/gtest.h>

#include <fstream>

#include "benchrun/common/error.hpp"
#include "benchrun/common/fs.hpp"

namespace benchrun::run {
namespace {

constexpr uint64_t kGiB = uint64_t{1} << 30;

TEST(Limits, DefaultsBoundEveryRun) {
  const Limits l = resolve_limits(RunSpec{}, 8 * kGiB);
  EXPECT_EQ(l.memory.value, 6 * kGiB);  // 3/4 of RAM
  EXPECT_FALSE(l.memory.explicit_);
  EXPECT_EQ(l.pids.value, 1024u);
  EXPECT_EQ(l.disk.value, 10 * kGiB);
  EXPECT_EQ(l.tmpfs, 3 * kGiB);  // half the memory limit each: both fit in it
}

TEST(Limits, GivenValuesAndUnlimited) {
  RunSpec s;
  s.memory = kGiB;
  s.pids_limit = kUnlimited;
  s.disk = kUnlimited;
  const Limits l = resolve_limits(s, 8 * kGiB);
  EXPECT_EQ(l.memory.value, kGiB);
  EXPECT_TRUE(l.memory.explicit_);
  EXPECT_EQ(l.tmpfs, kGiB / 2);
  EXPECT_FALSE(l.pids.value);
  EXPECT_TRUE(l.pids.explicit_);
  EXPECT_FALSE(l.disk.value);
  s.memory = kUnlimited;
  EXPECT_EQ(resolve_limits(s, 8 * kGiB).tmpfs, 4 * kGiB);  // the kernel's default, half of RAM
}

TEST(Limits, RecordedInTheResult) {
  RunSpec s;
  s.pids_limit = kUnlimited;
  RunResult r;
  record_limits(resolve_limits(s, 4 * kGiB), s, r);
  EXPECT_EQ(r.limits.at("memory"), 3 * kGiB);
  EXPECT_EQ(r.limits.at("pids"), std::nullopt);
  EXPECT_EQ(r.limits.at("disk"), 10 * kGiB);
  EXPECT_EQ(r.limits.at("tmpfs"), 3 * kGiB / 2);
  EXPECT_EQ(r.limits.at("nofile"), 1024u);
}

TEST(Limits, HostMemoryFromMeminfo) {
  TempDir dir("/tmp", "limits-test-");
  const std::string path = (dir.path() / "meminfo").string();
  std::ofstream(path) << "MemTotal:       24683664 kB\nMemFree:  1 kB\n";
  EXPECT_EQ(host_memory_bytes(path), uint64_t{24683664} << 10);
  std::ofstream(path) << "MemFree: 1 kB\n";
  EXPECT_THROW(host_memory_bytes(path), ConfigError);
  EXPECT_GT(host_memory_bytes("/proc/meminfo"), 0u);
}

}  // namespace
}  // namespace benchrun::run
