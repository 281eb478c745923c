// pinning_test.cpp: QMP query-cpus-fast replies, and pinning real threads (this process's own).
#include "vm/pinning.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include "benchrun/common/error.hpp"

namespace vm = benchrun::vm;
namespace h = benchrun::host;

TEST(Pinning, ParsesQueryCpusFast) {
  const std::string reply =
      R"([{"thread-id": 812, "props": {"core-id": 0}, "qom-path": "/machine/unattached/device[2]",)"
      R"( "cpu-index": 1, "target": "x86_64"},)"
      R"( {"thread-id": 811, "cpu-index": 0, "target": "x86_64"}])";
  EXPECT_EQ(vm::parse_vcpu_threads(reply),
            (std::vector<std::pair<int, pid_t>>{{0, 811}, {1, 812}}));
  for (const char* bad :
       {"{}", "[]", "[{\"cpu-index\": 0}]", "[{\"cpu-index\": 0, \"thread-id\": -1}]", "not json"})
    EXPECT_THROW(vm::parse_vcpu_threads(bad), benchrun::VmError) << bad;
}

TEST(Pinning, PinsTheVcpuThreadAndMovesTheOthers) {
  const h::CpuList mine = h::thread_affinity(0);
  ASSERT_FALSE(mine.empty());
  const pid_t tid = ::gettid();
  // This thread plays the vCPU (pinned to the last CPU); the process's other threads (none in a
  // single-threaded test binary: maybe gtest's) go to the first.
  vm::Pinning p = vm::pin_qemu_threads(::getpid(), {{0, tid}}, {mine.back()}, {mine.front()});
  EXPECT_EQ(p.notice, "");
  EXPECT_EQ(p.vcpus, (std::vector<std::pair<pid_t, int>>{{tid, mine.back()}}));
  EXPECT_EQ(h::thread_affinity(0), h::CpuList{mine.back()});
  ASSERT_EQ(h::try_set_thread_affinity(0, mine), 0);
}
