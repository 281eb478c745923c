// store_test.cpp: the store's permissions (issue 11 finding 2), repository grants (finding 9) and
// cached-blob checks (finding 10).
#include "benchrun/oci/store.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "benchrun/common/error.hpp"
#include "benchrun/common/free_space.hpp"
#include "benchrun/common/fs.hpp"

namespace fs = std::filesystem;
using benchrun::ConfigError;
using benchrun::DigestMismatch;
using benchrun::TempDir;
using benchrun::oci::Descriptor;
using benchrun::oci::Digest;
using benchrun::oci::digest_of;
using benchrun::oci::Store;

namespace {

mode_t mode_of(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p;
  return st.st_mode & 07777;
}

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = std::make_unique<TempDir>(fs::temp_directory_path(), "store-");
    ::chmod(base_->path().c_str(), 0755);
  }
  std::unique_ptr<TempDir> base_;
};

TEST_F(StoreTest, NewStoreIsPrivate) {
  Store s(base_->path() / "store");
  EXPECT_EQ(mode_of(s.root()), 0700u);
  EXPECT_EQ(mode_of(s.root() / "rootfs"), 0700u);
  EXPECT_EQ(mode_of(s.root() / "tmp"), 0700u);
}

TEST_F(StoreTest, OpenStoreIsRepaired) {
  const fs::path root = base_->path() / "store";
  { Store s(root); }
  ::chmod(root.c_str(), 0755);
  ::chmod((root / "rootfs").c_str(), 0777);
  Store s(root);
  EXPECT_EQ(mode_of(root), 0700u);
  EXPECT_EQ(mode_of(root / "rootfs"), 0700u);
}

TEST_F(StoreTest, WorldWritableParentWithoutStickyBitIsRefused) {
  const fs::path shared = base_->path() / "shared";
  fs::create_directory(shared);
  ::chmod(shared.c_str(), 0777);
  try {
    Store s(shared / "store");
    ADD_FAILURE() << "store accepted under a world-writable, non-sticky parent";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("sticky"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(shared / "store"));
  ::chmod(shared.c_str(), 01777);  // like /tmp: fine
  Store s(shared / "store");
  EXPECT_EQ(mode_of(s.root()), 0700u);
}

TEST_F(StoreTest, GrantsAreRepositoryBound) {
  Store s(base_->path() / "store");
  const Digest d = digest_of(std::string("manifest"));
  EXPECT_FALSE(s.granted("127.0.0.1:5000/a/img", d));
  s.grant("127.0.0.1:5000/a/img", d);
  EXPECT_TRUE(s.granted("127.0.0.1:5000/a/img", d));
  EXPECT_FALSE(s.granted("127.0.0.1:5000/b/img", d));
  EXPECT_FALSE(s.granted("127.0.0.1:1/a/img", d));
  EXPECT_FALSE(s.granted("127.0.0.1:5000/a/img", digest_of(std::string("other"))));
}

TEST_F(StoreTest, CachedBlobsAreCheckedOnUse) {
  Store s(base_->path() / "store");
  const std::string data = "{\"config\":1}";
  const Digest d = digest_of(data);
  s.put_blob(d, data);
  Descriptor desc;
  desc.digest = d;
  desc.size = static_cast<int64_t>(data.size());
  EXPECT_TRUE(s.blob_size_ok(desc));
  EXPECT_EQ(s.read_verified_blob(d, 1 << 20), data);
  // Same size, other bytes: the digest check catches it; another size: the size check does.
  ::chmod(s.blob_path(d).c_str(), 0644);
  std::ofstream(s.blob_path(d), std::ios::trunc) << "{\"config\":2}";
  EXPECT_THROW(s.read_verified_blob(d, 1 << 20), DigestMismatch);
  std::ofstream(s.blob_path(d), std::ios::trunc) << "{}";
  EXPECT_FALSE(s.blob_size_ok(desc));
  s.put_blob(d, data);  // a wrong-sized cached copy is replaced
  EXPECT_EQ(s.read_verified_blob(d, 1 << 20), data);
}

TEST(FreeSpace, ReserveAndRefusal) {
  EXPECT_EQ(benchrun::reserve_for(100ull << 30, benchrun::kAutoReserve), 1ull << 30);
  EXPECT_EQ(benchrun::reserve_for(100ull << 20, benchrun::kAutoReserve), 5ull << 20);
  EXPECT_EQ(benchrun::reserve_for(100ull << 20, 7), 7u);
  const auto space = benchrun::fs_space("/");
  EXPECT_NO_THROW(benchrun::require_free_space("/", 0, 0, "test"));
  EXPECT_THROW(benchrun::require_free_space("/", space.available + (1ull << 30), 0, "test"),
               benchrun::ImageTooLarge);
}

}  // namespace
