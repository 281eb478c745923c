// cpio_test.cpp: the newc writer's bytes, checked by GNU cpio listing and extracting them.
#include "benchrun/rootfs/cpio.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "benchrun/common/error.hpp"
#include "benchrun/common/fs.hpp"
#include "benchrun/common/subprocess.hpp"

namespace fs = std::filesystem;
using benchrun::ConfigError;
using benchrun::TempDir;
using benchrun::UniqueFd;
using benchrun::rootfs::CpioWriter;

namespace {

class CpioTest : public ::testing::Test {
 protected:
  TempDir tmp_{fs::temp_directory_path(), "cpio-test-"};
  fs::path archive_ = tmp_.path() / "out.cpio";
  UniqueFd fd_ = benchrun::open_file(archive_, O_WRONLY | O_CREAT | O_TRUNC, 0644);

  std::string bytes() { return benchrun::read_file(archive_, 64 << 20); }

  std::string list() {
    benchrun::SubprocessOptions o;
    o.stdin_data = bytes();
    auto r = benchrun::run_subprocess({"cpio", "-t", "--quiet"}, o);
    EXPECT_TRUE(r.ok()) << r.stderr_data;
    return r.stdout_data;
  }

  fs::path extract() {
    fs::path dir = tmp_.path() / "x";
    fs::create_directory(dir);
    benchrun::SubprocessOptions o;
    o.stdin_data = bytes();
    auto r = benchrun::run_subprocess(
        {"sh", "-c", "cd \"$1\" && exec cpio -idm --quiet --no-absolute-filenames", "sh",
         dir.string()},
        o);
    EXPECT_TRUE(r.ok()) << r.stderr_data;
    return dir;
  }
};

std::string slurp(const fs::path& p) { return benchrun::read_file(p, 64 << 20); }

}  // namespace

TEST_F(CpioTest, ListedAndExtractedByGnuCpio) {
  const fs::path host_file = tmp_.path() / "host.bin";
  std::string big(1 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7 + i / 251);
  big += "tail";  // 1 MiB + 4, larger than the writer's buffer
  std::ofstream(host_file, std::ios::binary) << big;

  CpioWriter w(fd_.get());
  w.add_directory("dev", 0755);
  w.add_directory("etc", 0700);
  w.add_directory("etc/sub", 0755);
  w.add_char_device("dev/console", 0600, 5, 1);
  w.add_file("init", 0755, "#!/bin/sh\necho hi\n");
  w.add_file("etc/sub/empty", 0644, "");
  w.add_file("etc/odd name-\xc3\xbc", 0640, "x");
  w.add_file("etc/suid", 04755, "abc");
  w.add_file_from("etc/big", 0644, host_file.string());
  w.add_symlink("etc/link", "../init");
  w.finish();
  EXPECT_EQ(w.size() % 4, 0u);
  EXPECT_EQ(w.size(), fs::file_size(archive_));

  EXPECT_EQ(list(),
            "dev\netc\netc/sub\ndev/console\ninit\netc/sub/empty\netc/odd name-\xc3\xbc\n"
            "etc/suid\netc/big\netc/link\n");

  const fs::path x = extract();
  EXPECT_EQ(slurp(x / "init"), "#!/bin/sh\necho hi\n");
  EXPECT_EQ(slurp(x / "etc/sub/empty"), "");
  EXPECT_EQ(slurp(x / "etc/odd name-\xc3\xbc"), "x");
  EXPECT_EQ(slurp(x / "etc/big"), big);
  EXPECT_EQ(fs::read_symlink(x / "etc/link"), "../init");
  struct stat st {};
  ASSERT_EQ(::lstat((x / "init").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode, S_IFREG | 0755);
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_EQ(st.st_mtime, 0);
  ASSERT_EQ(::lstat((x / "etc/suid").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode, S_IFREG | 04755);
  ASSERT_EQ(::lstat((x / "etc").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode, S_IFDIR | 0700);
  if (::geteuid() == 0) {  // mknod needs root
    ASSERT_EQ(::lstat((x / "dev/console").c_str(), &st), 0);
    EXPECT_TRUE(S_ISCHR(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, 0600u);
    EXPECT_EQ(major(st.st_rdev), 5u);
    EXPECT_EQ(minor(st.st_rdev), 1u);
  }
}

TEST_F(CpioTest, HeaderBytesFollowTheNewcLayout) {
  CpioWriter w(fd_.get());
  w.add_file("ab", 0644, "xyz");
  w.add_directory("d", 0755);
  w.finish();
  const std::string b = bytes();
  // 110-byte header + "ab\0" = 113, padded to 116; 3 data bytes padded to 4.
  ASSERT_GE(b.size(), 120u + 112u);
  EXPECT_EQ(b.substr(0, 110),
            "070701"
            "00000001"    // ino
            "000081A4"    // mode: S_IFREG | 0644
            "00000000"    // uid
            "00000000"    // gid
            "00000001"    // nlink
            "00000000"    // mtime
            "00000003"    // filesize
            "00000000"    // devmajor
            "00000000"    // devminor
            "00000000"    // rdevmajor
            "00000000"    // rdevminor
            "00000003"    // namesize, NUL included
            "00000000");  // check
  EXPECT_EQ(b.substr(110, 6), std::string("ab\0\0\0\0", 6));
  EXPECT_EQ(b.substr(116, 4), std::string("xyz\0", 4));
  EXPECT_EQ(b.substr(120, 14), "07070100000002");  // the next entry gets the next inode
  EXPECT_NE(b.find("TRAILER!!!"), std::string::npos);
}

TEST_F(CpioTest, SameCallsGiveSameBytes) {
  auto write = [&](const fs::path& p) {
    UniqueFd fd = benchrun::open_file(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CpioWriter w(fd.get());
    w.add_directory("a", 0755);
    w.add_file("a/b", 0644, "data");
    w.add_symlink("a/c", "b");
    w.finish();
  };
  write(tmp_.path() / "1");
  write(tmp_.path() / "2");
  EXPECT_EQ(slurp(tmp_.path() / "1"), slurp(tmp_.path() / "2"));
}

TEST_F(CpioTest, RejectsUnsafeOrMalformedEntries) {
  CpioWriter w(fd_.get());
  for (std::string_view bad :
       {std::string_view(""), std::string_view("/abs"), std::string_view(".."),
        std::string_view("a/../b"), std::string_view("a//b"), std::string_view("a/"),
        std::string_view("./a"), std::string_view("a\0b", 3), std::string_view("TRAILER!!!")}) {
    EXPECT_THROW(w.add_file(bad, 0644, "x"), ConfigError) << bad;
    EXPECT_THROW(w.add_directory(bad, 0755), ConfigError) << bad;
  }
  EXPECT_THROW(w.add_file("f", 0100644, "x"), ConfigError);  // type bits are not a mode
  EXPECT_THROW(w.add_symlink("l", ""), ConfigError);
  EXPECT_THROW(w.add_symlink("l", std::string_view("a\0b", 3)), ConfigError);
  EXPECT_THROW(w.add_file_from("f", 0644, tmp_.path().string()), ConfigError);  // a directory
  EXPECT_THROW(w.add_file_from("f", 0644, (tmp_.path() / "missing").string()), benchrun::SysError);
  w.finish();
  EXPECT_THROW(w.add_file("late", 0644, "x"), ConfigError);
  EXPECT_THROW(w.finish(), ConfigError);
  EXPECT_EQ(list(), "");  // nothing but the trailer was written
}

TEST_F(CpioTest, WriteErrorIsSysError) {
  UniqueFd ro = benchrun::open_file(archive_, O_RDONLY);
  CpioWriter w(ro.get());
  w.add_file("a", 0644, "x");  // buffered
  EXPECT_THROW(w.finish(), benchrun::SysError);
}
