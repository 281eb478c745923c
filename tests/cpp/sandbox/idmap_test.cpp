// idmap_test.cpp: subordinate id entries and the per-run slots of root runs' id ranges.
#include "benchrun/sandbox/idmap.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include "benchrun/common/error.hpp"

using namespace benchrun::sandbox;

namespace {

struct Files {
  std::filesystem::path dir;
  Files() {
    char tmpl[] = "/tmp/benchrun-idmap-XXXXXX";
    dir = ::mkdtemp(tmpl);
  }
  ~Files() { std::filesystem::remove_all(dir); }
  std::string write(const std::string& name, const std::string& text) {
    std::ofstream(dir / name) << text;
    return (dir / name).string();
  }
  IdMapConfig config(const std::string& subuid, const std::string& subgid) {
    return {write("subuid", subuid), write("subgid", subgid), (dir / "locks").string(), "benchrun"};
  }
};

}  // namespace

TEST(IdMap, ReadsTheNamedEntryOnly) {
  Files f;
  const std::string p = f.write("s", "alice:100000:65536\nbenchrun:200000:131072\n");
  SubIdEntry e = read_subid(p, "benchrun");
  EXPECT_EQ(e.start, 200000u);
  EXPECT_EQ(e.count, 131072u);
  EXPECT_EQ(read_subid(p, "bob").count, 0u);
  EXPECT_EQ(read_subid((f.dir / "missing").string(), "benchrun").count, 0u);
  EXPECT_THROW(read_subid(f.write("bad", "benchrun:x:1\n"), "benchrun"), benchrun::ConfigError);
  EXPECT_THROW(read_subid(f.write("root", "benchrun:0:65536\n"), "benchrun"),
               benchrun::ConfigError);  // would map host root
  EXPECT_THROW(read_subid(f.write("big", "benchrun:4294967000:65536\n"), "benchrun"),
               benchrun::ConfigError);
}

TEST(IdMap, ConcurrentRunsGetDisjointSlotsUntilTheRangeIsFull) {
  Files f;
  IdMapConfig c = f.config("benchrun:200000:131072\n", "benchrun:300000:131072\n");
  std::optional<IdSlot> a(acquire_id_slot(c));
  IdSlot b = acquire_id_slot(c);
  EXPECT_EQ(a->range().uid, 200000u);
  EXPECT_EQ(a->range().gid, 300000u);
  EXPECT_EQ(b.range().uid, 200000u + kSlotSize);
  EXPECT_EQ(b.range().count, kSlotSize);
  EXPECT_THROW(acquire_id_slot(c), benchrun::SandboxError);
  a.reset();  // released: the slot is free again
  EXPECT_EQ(acquire_id_slot(c).range().uid, 200000u);
}

TEST(IdMap, SlotLockIsReleasedWhenTheHolderIsKilled) {
  Files f;
  IdMapConfig c = f.config("benchrun:200000:65536\n", "benchrun:200000:65536\n");
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    IdSlot s = acquire_id_slot(c);
    char b = 'x';
    (void)!::write(p[1], &b, 1);
    ::pause();
    ::_exit(0);
  }
  char b;
  ASSERT_EQ(::read(p[0], &b, 1), 1);
  EXPECT_THROW(acquire_id_slot(c), benchrun::SandboxError);
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  EXPECT_EQ(acquire_id_slot(c).range().uid, 200000u);
  ::close(p[0]);
  ::close(p[1]);
}

TEST(IdMap, DefaultRangeWithoutAnEntry) {
  Files f;
  IdMapConfig c = f.config("alice:100000:65536\n", "");
  IdSlot s = acquire_id_slot(c);
  EXPECT_EQ(s.range().uid, kDefaultBase);
  EXPECT_EQ(s.range().gid, kDefaultBase);
}
