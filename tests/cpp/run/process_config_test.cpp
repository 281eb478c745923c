// process_config_test.cpp: Docker's entrypoint/cmd/env/workdir/user semantics and hostile values.
#include "run/process_config.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "benchrun/common/error.hpp"
#include "benchrun/common/fs.hpp"

namespace fs = std::filesystem;
using benchrun::ConfigError;
using benchrun::oci::ImageConfig;
using benchrun::run::checked_image_path;
using benchrun::run::resolve_process;
using benchrun::run::RunSpec;

namespace {

class ProcessConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::make_unique<benchrun::TempDir>(fs::temp_directory_path(), "pc-");
    fs::create_directories(dir_->path() / "etc");
    std::ofstream(dir_->path() / "etc/passwd")
        << "root:x:0:0:root:/root:/bin/sh\nbench:x:1000:1000::/home/bench:/bin/sh\n"
           "nobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n";
    std::ofstream(dir_->path() / "etc/group")
        << "root:x:0:\nbench:x:1000:\nperf:x:1200:bench,other\n";
    rootfd_ = ::open(dir_->path().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    image_.entrypoint = {"/bin/ep"};
    image_.cmd = {"default", "args"};
    image_.env = {"PATH=/img/bin", "A=image"};
    image_.working_dir = "/work";
  }
  void TearDown() override { ::close(rootfd_); }
  std::unique_ptr<benchrun::TempDir> dir_;
  int rootfd_ = -1;
  ImageConfig image_;
};

using V = std::vector<std::string>;

TEST_F(ProcessConfigTest, ImageEntrypointAndCmd) {
  auto p = resolve_process(image_, RunSpec{}, rootfd_);
  EXPECT_EQ(p.argv, (V{"/bin/ep", "default", "args"}));
  EXPECT_EQ(p.cwd, "/work");
  EXPECT_EQ(p.uid, 0u);
}

TEST_F(ProcessConfigTest, CommandReplacesCmdOnly) {
  RunSpec s;
  s.command = V{"mine"};
  EXPECT_EQ(resolve_process(image_, s, rootfd_).argv, (V{"/bin/ep", "mine"}));
}

TEST_F(ProcessConfigTest, EntrypointReplacesEntrypointAndClearsCmd) {
  RunSpec s;
  s.entrypoint = V{"/bin/other"};
  EXPECT_EQ(resolve_process(image_, s, rootfd_).argv, (V{"/bin/other"}));
  s.command = V{"x"};
  EXPECT_EQ(resolve_process(image_, s, rootfd_).argv, (V{"/bin/other", "x"}));
  s.entrypoint = V{};
  EXPECT_EQ(resolve_process(image_, s, rootfd_).argv, (V{"x"}));
  s.command.reset();
  EXPECT_THROW(resolve_process(image_, s, rootfd_), ConfigError);
}

TEST_F(ProcessConfigTest, EnvOverridesAndDefaults) {
  RunSpec s;
  s.env = {"A=mine", "B=new"};
  auto p = resolve_process(image_, s, rootfd_);
  EXPECT_EQ(p.env, (V{"PATH=/img/bin", "A=mine", "B=new", "HOSTNAME=benchrun", "HOME=/root"}));
  image_.env.clear();
  p = resolve_process(image_, RunSpec{}, rootfd_);
  EXPECT_EQ(p.env.front().rfind("PATH=/usr/local/sbin", 0), 0u);
  s.env = {"NOEQUALS"};
  EXPECT_THROW(resolve_process(image_, s, rootfd_), ConfigError);
}

TEST_F(ProcessConfigTest, Users) {
  RunSpec s;
  s.user = "bench";
  auto p = resolve_process(image_, s, rootfd_);
  EXPECT_EQ(p.uid, 1000u);
  EXPECT_EQ(p.gid, 1000u);
  EXPECT_EQ(p.groups, (std::vector<gid_t>{1200}));
  s.user = "65534";
  p = resolve_process(image_, s, rootfd_);
  EXPECT_EQ(p.uid, 65534u);
  EXPECT_EQ(p.gid, 65534u);  // from passwd
  s.user = "4242:77";
  p = resolve_process(image_, s, rootfd_);
  EXPECT_EQ(p.uid, 4242u);
  EXPECT_EQ(p.gid, 77u);
  s.user = "bench:perf";
  EXPECT_EQ(resolve_process(image_, s, rootfd_).gid, 1200u);
  s.user = "ghost";
  EXPECT_THROW(resolve_process(image_, s, rootfd_), ConfigError);
  s.user = "bench:nogroup";
  EXPECT_THROW(resolve_process(image_, s, rootfd_), ConfigError);
}

TEST_F(ProcessConfigTest, PasswdSymlinkOutsideRootStaysInside) {
  fs::remove(dir_->path() / "etc/passwd");
  // Would be the host's /etc/shadow if followed on the host; in the image root it is missing.
  fs::create_symlink("../../../../../../etc/shadow", dir_->path() / "etc/passwd");
  RunSpec s;
  s.user = "root";  // the host's root entry must not be found through the link
  EXPECT_THROW(resolve_process(image_, s, rootfd_), ConfigError);
}

TEST_F(ProcessConfigTest, HostileWorkdirsRefused) {
  for (const char* bad :
       {"/../../etc", "/proc/self/fd/7", "relative", "/a/../../b", "/sys/x", "/dev"}) {
    image_.working_dir = bad;
    EXPECT_THROW(resolve_process(image_, RunSpec{}, rootfd_), ConfigError) << bad;
  }
  image_.working_dir = "/a/./b/../c/";
  EXPECT_EQ(resolve_process(image_, RunSpec{}, rootfd_).cwd, "/a/c");
}

// Finding 10 (issue 11): WorkingDir through an in-image symlink ended in /proc/self.
TEST_F(ProcessConfigTest, WorkdirSymlinksResolveInsideTheImage) {
  fs::create_symlink("/proc/self", dir_->path() / "w");
  fs::create_symlink("../../../proc/self/cwd", dir_->path() / "rel");
  fs::create_directories(dir_->path() / "real/sub");
  fs::create_symlink("../real", dir_->path() / "etc/up");
  fs::create_symlink("loop2", dir_->path() / "loop1");
  fs::create_symlink("loop1", dir_->path() / "loop2");
  fs::create_symlink("nowhere/../w", dir_->path() / "back");  // ".." over a missing directory
  for (const char* bad : {"/w", "/w/cwd", "/rel", "/loop1", "/back"}) {
    image_.working_dir = bad;
    EXPECT_THROW(resolve_process(image_, RunSpec{}, rootfd_), ConfigError) << bad;
  }
  image_.working_dir = "/etc/up/sub";
  EXPECT_EQ(resolve_process(image_, RunSpec{}, rootfd_).cwd, "/real/sub");
  image_.working_dir = "/etc/up/new/dir";  // created by the sandbox, as Docker's WORKDIR
  EXPECT_EQ(resolve_process(image_, RunSpec{}, rootfd_).cwd, "/real/new/dir");
  image_.working_dir = "/etc/passwd/x";  // a file in the way: the sandbox's mkdir reports it
  EXPECT_EQ(resolve_process(image_, RunSpec{}, rootfd_).cwd, "/etc/passwd/x");
  RunSpec s;
  s.workdir = "/w";  // the user's --workdir is resolved the same way
  EXPECT_THROW(resolve_process(image_, s, rootfd_), ConfigError);
}

TEST(CheckedImagePath, Normalises) {
  EXPECT_EQ(checked_image_path("/", "p"), "/");
  EXPECT_EQ(checked_image_path("/tmp//out.json", "p"), "/tmp/out.json");
  EXPECT_THROW(checked_image_path("/tmp/../../x", "p"), ConfigError);
  EXPECT_THROW(checked_image_path("/proc/1/environ", "p"), ConfigError);
}

}  // namespace
