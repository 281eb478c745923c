// initramfs_test.cpp: the cached initramfs: contents, cache keys, concurrent builders, real kernel.
#include "benchrun/rootfs/initramfs.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "benchrun/common/error.hpp"
#include "benchrun/common/fs.hpp"
#include "benchrun/common/subprocess.hpp"
#include "rootfs/test_kernel.hpp"

namespace fs = std::filesystem;
using benchrun::ConfigError;
using benchrun::TempDir;
using benchrun::rootfs::build_initramfs;
using benchrun::rootfs::InitramfsSpec;

namespace {

void write(const fs::path& p, std::string_view data) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << data;
}

std::string cpio_list(const std::string& archive) {
  benchrun::SubprocessOptions o;
  o.stdin_data = benchrun::read_file(archive, 256 << 20);
  auto r = benchrun::run_subprocess({"cpio", "-t", "--quiet"}, o);
  EXPECT_TRUE(r.ok()) << r.stderr_data;
  return r.stdout_data;
}

fs::path cpio_extract(const std::string& archive, const fs::path& dir) {
  fs::create_directories(dir);
  benchrun::SubprocessOptions o;
  o.stdin_data = benchrun::read_file(archive, 256 << 20);
  auto r = benchrun::run_subprocess(
      {"sh", "-c", "cd \"$1\" && exec cpio -idm --quiet --no-absolute-filenames", "sh",
       dir.string()},
      o);
  EXPECT_TRUE(r.ok()) << r.stderr_data;
  return dir;
}

class InitramfsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    write(init_, "\177ELF fake init");
    write(mods_ / "modules.dep",
          "kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko\n"
          "kernel/drivers/virtio/virtio_ring.ko:\n"
          "kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko "
          "kernel/drivers/virtio/virtio_ring.ko\n");
    write(mods_ / "kernel/drivers/virtio/virtio.ko", "virtio bytes");
    write(mods_ / "kernel/drivers/virtio/virtio_ring.ko", "ring bytes");
    write(mods_ / "kernel/drivers/block/virtio_blk.ko", "blk bytes");
  }
  InitramfsSpec spec() const { return {init_.string(), mods_.string(), {"virtio_blk"}}; }

  TempDir tmp_{fs::temp_directory_path(), "initramfs-test-"};
  fs::path init_ = tmp_.path() / "init-bin";
  fs::path mods_ = tmp_.path() / "lib/modules/9.9.9-test";
  std::string cache_ = (tmp_.path() / "cache").string();
};

}  // namespace

TEST_F(InitramfsTest, ContentsAndLayout) {
  const std::string path = build_initramfs(spec(), cache_);
  EXPECT_TRUE(std::regex_match(path, std::regex(".*/cache/initramfs/[0-9a-f]{64}\\.cpio"))) << path;
  EXPECT_EQ(cpio_list(path),
            "dev\nproc\nsys\ntmp\nnewroot\netc\netc/benchrun\nlib\nlib/modules\n"
            "lib/modules/kernel\nlib/modules/kernel/drivers\nlib/modules/kernel/drivers/block\n"
            "lib/modules/kernel/drivers/virtio\ndev/console\ninit\n"
            "lib/modules/kernel/drivers/virtio/virtio_ring.ko\n"
            "lib/modules/kernel/drivers/virtio/virtio.ko\n"
            "lib/modules/kernel/drivers/block/virtio_blk.ko\netc/benchrun/modules\n");
  const fs::path x = cpio_extract(path, tmp_.path() / "x");
  EXPECT_EQ(benchrun::read_file(x / "init", 1 << 20), "\177ELF fake init");
  EXPECT_EQ(benchrun::read_file(x / "etc/benchrun/modules", 1 << 20),
            "/lib/modules/kernel/drivers/virtio/virtio_ring.ko\n"
            "/lib/modules/kernel/drivers/virtio/virtio.ko\n"
            "/lib/modules/kernel/drivers/block/virtio_blk.ko\n");
  EXPECT_EQ(benchrun::read_file(x / "lib/modules/kernel/drivers/block/virtio_blk.ko", 1 << 20),
            "blk bytes");
  struct stat st {};
  ASSERT_EQ(::stat((x / "init").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  ASSERT_EQ(::lstat((x / "dev/console").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(major(st.st_rdev), 5u);
  EXPECT_EQ(minor(st.st_rdev), 1u);
  // No temp files are left beside the result.
  size_t entries = 0;
  for (const auto& e : fs::directory_iterator(fs::path(cache_) / "initramfs")) {
    (void)e;
    ++entries;
  }
  EXPECT_EQ(entries, 1u);
}

TEST_F(InitramfsTest, CacheKeyFollowsInitAndModules) {
  const std::string first = build_initramfs(spec(), cache_);
  struct stat before {};
  ASSERT_EQ(::stat(first.c_str(), &before), 0);
  EXPECT_EQ(build_initramfs(spec(), cache_), first);
  struct stat after {};
  ASSERT_EQ(::stat(first.c_str(), &after), 0);
  EXPECT_EQ(before.st_ino, after.st_ino);  // reused, not rebuilt

  write(init_, "\177ELF rebuilt init");
  const std::string new_init = build_initramfs(spec(), cache_);
  EXPECT_NE(new_init, first);

  write(mods_ / "kernel/drivers/virtio/virtio_ring.ko", "other kernel's ring");
  const std::string new_module = build_initramfs(spec(), cache_);
  EXPECT_NE(new_module, new_init);

  InitramfsSpec fewer = spec();
  fewer.modules = {"virtio_ring"};
  EXPECT_NE(build_initramfs(fewer, cache_), new_module);
}

TEST_F(InitramfsTest, WithoutModules) {
  const std::string path = build_initramfs({init_.string(), "", {}}, cache_);
  const fs::path x = cpio_extract(path, tmp_.path() / "x");
  EXPECT_EQ(benchrun::read_file(x / "etc/benchrun/modules", 1 << 20), "");
  EXPECT_TRUE(fs::is_directory(x / "lib/modules"));
}

TEST_F(InitramfsTest, BadSpecs) {
  EXPECT_THROW(build_initramfs({"", mods_.string(), {}}, cache_), ConfigError);
  EXPECT_THROW(build_initramfs({init_.string(), "", {"virtio"}}, cache_), ConfigError);
  EXPECT_THROW(build_initramfs({init_.string(), mods_.string(), {"nope"}}, cache_), ConfigError);
  EXPECT_THROW(build_initramfs(spec(), ""), ConfigError);
  EXPECT_THROW(build_initramfs({(tmp_.path() / "missing").string(), "", {}}, cache_),
               benchrun::SysError);
}

TEST_F(InitramfsTest, ConcurrentBuildersAgree) {
  std::vector<std::string> paths(6);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < paths.size(); ++i)
    threads.emplace_back([&, i] { paths[i] = build_initramfs(spec(), cache_); });
  for (auto& t : threads) t.join();
  for (const auto& p : paths) EXPECT_EQ(p, paths[0]);
  size_t entries = 0;
  for (const auto& e : fs::directory_iterator(fs::path(cache_) / "initramfs")) {
    EXPECT_EQ(e.path().string(), paths[0]);
    ++entries;
  }
  EXPECT_EQ(entries, 1u);
  EXPECT_NE(cpio_list(paths[0]).find("etc/benchrun/modules"), std::string::npos);
}

TEST(InitramfsRealKernel, VmModulesInLoadOrder) {
  std::string why;
  const benchrun::vm::Kernel* kernel = benchrun::testing::test_kernel(&why);
  if (!kernel) GTEST_SKIP() << why;
  TempDir tmp(fs::temp_directory_path(), "initramfs-test-");
  InitramfsSpec spec{"/bin/true",
                     kernel->modules_dir,
                     {"virtio_mmio", "virtio_blk", "virtio_console", "vmw_vsock_virtio_transport"}};
  const auto t0 = std::chrono::steady_clock::now();
  const std::string path = build_initramfs(spec, tmp.path().string());
  const auto t1 = std::chrono::steady_clock::now();
  EXPECT_EQ(build_initramfs(spec, tmp.path().string()), path);
  const auto t2 = std::chrono::steady_clock::now();
  using ms = std::chrono::duration<double, std::milli>;
  std::cout << "[ timing ] initramfs build " << ms(t1 - t0).count() << " ms, cache hit "
            << ms(t2 - t1).count() << " ms, " << fs::file_size(path) << " bytes\n";
  const fs::path x = cpio_extract(path, tmp.path() / "x");
  const std::string order = benchrun::read_file(x / "etc/benchrun/modules", 1 << 20);
  EXPECT_LT(order.find("/virtio_ring.ko"), order.find("/virtio.ko")) << order;
  EXPECT_LT(order.find("/virtio.ko"), order.find("/virtio_blk.ko")) << order;
  EXPECT_LT(order.find("/vsock.ko"), order.find("/vmw_vsock_virtio_transport_common.ko")) << order;
  EXPECT_NE(order.find("/lib/modules/kernel/drivers/virtio/virtio_mmio.ko\n"), std::string::npos);
  // Every listed module is in the archive.
  size_t start = 0;
  while (start < order.size()) {
    size_t nl = order.find('\n', start);
    EXPECT_TRUE(fs::is_regular_file(x / order.substr(start + 1, nl - start - 1)));
    start = nl + 1;
  }
}
