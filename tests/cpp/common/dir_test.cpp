// dir_test.cpp: Dir and list_dir: names without "." and "..", directory detection without following
// symlinks, errors naming the directory, and no leaked descriptors.
#include "benchrun/common/dir.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <map>

#include "benchrun/common/error.hpp"
#include "benchrun/common/fs.hpp"
#include "benchrun/common/unique_fd.hpp"

namespace fs = std::filesystem;
using benchrun::Dir;
using benchrun::DirEntry;
using benchrun::list_dir;
using benchrun::SysError;
using benchrun::TempDir;
using benchrun::UniqueFd;

namespace {

std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

size_t open_fds() { return list_dir("/proc/self/fd").size(); }

class DirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::ofstream(root() + "/file") << "x";
    fs::create_directory(root() + "/sub");
    std::ofstream(root() + "/sub/inner") << "y";
    fs::create_symlink("sub", root() + "/link-to-dir");
    fs::create_symlink("missing", root() + "/dangling");
    std::ofstream(root() + "/.hidden") << "z";  // a dot file is a name like any other
  }
  std::string root() const { return tmp_.path().string(); }
  TempDir tmp_{fs::temp_directory_path(), "dir-test-"};
};

}  // namespace

TEST_F(DirTest, ListsNamesWithoutDotAndDotDot) {
  const std::vector<std::string> want{".hidden", "dangling", "file", "link-to-dir", "sub"};
  EXPECT_EQ(sorted(list_dir(root())), want);
  EXPECT_EQ(sorted(benchrun::list_dir_if_exists(root())), want);
  EXPECT_EQ(list_dir(root() + "/sub"), std::vector<std::string>{"inner"});
  EXPECT_TRUE(benchrun::list_dir_if_exists(root() + "/missing").empty());
}

TEST_F(DirTest, IsDirDoesNotFollowSymlinks) {
  Dir d = Dir::open(root());
  std::map<std::string, bool> kinds;
  while (std::optional<DirEntry> e = d.next()) kinds[std::string(e->name)] = d.is_dir(*e);
  EXPECT_EQ(kinds, (std::map<std::string, bool>{{".hidden", false},
                                                {"dangling", false},
                                                {"file", false},
                                                {"link-to-dir", false},
                                                {"sub", true}}));
  EXPECT_FALSE(d.next());  // stays at the end
  // DT_UNKNOWN (filesystems without d_type) is resolved with fstatat, also without following.
  EXPECT_TRUE(d.is_dir(DirEntry{"sub", DT_UNKNOWN}));
  EXPECT_FALSE(d.is_dir(DirEntry{"link-to-dir", DT_UNKNOWN}));
  EXPECT_FALSE(d.is_dir(DirEntry{"gone", DT_UNKNOWN}));
}

TEST_F(DirTest, ErrorsNameTheDirectory) {
  try {
    Dir::open(root() + "/missing");
    FAIL() << "no error";
  } catch (const SysError& e) {
    EXPECT_EQ(e.code(), ENOENT);
    EXPECT_EQ(e.op(), "opendir");
    EXPECT_EQ(e.path(), root() + "/missing");
  }
  EXPECT_FALSE(Dir::open_if_exists(root() + "/missing"));
  // Not a directory is an error, also for open_if_exists: only "nothing there" is normal.
  EXPECT_THROW(Dir::open_if_exists(root() + "/file"), SysError);
  EXPECT_THROW(list_dir(root() + "/file"), SysError);
}

TEST_F(DirTest, OpenAtRefusesASymlink) {
  UniqueFd fd(::open(root().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(fd);
  Dir sub = Dir::open_at(fd.get(), "sub", "tree/sub");
  EXPECT_EQ(sub.where(), "tree/sub");
  ASSERT_TRUE(sub.next());
  try {
    Dir::open_at(fd.get(), "link-to-dir", "tree/link-to-dir");
    FAIL() << "followed a symlink";
  } catch (const SysError& e) {
    // O_DIRECTORY | O_NOFOLLOW on a symlink fails with ENOTDIR (ELOOP without O_DIRECTORY).
    EXPECT_EQ(e.code(), ENOTDIR);
    EXPECT_EQ(e.path(), "tree/link-to-dir");
  }
}

TEST_F(DirTest, FromFdLeavesTheCallersFdOpenAndStartsAtTheBeginning) {
  UniqueFd fd(::open(root().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(fd);
  const size_t fds = open_fds();
  {
    Dir d = Dir::from_fd(fd.get(), "tree");
    while (d.next()) {
    }
  }
  // The caller's fd still works, and a second listing (which shares its offset) sees everything.
  struct stat st {};
  EXPECT_EQ(::fstat(fd.get(), &st), 0);
  EXPECT_EQ(list_dir(fd.get(), "tree").size(), 5u);
  EXPECT_EQ(list_dir(fd.get(), "tree").size(), 5u);
  EXPECT_EQ(open_fds(), fds);
  EXPECT_THROW(Dir::from_fd(-1, "nothing"), SysError);
}

TEST_F(DirTest, MoveTransfersTheStreamAndNothingLeaks) {
  const size_t fds = open_fds();
  {
    Dir a = Dir::open(root());
    Dir b = std::move(a);
    ASSERT_TRUE(b.next());
    Dir c = Dir::open(root() + "/sub");
    c = std::move(b);  // closes c's stream
    EXPECT_GE(c.fd(), 0);
    EXPECT_EQ(open_fds(), fds + 1);
  }
  EXPECT_EQ(open_fds(), fds);
  // Failed opens leave nothing open either.
  EXPECT_THROW(Dir::open(root() + "/missing"), SysError);
  EXPECT_THROW(Dir::open(root() + "/file"), SysError);
  EXPECT_EQ(open_fds(), fds);
}
