// cpus_test.cpp: CPU list parsing/formatting and scoped thread affinity.
#include "benchrun/host/cpus.hpp"

#include <gtest/gtest.h>

#include "benchrun/common/error.hpp"

namespace h = benchrun::host;

TEST(CpuList, ParsesAndFormatsTheKernelFormat) {
  EXPECT_EQ(h::parse_cpu_list("0-2,5,7-8\n", "cpus"), (h::CpuList{0, 1, 2, 5, 7, 8}));
  EXPECT_EQ(h::parse_cpu_list("", "cpus"), h::CpuList{});
  EXPECT_EQ(h::parse_cpu_list("3,1,1", "cpus"), (h::CpuList{1, 3}));
  EXPECT_EQ(h::format_cpu_list({0, 1, 2, 5, 7, 8}), "0-2,5,7-8");
  EXPECT_EQ(h::format_cpu_list({4}), "4");
  EXPECT_EQ(h::format_cpu_list({}), "");
}

TEST(CpuList, RejectsGarbageNamingIt) {
  for (const char* bad : {"a", "1-", "-1", "3-1", "1,,x", "5000", "1.5"}) {
    try {
      h::parse_cpu_list(bad, "cpus");
      ADD_FAILURE() << bad;
    } catch (const benchrun::ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("cpus '"), std::string::npos) << e.what();
    }
  }
}

TEST(CpuList, SetOperations) {
  EXPECT_EQ(h::cpu_difference({0, 1, 2, 3}, {1, 3}), (h::CpuList{0, 2}));
  EXPECT_EQ(h::cpu_union({0, 2}, {1, 2}), (h::CpuList{0, 1, 2}));
  EXPECT_TRUE(h::cpu_subset({1}, {0, 1}));
  EXPECT_FALSE(h::cpu_subset({1, 4}, {0, 1}));
}

TEST(ScopedAffinity, MovesTheThreadAndRestoresIt) {
  const h::CpuList before = h::thread_affinity(0);
  ASSERT_FALSE(before.empty());
  {
    h::ScopedAffinity a({before.back()});
    EXPECT_TRUE(a.applied());
    EXPECT_EQ(h::thread_affinity(0), h::CpuList{before.back()});
  }
  EXPECT_EQ(h::thread_affinity(0), before);
  h::ScopedAffinity none({});
  EXPECT_FALSE(none.applied());
}
