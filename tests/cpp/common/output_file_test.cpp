// output_file_test.cpp: the capped anonymous file that holds captured output (finding 6).
#include "benchrun/common/output_file.hpp"

#include <gtest/gtest.h>

#include <filesystem>

#include "benchrun/common/error.hpp"
#include "benchrun/common/fs.hpp"

namespace fs = std::filesystem;
using benchrun::OutputFile;
using benchrun::TempDir;

TEST(OutputFile, KeepsUpToTheCapAndSaysWhenItDropped) {
  TempDir dir(fs::temp_directory_path(), "output-file-");
  OutputFile f(dir.path(), 10);
  EXPECT_TRUE(f.append("hello", 5));
  EXPECT_FALSE(f.append(std::string("\xff world!", 8)));
  EXPECT_FALSE(f.append("more", 4));
  EXPECT_EQ(f.size(), 10u);
  EXPECT_EQ(f.str(), std::string("hello\xff wor"));
  std::string buf(10, '\0');
  f.read_into(buf.data());
  EXPECT_EQ(buf, f.str());
}

TEST(OutputFile, LeavesNothingInTheDirectory) {
  TempDir dir(fs::temp_directory_path(), "output-file-");
  {
    OutputFile f(dir.path(), 1 << 20);
    f.append(std::string(1 << 16, 'x'));
    EXPECT_TRUE(fs::is_empty(dir.path()));  // anonymous from the start: no leak on a crash
    OutputFile moved = std::move(f);
    EXPECT_EQ(moved.str().size(), size_t{1} << 16);
  }
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

TEST(OutputFile, EmptyWithoutAFile) {
  OutputFile f;
  EXPECT_FALSE(f.append("x", 1));
  EXPECT_TRUE(f.append("", 0));
  EXPECT_EQ(f.size(), 0u);
  EXPECT_EQ(f.str(), "");
}

TEST(OutputFile, MissingDirectoryIsASysError) {
  EXPECT_THROW(OutputFile("/nonexistent/benchrun-output", 1), benchrun::SysError);
}
