// kernel_test.cpp: bzImage header parsing, user-named kernels, and Debian kernel provisioning
// (offline with fake apt-get packages built by dpkg-deb, and for real into the shared test cache).
#include "benchrun/vm/kernel.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
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
using benchrun::VmError;
using benchrun::vm::bzimage_release;
using benchrun::vm::Kernel;
using benchrun::vm::kernel_from_path;
using benchrun::vm::provision_debian_kernel;

namespace {

void write(const fs::path& p, std::string_view data, mode_t mode = 0644) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << data;
  ::chmod(p.c_str(), mode);
}

void put16(std::string& b, size_t off, unsigned v) {
  b[off] = static_cast<char>(v & 0xff);
  b[off + 1] = static_cast<char>(v >> 8);
}

// The parts of an x86 setup header bzimage_release reads, with the version string at 0x200 + ptr.
std::string fake_bzimage(const std::string& version, unsigned pointer = 0x100) {
  std::string b(4096, '\0');
  b[0x1F1] = 3;  // setup_sects: the setup area is 4 * 512 bytes
  put16(b, 0x1FE, 0xAA55);
  b.replace(0x202, 4, "HdrS");
  put16(b, 0x206, 0x020F);
  put16(b, 0x20E, pointer);
  if (0x200 + pointer + version.size() < b.size())
    b.replace(0x200 + pointer, version.size(), version);
  return b;
}

bool have(const char* tool) {
  return benchrun::run_subprocess({"sh", "-c", std::string("command -v ") + tool}).ok();
}

// Builds name_1.0_amd64.deb in repo from a tree (dpkg-deb -b) with the given Depends.
void build_deb(const fs::path& repo, const std::string& name, const std::string& depends,
               const fs::path& tree) {
  fs::create_directories(tree / "DEBIAN");
  std::string control = "Package: " + name +
                        "\nVersion: 1.0\nArchitecture: amd64\nMaintainer: t <t@example.org>\n"
                        "Description: test\n";
  if (!depends.empty()) control += "Depends: " + depends + "\n";
  write(tree / "DEBIAN/control", control);
  auto r = benchrun::run_subprocess({"dpkg-deb", "--root-owner-group", "-Zgzip", "-b",
                                     tree.string(), (repo / (name + "_1.0_amd64.deb")).string()});
  ASSERT_TRUE(r.ok()) << r.stderr_data << r.stdout_data;
}

// A fake apt-get whose "download" copies from a directory of .deb files and logs each call.
class KernelFakeArchive : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have("dpkg-deb")) GTEST_SKIP() << "dpkg-deb not installed";
    fs::create_directories(repo_);
    const fs::path img = tmp_.path() / "src-image";
    write(img / "boot/vmlinuz-9.9.9-test", fake_bzimage("9.9.9-test (t@example.org) #1 SMP"));
    write(img / "boot/config-9.9.9-test", "CONFIG_VIRTIO=m\n");
    write(img / "lib/modules/9.9.9-test/kernel/drivers/virtio/virtio.ko", "ko");
    build_deb(repo_, "linux-image-9.9.9-test", "kmod, linux-base (>= 4.3~)", img);
    build_deb(repo_, "linux-image-test-meta", "linux-image-9.9.9-test (= 1.0)",
              tmp_.path() / "src-meta");
    build_deb(repo_, "linux-image-nothing", "kmod", tmp_.path() / "src-nothing");
    write(apt_,
          "#!/bin/sh\nfor a; do pkg=$a; done\necho \"$pkg\" >> '" + calls_.string() +
              "'\n"
              "cp '" +
              repo_.string() +
              "'/\"$pkg\"_*.deb . 2>/dev/null && exit 0\n"
              "echo \"E: Unable to locate package $pkg\" >&2\nexit 100\n",
          0755);
  }

  std::string calls() {
    return fs::exists(calls_) ? benchrun::read_file(calls_, 1 << 16) : std::string();
  }

  TempDir tmp_{fs::temp_directory_path(), "kernel-test-"};
  fs::path repo_ = tmp_.path() / "repo";
  fs::path apt_ = tmp_.path() / "apt-get";
  fs::path calls_ = tmp_.path() / "calls";
  std::string cache_ = (tmp_.path() / "cache").string();
};

}  // namespace

TEST(KernelBzImage, ReadsTheReleaseFromTheSetupHeader) {
  TempDir tmp(fs::temp_directory_path(), "kernel-test-");
  const fs::path p = tmp.path() / "bz";
  write(p, fake_bzimage("5.10.0-test+ (someone@host) #1 SMP PREEMPT"));
  EXPECT_EQ(bzimage_release(p.string()), "5.10.0-test+");
}

TEST(KernelBzImage, RejectsWhatIsNotABzImage) {
  TempDir tmp(fs::temp_directory_path(), "kernel-test-");
  auto check = [&](const std::string& what, const std::string& bytes) {
    const fs::path p = tmp.path() / "bad";
    write(p, bytes);
    EXPECT_THROW(bzimage_release(p.string()), VmError) << what;
  };
  check("empty", "");
  check("garbage", std::string(100000, 'G'));
  check("truncated", fake_bzimage("1.0").substr(0, 0x205));
  std::string no_flag = fake_bzimage("1.0");
  put16(no_flag, 0x1FE, 0);
  check("no boot flag", no_flag);
  std::string old = fake_bzimage("1.0");
  put16(old, 0x206, 0x0105);
  check("old protocol", old);
  check("no version pointer", fake_bzimage("1.0", 0));
  check("pointer outside the setup area", fake_bzimage("1.0", 0x1000));
  std::string unterminated = fake_bzimage("");
  for (size_t i = 0x300; i < unterminated.size(); ++i) unterminated[i] = 'v';
  check("unterminated", unterminated);
  check("unsafe release", fake_bzimage("../../etc (x)"));
  check("empty release", fake_bzimage(" (x)"));
  EXPECT_THROW(bzimage_release((tmp.path() / "missing").string()), VmError);
}

TEST(KernelFromPath, ValidatesPaths) {
  TempDir tmp(fs::temp_directory_path(), "kernel-test-");
  const fs::path p = tmp.path() / "bz";
  write(p, fake_bzimage("6.6.6-x (a@b)"));
  fs::create_directories(tmp.path() / "mods");
  Kernel k = kernel_from_path(p.string(), (tmp.path() / "mods").string());
  EXPECT_EQ(k.image, p.string());
  EXPECT_EQ(k.release, "6.6.6-x");
  EXPECT_EQ(k.modules_dir, (tmp.path() / "mods").string());
  EXPECT_EQ(kernel_from_path(p.string()).modules_dir, "");
  EXPECT_THROW(kernel_from_path((tmp.path() / "missing").string()), ConfigError);
  EXPECT_THROW(kernel_from_path(p.string(), (tmp.path() / "nomods").string()), ConfigError);
  write(tmp.path() / "junk", "junk");
  EXPECT_THROW(kernel_from_path((tmp.path() / "junk").string()), VmError);
}

TEST_F(KernelFakeArchive, ProvisionsThroughTheMetapackageThenHitsTheCache) {
  const Kernel k = provision_debian_kernel(cache_, "linux-image-test-meta", apt_.string());
  EXPECT_EQ(k.release, "9.9.9-test");
  EXPECT_EQ(k.image, cache_ + "/kernels/9.9.9-test/vmlinuz");
  EXPECT_EQ(k.modules_dir, cache_ + "/kernels/9.9.9-test/modules");
  EXPECT_TRUE(fs::is_regular_file(k.modules_dir + "/kernel/drivers/virtio/virtio.ko"));
  EXPECT_TRUE(fs::is_regular_file(cache_ + "/kernels/9.9.9-test/config"));
  EXPECT_EQ(bzimage_release(k.image), "9.9.9-test");
  EXPECT_EQ(benchrun::read_file(cache_ + "/kernels/linux-image-test-meta.release", 100),
            "9.9.9-test\n");
  EXPECT_EQ(calls(), "linux-image-test-meta\nlinux-image-9.9.9-test\n");

  // A hit makes no apt or dpkg call at all.
  const Kernel again = provision_debian_kernel(cache_, "linux-image-test-meta",
                                               "/nonexistent/apt-get", "/nonexistent/dpkg-deb");
  EXPECT_EQ(again.image, k.image);
  EXPECT_EQ(again.release, k.release);
  // Only temp-free results remain.
  for (const auto& e : fs::directory_iterator(cache_ + "/kernels"))
    EXPECT_NE(e.path().filename().string().rfind(".tmp-", 0), 0u) << e.path();
}

TEST_F(KernelFakeArchive, AReleaseAlreadyPresentIsNotDownloadedAgain) {
  provision_debian_kernel(cache_, "linux-image-9.9.9-test", apt_.string());
  EXPECT_EQ(calls(), "linux-image-9.9.9-test\n");
  const Kernel k = provision_debian_kernel(cache_, "linux-image-test-meta", apt_.string());
  EXPECT_EQ(k.release, "9.9.9-test");
  EXPECT_EQ(calls(), "linux-image-9.9.9-test\nlinux-image-test-meta\n");
}

TEST_F(KernelFakeArchive, ConcurrentProvisionersDownloadOnce) {
  std::vector<Kernel> kernels(3);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < kernels.size(); ++i)
    threads.emplace_back([&, i] {
      kernels[i] = provision_debian_kernel(cache_, "linux-image-test-meta", apt_.string());
    });
  for (auto& t : threads) t.join();
  for (const Kernel& k : kernels) EXPECT_EQ(k.image, kernels[0].image);
  EXPECT_EQ(calls(), "linux-image-test-meta\nlinux-image-9.9.9-test\n");
}

TEST_F(KernelFakeArchive, FailuresAreVmErrorsWithAptsMessage) {
  try {
    provision_debian_kernel(cache_, "linux-image-absent", apt_.string());
    FAIL() << "no exception";
  } catch (const VmError& e) {
    EXPECT_NE(std::string(e.what()).find("Unable to locate package linux-image-absent"),
              std::string::npos)
        << e.what();
  }
  // Depends names no kernel and the name is no linux-image-<release> with a vmlinuz in it.
  EXPECT_THROW(provision_debian_kernel(cache_, "linux-image-nothing", apt_.string()), VmError);
  EXPECT_THROW(provision_debian_kernel(cache_, "linux-image-test-meta", "/nonexistent/apt-get"),
               VmError);
  EXPECT_FALSE(fs::exists(cache_ + "/kernels/linux-image-test-meta.release"));
}

TEST(KernelProvision, RejectsBadPackageNames) {
  for (const char* bad : {"", "a", "../x", "Linux-image", "-o", "pkg name", "pkg/x"})
    EXPECT_THROW(provision_debian_kernel("/nonexistent-cache", bad), ConfigError) << bad;
}

// The real thing: Debian's cloud kernel, downloaded once into the shared test cache.
TEST(KernelProvision, DebianCloudKernel) {
  std::string why;
  const Kernel* kernel = benchrun::testing::test_kernel(&why);
  if (!kernel) GTEST_SKIP() << why;
  EXPECT_EQ(bzimage_release(kernel->image), kernel->release);
  EXPECT_EQ(fs::path(kernel->modules_dir).parent_path().filename().string(), kernel->release);
  EXPECT_NE(kernel->release.find("cloud-amd64"), std::string::npos) << kernel->release;
  EXPECT_TRUE(fs::is_regular_file(kernel->modules_dir + "/kernel/drivers/virtio/virtio_mmio.ko"));
  const auto t0 = std::chrono::steady_clock::now();
  const Kernel hit = provision_debian_kernel(benchrun::testing::test_cache_dir(),
                                             "linux-image-cloud-amd64", "/nonexistent/apt-get");
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(hit.image, kernel->image);
  EXPECT_LT(ms, 100.0);
}
