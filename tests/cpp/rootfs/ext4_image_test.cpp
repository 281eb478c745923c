// ext4_image_test.cpp: ext4 images built from trees, checked with e2fsck and debugfs; the cache.
#include "benchrun/rootfs/ext4_image.hpp"

#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "benchrun/common/error.hpp"
#include "benchrun/common/fs.hpp"
#include "benchrun/common/subprocess.hpp"

namespace fs = std::filesystem;
using benchrun::ConfigError;
using benchrun::TempDir;
using benchrun::rootfs::ext4_image;
using benchrun::rootfs::Ext4Options;
using benchrun::rootfs::tree_apparent_size;
using Clock = std::chrono::steady_clock;

namespace {

const std::string kKey = "sha256:" + std::string(64, 'a');
const std::string kOddName = "odd name \xc3\xbc #1";

void write(const fs::path& p, std::string_view data, mode_t mode = 0644) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << data;
  ::chmod(p.c_str(), mode);
}

std::string debugfs(const std::string& image, const std::string& request) {
  auto r = benchrun::run_subprocess({"debugfs", "-R", request, image});
  EXPECT_TRUE(r.ok()) << r.stderr_data;
  return r.stdout_data;
}

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

class Ext4Test : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!benchrun::run_subprocess({"sh", "-c", "command -v mkfs.ext4 && command -v debugfs"}).ok())
      GTEST_SKIP() << "e2fsprogs not installed";
    if (::geteuid() != 0) GTEST_SKIP() << "needs root: the tree has files only root can read";
    write(tree_ / "hello", "hello, world\n");
    write(tree_ / kOddName, "odd\n");
    write(tree_ / "nomode", "secret\n", 0);
    write(tree_ / "bin/suid", "#!/bin/sh\n", 04755);
    fs::create_symlink("hello", tree_ / "link");
    fs::create_symlink(std::string(100, 'x') + "/long/target", tree_ / "longlink");
    fs::create_hard_link(tree_ / "hello", tree_ / "bin/hard");
    write(tree_ / "locked/inside", "in a mode-000 dir\n");
    ::chmod((tree_ / "locked").c_str(), 0);
    ::chown((tree_ / "hello").c_str(), 1234, 5678);
    write(tree_ / "big", std::string(3 << 20, 'b'));
  }

  TempDir tmp_{fs::temp_directory_path(), "ext4-test-"};
  fs::path tree_ = tmp_.path() / "tree";
  std::string cache_ = (tmp_.path() / "cache").string();
};

}  // namespace

TEST_F(Ext4Test, ImageHoldsTheTree) {
  const auto t0 = Clock::now();
  const std::string img = ext4_image(tree_.string(), kKey, cache_);
  std::cout << "[ timing ] small tree: " << ms_since(t0) << " ms\n";
  EXPECT_EQ(img, cache_ + "/ext4/" + std::string(64, 'a') + ".ext4");

  auto fsck = benchrun::run_subprocess({"e2fsck", "-fn", img});
  EXPECT_EQ(fsck.exit_code, 0) << fsck.stdout_data << fsck.stderr_data;

  const std::string root = debugfs(img, "ls -l /");
  // debugfs prints non-ASCII bytes of names as \x escapes.
  for (const std::string& name : std::vector<std::string>{"hello", "odd name \\xc3\\xbc #1",
                                                          "nomode", "bin", "link", "locked", "big"})
    EXPECT_NE(root.find(name), std::string::npos) << name << " in " << root;
  EXPECT_EQ(debugfs(img, "cat /hello"), "hello, world\n");
  EXPECT_EQ(debugfs(img, "cat \"/" + kOddName + "\""), "odd\n");
  EXPECT_EQ(debugfs(img, "cat /locked/inside"), "in a mode-000 dir\n");
  EXPECT_EQ(debugfs(img, "cat /nomode"), "secret\n");

  const std::string suid = debugfs(img, "stat /bin/suid");
  EXPECT_NE(suid.find("Mode:  04755"), std::string::npos) << suid;
  const std::string nomode = debugfs(img, "stat /nomode");
  EXPECT_NE(nomode.find("Mode:  0000"), std::string::npos) << nomode;
  const std::string hello = debugfs(img, "stat /hello");
  EXPECT_NE(hello.find("Links: 2"), std::string::npos) << hello;
  EXPECT_NE(hello.find("User:  1234   Group:  5678"), std::string::npos) << hello;
  const std::string hard = debugfs(img, "stat /bin/hard");
  EXPECT_EQ(hard.substr(0, hard.find("Type")), hello.substr(0, hello.find("Type")));  // same inode
  const std::string link = debugfs(img, "stat /link");
  EXPECT_NE(link.find("Type: symlink"), std::string::npos) << link;
  EXPECT_NE(link.find("Fast link dest: \"hello\""), std::string::npos) << link;
  EXPECT_NE(debugfs(img, "stat /longlink").find("Type: symlink"), std::string::npos);
  const std::string rootdir = debugfs(img, "stat /");
  EXPECT_NE(rootdir.find("User:     0   Group:     0"), std::string::npos) << rootdir;

  const std::string super = benchrun::run_subprocess({"dumpe2fs", "-h", img}).stdout_data;
  EXPECT_NE(super.find("Filesystem volume name:   benchrun"), std::string::npos);
  EXPECT_EQ(super.find("has_journal"), std::string::npos) << super;
}

TEST_F(Ext4Test, CacheHitIsQuickAndReusesTheFile) {
  const std::string img = ext4_image(tree_.string(), kKey, cache_);
  struct stat before {};
  ASSERT_EQ(::stat(img.c_str(), &before), 0);
  const auto t0 = Clock::now();
  EXPECT_EQ(ext4_image(tree_.string(), kKey, cache_), img);
  EXPECT_LT(ms_since(t0), 50.0);
  struct stat after {};
  ASSERT_EQ(::stat(img.c_str(), &after), 0);
  EXPECT_EQ(before.st_ino, after.st_ino);
  // A hit does not even look at the tree.
  EXPECT_EQ(ext4_image((tmp_.path() / "gone").string(), kKey, cache_), img);
}

TEST_F(Ext4Test, BadKeysAreConfigErrors) {
  for (const std::string& key :
       {std::string(""), std::string("abc"), "sha256:" + std::string(63, 'a'),
        "sha256:" + std::string(64, 'A'), std::string("sha256:../../../etc/passwd"),
        "../" + std::string(64, 'a'), "md5:" + std::string(32, 'a'),
        "sha256:" + std::string(64, 'a') + "/x"})
    EXPECT_THROW(ext4_image(tree_.string(), key, cache_), ConfigError) << key;
  EXPECT_FALSE(fs::exists(fs::path(cache_) / "ext4"));
}

TEST_F(Ext4Test, MissingTreeIsAConfigError) {
  EXPECT_THROW(ext4_image((tmp_.path() / "missing").string(), kKey, cache_), ConfigError);
}

TEST_F(Ext4Test, MkfsFailuresCarryItsMessage) {
  const fs::path fake = tmp_.path() / "fake-mkfs";
  write(fake, "#!/bin/sh\necho 'mkfs.ext4: something broke' >&2\nexit 1\n", 0755);
  Ext4Options o;
  o.mkfs = fake.string();
  try {
    ext4_image(tree_.string(), kKey, cache_, o);
    FAIL() << "no exception";
  } catch (const benchrun::ImageError& e) {
    EXPECT_NE(std::string(e.what()).find("something broke"), std::string::npos) << e.what();
  }
  o.mkfs = (tmp_.path() / "no-such-mkfs").string();
  EXPECT_THROW(ext4_image(tree_.string(), kKey, cache_, o), benchrun::VmError);
  // Nothing is left behind but the lock file.
  for (const auto& e : fs::directory_iterator(fs::path(cache_) / "ext4"))
    EXPECT_EQ(e.path().filename().string(), "." + std::string(64, 'a') + ".lock");
}

TEST_F(Ext4Test, ConcurrentBuildersBuildOnce) {
  const fs::path counter = tmp_.path() / "calls";
  const fs::path wrapper = tmp_.path() / "counting-mkfs";
  write(wrapper, "#!/bin/sh\necho x >> '" + counter.string() + "'\nexec mkfs.ext4 \"$@\"\n", 0755);
  Ext4Options o;
  o.mkfs = wrapper.string();
  std::vector<std::string> paths(4);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < paths.size(); ++i)
    threads.emplace_back([&, i] { paths[i] = ext4_image(tree_.string(), kKey, cache_, o); });
  for (auto& t : threads) t.join();
  for (const auto& p : paths) EXPECT_EQ(p, paths[0]);
  EXPECT_EQ(benchrun::read_file(counter, 1024), "x\n");
}

TEST_F(Ext4Test, ZeroHeadroomStillFits) {
  // Many small files and a multi-block directory: the estimate alone must hold them. (Not more:
  // mke2fs -d fills a directory in quadratic time.)
  for (int i = 0; i < 1000; ++i)
    write(tree_ / "many" / ("file-with-a-longish-name-" + std::to_string(i)), "data");
  Ext4Options o;
  o.headroom_bytes = 0;
  o.headroom_ratio = 0;
  const std::string img = ext4_image(tree_.string(), kKey, cache_, o);
  EXPECT_EQ(benchrun::run_subprocess({"e2fsck", "-fn", img}).exit_code, 0);
  EXPECT_EQ(debugfs(img, "cat /many/file-with-a-longish-name-999"), "data");
  o.headroom_ratio = -1;
  EXPECT_THROW(ext4_image(tree_.string(), "sha256:" + std::string(64, 'b'), cache_, o),
               ConfigError);
}

// Issue 11 finding 5 (and 2): the VM cache gets the same free-space check as the store, before
// mkfs writes a block, and the images' directory is private.
TEST_F(Ext4Test, RefusedWhenTheCacheFilesystemIsTooSmall) {
  const fs::path small = tmp_.path() / "small";
  fs::create_directories(small);
  ASSERT_EQ(::mount("tmpfs", small.c_str(), "tmpfs", 0, "size=16m"), 0) << strerror(errno);
  struct Unmount {
    fs::path p;
    ~Unmount() { ::umount2(p.c_str(), MNT_DETACH); }
  } unmount{small};
  write(tree_ / "huge", std::string(24 << 20, 'h'));
  try {
    ext4_image(tree_.string(), kKey, (small / "cache").string());
    ADD_FAILURE() << "an ext4 image larger than its filesystem was built";
  } catch (const benchrun::ImageTooLarge& e) {
    EXPECT_NE(std::string(e.what()).find("MiB free"), std::string::npos) << e.what();
  }
  for (const auto& d : fs::directory_iterator(small / "cache" / "ext4"))
    EXPECT_EQ(d.path().extension(), ".lock") << d.path();  // no image, no temp file
  struct stat st {};
  ASSERT_EQ(::stat((small / "cache" / "ext4").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  fs::remove(tree_ / "huge");
  EXPECT_NO_THROW(ext4_image(tree_.string(), kKey, (small / "cache").string()));
}

TEST(Ext4TreeSize, CountsBlocksInodesAndHardLinksOnce) {
  TempDir tmp(fs::temp_directory_path(), "ext4-test-");
  const fs::path t = tmp.path() / "t";
  write(t / "one", "x");
  write(t / "d/two", std::string(4097, 'y'));
  fs::create_hard_link(t / "one", t / "d/one-again");
  fs::create_symlink("one", t / "short");
  uint64_t inodes = 0;
  const uint64_t bytes = tree_apparent_size(t.string(), &inodes);
  EXPECT_EQ(inodes, 5u);  // root, d, one, two, short
  // 5 inodes, file blocks 1 + 2, two directories of one block each.
  EXPECT_EQ(bytes, 5 * 256 + 3 * 4096 + 2 * 4096);
  EXPECT_THROW(tree_apparent_size((tmp.path() / "missing").string()), benchrun::SysError);
}
