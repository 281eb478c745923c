// fs_test.cpp: write_all/read_full through short transfers, and remove_tree on awkward trees.
#include "benchrun/common/fs.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <thread>

#include "benchrun/common/error.hpp"
#include "benchrun/common/unique_fd.hpp"

namespace fs = std::filesystem;
using benchrun::SysError;
using benchrun::TempDir;
using benchrun::UniqueFd;

TEST(Fs, WriteAllAndReadFullCrossAPipeInShortTransfers) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  UniqueFd r(p[0]), w(p[1]);
  // More than a pipe buffer (64 KiB): write_all must loop over partial writes while the reader
  // drains, and read_full over the partial reads.
  const std::string data(1 << 20, 'q');
  std::thread writer([&] {
    benchrun::write_all(w.get(), data, "pipe");
    w.reset();
  });
  std::string got(data.size() + 10, '\0');
  const size_t n = benchrun::read_full(r.get(), got.data(), got.size(), "pipe");
  writer.join();
  EXPECT_EQ(n, data.size());  // short only at end of file
  got.resize(n);
  EXPECT_EQ(got, data);
  try {
    benchrun::write_all(-1, "x", "nowhere");
    FAIL() << "no error";
  } catch (const SysError& e) {
    EXPECT_EQ(e.code(), EBADF);
    EXPECT_EQ(e.op(), "write");
    EXPECT_EQ(e.path(), "nowhere");
  }
  char c;
  EXPECT_THROW(benchrun::read_full(-1, &c, 1, "nowhere"), SysError);
}

TEST(Fs, RemoveTreeHandlesReadOnlyDirsAndSymlinks) {
  TempDir tmp(fs::temp_directory_path(), "fs-test-");
  const fs::path outside = tmp.path() / "outside";
  fs::create_directory(outside);
  std::ofstream(outside / "keep") << "k";
  const fs::path tree = tmp.path() / "tree";
  fs::create_directories(tree / "a" / "b");
  std::ofstream(tree / "a" / "b" / "f") << "x";
  fs::create_directory_symlink(outside, tree / "a" / "escape");
  ::chmod((tree / "a" / "b").c_str(), 0500);  // read-only: its file cannot be unlinked as is
  ::chmod((tree / "a").c_str(), 0000);
  benchrun::remove_tree(tree);
  EXPECT_FALSE(fs::exists(tree));
  EXPECT_TRUE(fs::exists(outside / "keep"));  // the symlink was removed, not followed
  benchrun::remove_tree(tree);                // missing is fine
}

TEST(Fs, PublishFileRenamesAFinishedTempFileWithMode0644) {
  TempDir tmp(fs::temp_directory_path(), "fs-test-");
  std::string tmpl = (tmp.path() / ".out.XXXXXX").string();
  UniqueFd fd(::mkostemp(tmpl.data(), O_CLOEXEC));  // created 0600
  ASSERT_TRUE(fd);
  benchrun::write_all(fd.get(), "payload", tmpl);
  const fs::path target = tmp.path() / "out";
  benchrun::publish_file(fd.get(), tmpl, target);
  EXPECT_FALSE(fs::exists(tmpl));
  EXPECT_EQ(benchrun::read_file(target, 100), "payload");
  struct stat st {};
  ASSERT_EQ(::stat(target.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  // A failed rename names the target.
  try {
    benchrun::publish_file(fd.get(), tmpl, tmp.path() / "missing-dir" / "out");
    FAIL() << "no error";
  } catch (const SysError& e) {
    EXPECT_EQ(e.op(), "rename");
    EXPECT_EQ(e.path(), (tmp.path() / "missing-dir" / "out").string());
  }
}
