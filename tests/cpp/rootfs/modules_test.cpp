// modules_test.cpp: module dependency order from modules.dep, from .modinfo, and hostile .ko files.
#include "benchrun/rootfs/modules.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "benchrun/common/error.hpp"
#include "benchrun/common/fs.hpp"
#include "benchrun/rootfs/modinfo.hpp"
#include "rootfs/test_kernel.hpp"

namespace fs = std::filesystem;
using benchrun::ConfigError;
using benchrun::TempDir;
using benchrun::rootfs::module_depends;
using benchrun::rootfs::module_name;
using benchrun::rootfs::read_modinfo;
using benchrun::rootfs::resolve_modules;
using Strings = std::vector<std::string>;

namespace {

void put(std::string& b, size_t off, uint64_t v, size_t width) {
  for (size_t i = 0; i < width; ++i) b[off + i] = static_cast<char>(v >> (8 * i));
}

// A minimal ET_REL ELF64 file with sections [null, .shstrtab, .modinfo].
std::string make_ko(std::string_view modinfo) {
  const std::string shstrtab("\0.shstrtab\0.modinfo\0", 20);
  std::string b(64, '\0');
  b.replace(0, 4, "\177ELF");
  b[4] = 2;           // ELFCLASS64
  b[5] = 1;           // little endian
  b[6] = 1;           // EV_CURRENT
  put(b, 16, 1, 2);   // ET_REL
  put(b, 18, 62, 2);  // EM_X86_64
  put(b, 20, 1, 4);
  const size_t strtab_off = b.size();
  b += shstrtab;
  const size_t modinfo_off = b.size();
  b += modinfo;
  while (b.size() % 8) b += '\0';
  const size_t shoff = b.size();
  b += std::string(3 * 64, '\0');
  put(b, 40, shoff, 8);
  put(b, 52, 64, 2);
  put(b, 58, 64, 2);
  put(b, 60, 3, 2);
  put(b, 62, 1, 2);
  auto section = [&](size_t i, uint32_t name, uint32_t type, size_t off, size_t size) {
    const size_t h = shoff + i * 64;
    put(b, h + 0, name, 4);
    put(b, h + 4, type, 4);
    put(b, h + 24, off, 8);
    put(b, h + 32, size, 8);
  };
  section(1, 1, 3, strtab_off, shstrtab.size());
  section(2, 11, 1, modinfo_off, modinfo.size());
  return b;
}

std::string modinfo_for(const std::string& name, const std::string& depends) {
  return std::string("license=GPL\0", 12) + "depends=" + depends + std::string("\0", 1) +
         "name=" + name + std::string("\0\0\0", 3);
}

void write(const fs::path& p, std::string_view data) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << data;
}

// The position of each path in order, for "a before b" checks.
size_t pos(const Strings& order, const std::string& suffix) {
  for (size_t i = 0; i < order.size(); ++i)
    if (order[i].size() >= suffix.size() &&
        order[i].compare(order[i].size() - suffix.size(), suffix.size(), suffix) == 0)
      return i;
  ADD_FAILURE() << suffix << " not in the order";
  return order.size();
}

class ModulesDepFile : public ::testing::Test {
 protected:
  void SetUp() override {
    write(tmp_.path() / "modules.dep",
          "kernel/a.ko: kernel/b.ko kernel/c-d.ko\n"
          "kernel/b.ko: kernel/c-d.ko\n"
          "kernel/c-d.ko:\n"
          "kernel/e.ko: kernel/gone.ko\n"
          "kernel/x.ko: kernel/y.ko\n"
          "kernel/y.ko: kernel/z.ko\n"
          "kernel/z.ko: kernel/x.ko\n"
          "kernel/packed.ko.xz:\n"
          "kernel/uses_builtin.ko: kernel/builtin-one.ko\n");
    write(tmp_.path() / "modules.builtin", "kernel/builtin-one.ko\nkernel/fs/other.ko\n");
  }
  std::string dir() const { return tmp_.path().string(); }
  TempDir tmp_{fs::temp_directory_path(), "modules-test-"};
};

}  // namespace

TEST(ModulesName, NormalizesDashesAndSuffixes) {
  EXPECT_EQ(module_name("kernel/drivers/char/hw_random/virtio-rng.ko"), "virtio_rng");
  EXPECT_EQ(module_name("virtio-rng"), "virtio_rng");
  EXPECT_EQ(module_name("a/b.ko.zst"), "b");
}

TEST_F(ModulesDepFile, DependenciesFirstEachOnce) {
  EXPECT_EQ(resolve_modules(dir(), {"a"}),
            (Strings{"kernel/c-d.ko", "kernel/b.ko", "kernel/a.ko"}));
  EXPECT_EQ(resolve_modules(dir(), {"c_d", "a", "b", "a"}),
            (Strings{"kernel/c-d.ko", "kernel/b.ko", "kernel/a.ko"}));
  EXPECT_EQ(resolve_modules(dir(), {}), Strings{});
}

TEST_F(ModulesDepFile, BuiltinModulesAreSkipped) {
  EXPECT_EQ(resolve_modules(dir(), {"builtin_one", "other"}), Strings{});
  EXPECT_EQ(resolve_modules(dir(), {"uses-builtin"}), Strings{"kernel/uses_builtin.ko"});
}

TEST_F(ModulesDepFile, UnknownModuleNamesItAndTheDirectory) {
  try {
    resolve_modules(dir(), {"nope"});
    FAIL() << "no exception";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("'nope'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(dir()), std::string::npos) << e.what();
  }
}

TEST_F(ModulesDepFile, MissingDependencyNamesWhoNeedsIt) {
  try {
    resolve_modules(dir(), {"e"});
    FAIL() << "no exception";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("'gone' (needed by 'e')"), std::string::npos) << e.what();
  }
}

TEST_F(ModulesDepFile, CycleIsAConfigError) {
  try {
    resolve_modules(dir(), {"x"});
    FAIL() << "no exception";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("cycle x -> y -> z -> x"), std::string::npos) << e.what();
  }
}

TEST_F(ModulesDepFile, CompressedModuleIsRefused) {
  try {
    resolve_modules(dir(), {"packed"});
    FAIL() << "no exception";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("compressed"), std::string::npos) << e.what();
  }
}

TEST_F(ModulesDepFile, PathsEscapingTheDirectoryAreRefused) {
  write(tmp_.path() / "modules.dep", "../../etc/evil.ko:\n");
  EXPECT_THROW(resolve_modules(dir(), {"evil"}), ConfigError);
  write(tmp_.path() / "modules.dep", "kernel/a.ko: /etc/evil.ko\n");
  EXPECT_THROW(resolve_modules(dir(), {"a"}), ConfigError);
}

TEST(ModulesTree, NotADirectory) {
  EXPECT_THROW(resolve_modules("/nonexistent/modules", {"a"}), ConfigError);
  EXPECT_THROW(resolve_modules("", {"a"}), ConfigError);
}

TEST(ModulesModinfo, ResolvesFromModinfoWithoutModulesDep) {
  TempDir tmp(fs::temp_directory_path(), "modules-test-");
  const fs::path k = tmp.path() / "kernel";
  write(k / "drivers/virtio/virtio.ko", make_ko(modinfo_for("virtio", "virtio_ring")));
  write(k / "drivers/virtio/virtio_ring.ko", make_ko(modinfo_for("virtio_ring", "")));
  write(k / "drivers/virtio/virtio_mmio.ko",
        make_ko(modinfo_for("virtio_mmio", "virtio,virtio_ring")));
  write(k / "drivers/char/hw_random/virtio-rng.ko",
        make_ko(modinfo_for("virtio_rng", "virtio_ring,virtio")));
  write(k / "fs/packed.ko.zst", "not read");
  write(k / "drivers/broken.ko", "garbage");
  write(tmp.path() / "modules.builtin", "kernel/lib/crc32c.ko\n");
  write(k / "uses_crc.ko", make_ko(modinfo_for("uses_crc", "crc32c")));
  // Debian's tree has "build" and "source" symlinks to the headers: not to be walked.
  fs::create_directory_symlink("/", tmp.path() / "build");
  const std::string dir = tmp.path().string();

  EXPECT_EQ(resolve_modules(dir, {"virtio-rng", "virtio_mmio"}),
            (Strings{"kernel/drivers/virtio/virtio_ring.ko", "kernel/drivers/virtio/virtio.ko",
                     "kernel/drivers/char/hw_random/virtio-rng.ko",
                     "kernel/drivers/virtio/virtio_mmio.ko"}));
  EXPECT_EQ(resolve_modules(dir, {"uses_crc"}), Strings{"kernel/uses_crc.ko"});
  EXPECT_THROW(resolve_modules(dir, {"packed"}), ConfigError);
  EXPECT_THROW(resolve_modules(dir, {"broken"}), ConfigError);
  EXPECT_THROW(resolve_modules(dir, {"absent"}), ConfigError);
}

TEST(ModulesModinfo, ReadsKeyValuePairs) {
  const std::string ko = make_ko(modinfo_for("m", "a,b"));
  auto info = read_modinfo(ko, "m.ko");
  ASSERT_EQ(info.size(), 3u);
  EXPECT_EQ(info[0], (std::pair<std::string, std::string>{"license", "GPL"}));
  EXPECT_EQ(info[2], (std::pair<std::string, std::string>{"name", "m"}));
  EXPECT_EQ(module_depends(ko, "m.ko"), (Strings{"a", "b"}));
  EXPECT_EQ(module_depends(make_ko(modinfo_for("m", "")), "m.ko"), Strings{});
}

TEST(ModulesModinfo, HostileElfIsAConfigError) {
  const std::string good = make_ko(modinfo_for("m", "a"));
  auto patched = [&](size_t off, uint64_t v, size_t width) {
    std::string b = good;
    put(b, off, v, width);
    return b;
  };
  const size_t shoff = good.size() - 3 * 64;
  const std::vector<std::pair<const char*, std::string>> cases = {
      {"empty", ""},
      {"truncated header", good.substr(0, 40)},
      {"truncated section table", good.substr(0, good.size() - 10)},
      {"not ELF", std::string(200, 'A')},
      {"32-bit", patched(4, 1, 1)},
      {"big endian", patched(5, 2, 1)},
      {"not ET_REL", patched(16, 2, 2)},
      {"shoff beyond the file", patched(40, good.size() + 1, 8)},
      {"shoff overflows", patched(40, ~uint64_t{0} - 8, 8)},
      {"shentsize", patched(58, 40, 2)},
      {"no sections", patched(60, 0, 2)},
      {"shnum beyond the file", patched(60, 0xfffe, 2)},
      {"shstrndx out of range", patched(62, 7, 2)},
      {"shstrndx xindex", patched(62, 0xffff, 2)},
      {"strtab offset out of range", patched(shoff + 64 + 24, 1ull << 40, 8)},
      {"strtab size overflows", patched(shoff + 64 + 32, ~uint64_t{0}, 8)},
      {"name offset out of range", patched(shoff + 128, 5000, 4)},
      {"modinfo offset out of range", patched(shoff + 128 + 24, good.size(), 8)},
      {"modinfo size overflows", patched(shoff + 128 + 32, ~uint64_t{0} - 100, 8)},
      {"modinfo nobits", patched(shoff + 128 + 4, 8, 4)},
      {"no .modinfo", patched(shoff + 128, 2, 4)},  // renamed to "shstrtab"
  };
  for (const auto& [what, bytes] : cases)
    EXPECT_THROW(read_modinfo(bytes, what), ConfigError) << what;
}

TEST(ModulesModinfo, RandomCorruptionNeverCrashes) {
  const std::string good = make_ko(modinfo_for("m", "a,b"));
  std::mt19937 rng(1234);
  for (int i = 0; i < 5000; ++i) {
    std::string b = good;
    const int flips = 1 + static_cast<int>(rng() % 8);
    for (int f = 0; f < flips; ++f) b[rng() % b.size()] = static_cast<char>(rng());
    if (rng() % 4 == 0) b.resize(rng() % b.size());
    try {
      read_modinfo(b, "fuzz");
    } catch (const ConfigError&) {
    }
  }
}

// The real Debian cloud kernel: no modules.dep, so this goes through .modinfo.
TEST(ModulesRealKernel, VirtioAndVsockInDependencyOrder) {
  std::string why;
  const benchrun::vm::Kernel* kernel = benchrun::testing::test_kernel(&why);
  if (!kernel) GTEST_SKIP() << why;
  const Strings order = resolve_modules(
      kernel->modules_dir,
      {"virtio_mmio", "virtio_blk", "virtio_console", "vmw_vsock_virtio_transport"});
  std::set<std::string> names;
  for (const std::string& rel : order) EXPECT_TRUE(names.insert(module_name(rel)).second) << rel;
  for (const char* expected :
       {"virtio", "virtio_ring", "virtio_mmio", "virtio_blk", "virtio_console", "vsock",
        "vmw_vsock_virtio_transport_common", "vmw_vsock_virtio_transport"})
    EXPECT_EQ(names.count(expected), 1u) << expected;
  // Every module's own dependencies come before it.
  for (size_t i = 0; i < order.size(); ++i) {
    const std::string path = kernel->modules_dir + "/" + order[i];
    for (const std::string& dep : module_depends(benchrun::read_file(path, 64 << 20), path))
      EXPECT_LT(pos(order, "/" + dep + ".ko"), i) << dep << " before " << order[i];
  }
  EXPECT_LT(pos(order, "/virtio_ring.ko"), pos(order, "/virtio.ko"));
  EXPECT_LT(pos(order, "/vsock.ko"), pos(order, "/vmw_vsock_virtio_transport_common.ko"));
}
