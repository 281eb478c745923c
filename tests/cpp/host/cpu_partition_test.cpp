// cpu_partition_test.cpp: the CPU partition on fake v1 and v2 cgroup trees (plain directories and
// files laid out like cgroupfs; the partition's own files exist beforehand, as cgroupfs would
// create them on mkdir). The kernel's refusals are imitated by a directory where a file should be
// (every write to it fails).
#include "benchrun/host/cpu_partition.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "benchrun/common/error.hpp"
#include "benchrun/common/fs.hpp"

namespace h = benchrun::host;
namespace fs = std::filesystem;

namespace {

std::string slurp(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

void put(const fs::path& path, const std::string& data) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::trunc);
  out << data;
}

class FakeTree : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_.emplace(fs::temp_directory_path(), "cgfake-");
    put(root() / "online", "0-3\n");
  }
  fs::path root() const { return dir_->path(); }
  h::PartitionConfig config(h::CgroupVersion v) const {
    return {root().string(), "benchrun", v, (root() / "online").string()};
  }
  // v1: <root>/cpuset with the root cpuset, a "docker" sibling and the partition's empty files.
  fs::path v1(const std::string& docker_cpus) {
    const fs::path top = root() / "cpuset";
    put(top / "cpuset.cpus", "0-3\n");
    put(top / "cpuset.mems", "0\n");
    put(top / "docker" / "cpuset.cpus", docker_cpus);
    put(top / "benchrun" / "cpuset.cpus", "");
    put(top / "benchrun" / "cpuset.mems", "");
    put(top / "benchrun" / "cpuset.cpu_exclusive", "0\n");
    return top / "benchrun";
  }
  fs::path v2() {
    put(root() / "cgroup.controllers", "cpuset cpu io memory pids\n");
    put(root() / "cgroup.subtree_control", "memory pids\n");
    put(root() / "cpuset.cpus.effective", "0-3\n");
    put(root() / "other" / "cpuset.cpus", "0-1\n");
    put(root() / "benchrun" / "cpuset.cpus", "");
    put(root() / "benchrun" / "cpuset.cpus.partition", "member\n");
    return root() / "benchrun";
  }
  std::optional<benchrun::TempDir> dir_;
};

}  // namespace

TEST_F(FakeTree, V1ExclusiveCpusetOfTheBenchmarkCpus) {
  const fs::path p = v1("0\n");
  const auto c = config(h::CgroupVersion::kV1);
  EXPECT_FALSE(h::partition_status(c).exists);
  EXPECT_EQ(h::run_cpus(c), (h::CpuList{0, 1, 2, 3}));
  h::PartitionStatus st = h::create_partition(c, {2, 3});
  EXPECT_EQ(slurp(p / "cpuset.cpus"), "2-3");
  EXPECT_EQ(slurp(p / "cpuset.mems"), "0");
  EXPECT_EQ(slurp(p / "cpuset.cpu_exclusive"), "1");
  EXPECT_TRUE(st.exists);
  EXPECT_TRUE(st.exclusive);
  EXPECT_EQ(st.mode, "exclusive");
  EXPECT_EQ(st.cpus, (h::CpuList{2, 3}));
  EXPECT_EQ(st.housekeeping, (h::CpuList{0, 1}));
  EXPECT_EQ(h::run_cpus(c), (h::CpuList{2, 3}));

  h::remove_partition(c);
  EXPECT_EQ(slurp(p / "cpuset.cpu_exclusive"), "0");
  EXPECT_EQ(slurp(p / "cpuset.cpus"), "0-3");  // back to all (a parent the runs still use)
  EXPECT_FALSE(h::partition_status(c).exists);
  h::remove_partition(c);  // idempotent
}

TEST_F(FakeTree, V1RefusedExclusivityNamesTheOverlappingSiblingAndRollsBack) {
  const fs::path p = v1("0-3\n");
  fs::remove(p / "cpuset.cpu_exclusive");
  fs::create_directory(p / "cpuset.cpu_exclusive");  // every write fails, as EINVAL would
  const auto c = config(h::CgroupVersion::kV1);
  try {
    h::create_partition(c, {3});
    FAIL() << "exclusive partition despite the refusal";
  } catch (const benchrun::SandboxError& e) {
    const std::string m = e.what();
    EXPECT_EQ(e.stage(), "cpu partition");
    EXPECT_NE(m.find("cpuset/docker' (cpus 0-3)"), std::string::npos) << m;
  }
  EXPECT_EQ(slurp(p / "cpuset.cpus"), "");  // as it was
  // Without require_exclusive: a shared partition, and the note says why.
  h::PartitionStatus st = h::create_partition(c, {3}, false);
  EXPECT_TRUE(st.exists);
  EXPECT_FALSE(st.exclusive);
  EXPECT_EQ(st.mode, "shared");
  EXPECT_NE(st.note.find("docker"), std::string::npos) << st.note;
  EXPECT_EQ(h::run_cpus(c), h::CpuList{3});
}

TEST_F(FakeTree, RefusesPartitionsWithoutHousekeepingOrOfflineCpus) {
  v1("0\n");
  const auto c = config(h::CgroupVersion::kV1);
  EXPECT_THROW(h::create_partition(c, {0, 1, 2, 3}), benchrun::ConfigError);
  EXPECT_THROW(h::create_partition(c, {4}), benchrun::ConfigError);
  EXPECT_THROW(h::create_partition(c, {}), benchrun::ConfigError);
  h::PartitionConfig bad = c;
  bad.name = "../etc";
  EXPECT_THROW(h::partition_status(bad), benchrun::ConfigError);
}

TEST_F(FakeTree, V2IsolatedPartition) {
  const fs::path p = v2();
  const auto c = config(h::CgroupVersion::kV2);
  EXPECT_FALSE(h::partition_status(c).exists);
  h::PartitionStatus st = h::create_partition(c, {1, 2, 3});
  EXPECT_EQ(slurp(root() / "cgroup.subtree_control"), "+cpuset");  // enabled for the partition
  EXPECT_EQ(slurp(p / "cpuset.cpus"), "1-3");
  EXPECT_EQ(slurp(p / "cpuset.cpus.partition"), "isolated");
  EXPECT_TRUE(st.exclusive);
  EXPECT_EQ(st.mode, "isolated");
  EXPECT_EQ(st.housekeeping, h::CpuList{0});
  EXPECT_EQ(st.note, "");
  h::remove_partition(c);
  EXPECT_EQ(slurp(p / "cpuset.cpus.partition"), "member");
  EXPECT_EQ(slurp(p / "cpuset.cpus"), "");
  EXPECT_FALSE(h::partition_status(c).exists);
}

TEST_F(FakeTree, V2BalancedPartitionIsRootOnly) {
  const fs::path p = v2();
  h::PartitionStatus st = h::create_partition(config(h::CgroupVersion::kV2), {3}, true, false);
  EXPECT_EQ(slurp(p / "cpuset.cpus.partition"), "root");
  EXPECT_EQ(st.mode, "root");
  EXPECT_TRUE(st.exclusive);
  EXPECT_EQ(st.note, "");
}

TEST_F(FakeTree, V2RefusedPartitionNamesTheSiblingsAndRollsBack) {
  const fs::path p = v2();
  fs::remove(p / "cpuset.cpus.partition");
  fs::create_directory(p / "cpuset.cpus.partition");
  const auto c = config(h::CgroupVersion::kV2);
  try {
    h::create_partition(c, {1});
    FAIL();
  } catch (const benchrun::SandboxError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("isolated refused"), std::string::npos) << m;
    EXPECT_NE(m.find("root refused"), std::string::npos) << m;
    EXPECT_NE(m.find("/other' (cpus 0-1)"), std::string::npos) << m;
  }
  EXPECT_EQ(slurp(p / "cpuset.cpus"), "");
}
