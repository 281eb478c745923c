// layer_unpack_test.cpp: layer application semantics (image-spec layer.md) and hostile archives.
//
// Hostile cases point at a sentinel directory beside the root (never at real host paths such as
// /etc), so a broken unpacker could only damage the sentinel, which every such test checks.
#include "benchrun/oci/layer_unpack.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "benchrun/common/error.hpp"
#include "benchrun/common/fs.hpp"
#include "benchrun/common/unique_fd.hpp"
#include "oci/path_resolve.hpp"

namespace fs = std::filesystem;
using benchrun::ImageError;
using benchrun::TempDir;
using benchrun::UniqueFd;
using benchrun::UnsafeLayerError;
using benchrun::oci::Compression;
using benchrun::oci::DigestAlgorithm;
using benchrun::oci::LayerStats;
using benchrun::oci::ResolveMode;
using benchrun::oci::RootResolver;
using benchrun::oci::UnpackOptions;

namespace {

constexpr int64_t kMtime = 1600000000;

// One tar entry to write.
struct Spec {
  std::string path;
  mode_t type = AE_IFREG;
  mode_t perm = 0644;
  std::string data;
  std::string link;  // symlink or hardlink target
  bool hardlink = false;
  int64_t uid = 0;
  int64_t gid = 0;
  int64_t mtime = kMtime;
  dev_t rdev = 0;
  std::vector<std::pair<std::string, std::string>> xattrs;
};

Spec File(std::string path, std::string data = "", mode_t perm = 0644) {
  Spec s;
  s.path = std::move(path);
  s.data = std::move(data);
  s.perm = perm;
  return s;
}
Spec Dir(std::string path, mode_t perm = 0755) {
  Spec s;
  s.path = std::move(path);
  s.type = AE_IFDIR;
  s.perm = perm;
  return s;
}
Spec Symlink(std::string path, std::string target) {
  Spec s;
  s.path = std::move(path);
  s.type = AE_IFLNK;
  s.perm = 0777;
  s.link = std::move(target);
  return s;
}
Spec Hardlink(std::string path, std::string target) {
  Spec s;
  s.path = std::move(path);
  s.hardlink = true;
  s.link = std::move(target);
  return s;
}

// Writes a tar (pax) with libarchive's write API into memory, optionally through a filter.
class TarBuilder {
 public:
  explicit TarBuilder(int filter = ARCHIVE_FILTER_NONE) : a_(archive_write_new()) {
    archive_write_set_format_pax_restricted(a_);
    if (filter == ARCHIVE_FILTER_GZIP) archive_write_add_filter_gzip(a_);
    if (filter == ARCHIVE_FILTER_ZSTD) archive_write_add_filter_zstd(a_);
    // No zero padding after the compressed stream (it would be trailing garbage).
    if (filter != ARCHIVE_FILTER_NONE) archive_write_set_bytes_in_last_block(a_, 1);
    archive_write_open(a_, &out_, nullptr, &TarBuilder::write_cb, nullptr);
  }
  ~TarBuilder() {
    if (a_) archive_write_free(a_);
  }

  TarBuilder& add(const Spec& s) {
    archive_entry* e = header(s);
    if (!s.hardlink && s.type == AE_IFREG)
      archive_entry_set_size(e, static_cast<int64_t>(s.data.size()));
    write_header(e, s.path);
    if (!s.data.empty() && !s.hardlink) {
      EXPECT_EQ(archive_write_data(a_, s.data.data(), s.data.size()),
                static_cast<la_ssize_t>(s.data.size()));
    }
    archive_entry_free(e);
    return *this;
  }
  TarBuilder& add(std::initializer_list<Spec> specs) {
    for (const Spec& s : specs) add(s);
    return *this;
  }
  // A regular file of size zero bytes, streamed (never held in memory).
  TarBuilder& add_zeros(const std::string& path, int64_t size) {
    archive_entry* e = header(File(path));
    archive_entry_set_size(e, size);
    write_header(e, path);
    std::string zeros(1 << 20, '\0');
    for (int64_t left = size; left > 0;) {
      size_t n = static_cast<size_t>(std::min<int64_t>(left, static_cast<int64_t>(zeros.size())));
      EXPECT_EQ(archive_write_data(a_, zeros.data(), n), static_cast<la_ssize_t>(n));
      left -= static_cast<int64_t>(n);
    }
    archive_entry_free(e);
    return *this;
  }
  std::string finish() {
    EXPECT_EQ(archive_write_close(a_), ARCHIVE_OK) << archive_error_string(a_);
    archive_write_free(a_);
    a_ = nullptr;
    return std::move(out_);
  }

 private:
  static la_ssize_t write_cb(archive*, void* ctx, const void* buf, size_t n) {
    static_cast<std::string*>(ctx)->append(static_cast<const char*>(buf), n);
    return static_cast<la_ssize_t>(n);
  }
  archive_entry* header(const Spec& s) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, s.path.c_str());
    archive_entry_set_filetype(e, s.hardlink ? AE_IFREG : s.type);
    archive_entry_set_perm(e, s.perm);
    archive_entry_set_uid(e, s.uid);
    archive_entry_set_gid(e, s.gid);
    archive_entry_set_mtime(e, s.mtime, 0);
    if (s.hardlink) archive_entry_set_hardlink(e, s.link.c_str());
    if (s.type == AE_IFLNK) archive_entry_set_symlink(e, s.link.c_str());
    if (s.type == AE_IFCHR || s.type == AE_IFBLK) archive_entry_set_rdev(e, s.rdev);
    for (const auto& [name, value] : s.xattrs)
      archive_entry_xattr_add_entry(e, name.c_str(), value.data(), value.size());
    return e;
  }
  void write_header(archive_entry* e, const std::string& path) {
    int rc = archive_write_header(a_, e);
    EXPECT_GE(rc, ARCHIVE_WARN) << path << ": " << archive_error_string(a_);
  }

  archive* a_;
  std::string out_;
};

std::string tar_of(std::initializer_list<Spec> specs) { return TarBuilder().add(specs).finish(); }

class LayerUnpack : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = std::make_unique<TempDir>(fs::temp_directory_path(), "benchrun-unpack-");
    root_ = base_->path() / "root";
    sentinel_ = base_->path() / "sentinel";
    fs::create_directory(root_);
    fs::create_directory(sentinel_);
    std::ofstream(sentinel_ / "canary") << "original";
    fs::permissions(sentinel_ / "canary", fs::perms(0644));
    rootfd_.reset(::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    ASSERT_TRUE(rootfd_);
  }

  LayerStats apply(const std::string& blob, Compression c = Compression::kNone,
                   const UnpackOptions& options = UnpackOptions{},
                   DigestAlgorithm algorithm = DigestAlgorithm::kSha256) {
    UniqueFd fd(memfd_create("layer", MFD_CLOEXEC));
    EXPECT_TRUE(fd);
    EXPECT_EQ(::write(fd.get(), blob.data(), blob.size()), static_cast<ssize_t>(blob.size()));
    ::lseek(fd.get(), 0, SEEK_SET);
    return benchrun::oci::apply_layer(rootfd_.get(), fd.get(), c, algorithm, options);
  }
  LayerStats apply(std::initializer_list<Spec> specs) { return apply(tar_of(specs)); }

  // Applies a hostile layer: it must be refused with UnsafeLayerError whose message contains
  // needle, and nothing outside the root may change.
  void expect_refused(const std::string& tar, const std::string& needle,
                      const UnpackOptions& options = UnpackOptions{}) {
    try {
      apply(tar, Compression::kNone, options);
      ADD_FAILURE() << "layer was not refused (expected '" << needle << "')";
    } catch (const UnsafeLayerError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
    expect_outside_untouched();
  }

  void expect_outside_untouched() {
    std::set<std::string> names;
    for (const auto& d : fs::directory_iterator(base_->path())) names.insert(d.path().filename());
    EXPECT_EQ(names, (std::set<std::string>{"root", "sentinel"}));
    std::set<std::string> inside;
    for (const auto& d : fs::directory_iterator(sentinel_)) inside.insert(d.path().filename());
    EXPECT_EQ(inside, (std::set<std::string>{"canary"}));
    struct stat st {};
    ASSERT_EQ(::lstat((sentinel_ / "canary").c_str(), &st), 0);
    EXPECT_TRUE(S_ISREG(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, 0644u);
    EXPECT_EQ(st.st_nlink, 1u);
    EXPECT_EQ(read(sentinel_ / "canary"), "original");
    ASSERT_EQ(::lstat(root_.c_str(), &st), 0);
    EXPECT_TRUE(S_ISDIR(st.st_mode)) << "the root was replaced";
  }

  struct stat lstat_in(const std::string& rel) {
    struct stat st {};
    EXPECT_EQ(::lstat((root_ / rel).c_str(), &st), 0) << rel << ": " << strerror(errno);
    return st;
  }
  bool exists(const std::string& rel) {
    struct stat st {};
    return ::lstat((root_ / rel).c_str(), &st) == 0;
  }
  static std::string read(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  std::string read_in(const std::string& rel) { return read(root_ / rel); }
  std::set<std::string> list_in(const std::string& rel) {
    std::set<std::string> names;
    for (const auto& d : fs::directory_iterator(root_ / rel)) names.insert(d.path().filename());
    return names;
  }

  std::unique_ptr<TempDir> base_;
  fs::path root_;
  fs::path sentinel_;
  UniqueFd rootfd_;
};

bool is_root() { return ::geteuid() == 0; }

}  // namespace

// ---------------------------------------------------------------------------------------------
// Semantics

TEST_F(LayerUnpack, FilesDirsAndModes) {
  auto stats = apply({Dir("./"), Dir("bin/"), File("bin/tool", "#!/bin/sh\n", 0755),
                      File("bin/su", "suid", 04755), File("bin/wall", "sgid", 02755),
                      Dir("tmp", 01777), Dir("private", 0700), File("private/key", "k", 0600),
                      Dir("ro", 0555), File("ro/inside", "x", 0444), File("none", "", 0)});
  EXPECT_EQ(stats.entries, 11u);
  EXPECT_EQ(read_in("bin/tool"), "#!/bin/sh\n");
  EXPECT_EQ(lstat_in("bin/tool").st_mode & 07777, 0755u);
  EXPECT_EQ(lstat_in("bin/su").st_mode & 07777, 04755u);
  EXPECT_EQ(lstat_in("bin/wall").st_mode & 07777, 02755u);
  EXPECT_EQ(lstat_in("tmp").st_mode & 07777, 01777u);
  EXPECT_TRUE(S_ISDIR(lstat_in("tmp").st_mode));
  EXPECT_EQ(lstat_in("private").st_mode & 07777, 0700u);
  EXPECT_EQ(lstat_in("ro").st_mode & 07777, 0555u);  // applied after its child was written
  EXPECT_EQ(read_in("ro/inside"), "x");
  EXPECT_EQ(lstat_in("none").st_mode & 07777, 0u);
  EXPECT_EQ(lstat_in("none").st_size, 0);
}

TEST_F(LayerUnpack, MissingParentsAreCreated) {
  apply({File("a/b/c/file", "deep")});
  EXPECT_EQ(read_in("a/b/c/file"), "deep");
  for (const char* d : {"a", "a/b", "a/b/c"}) {
    EXPECT_TRUE(S_ISDIR(lstat_in(d).st_mode)) << d;
    EXPECT_EQ(lstat_in(d).st_mode & 07777, 0755u) << d;
  }
}

TEST_F(LayerUnpack, OwnershipIsPreservedAsRoot) {
  if (!is_root()) GTEST_SKIP() << "needs root to chown";
  Spec f = File("owned", "x", 04750);
  f.uid = 1234;
  f.gid = 5678;
  Spec d = Dir("d", 02770);
  d.uid = 42;
  d.gid = 43;
  Spec l = Symlink("link", "owned");
  l.uid = 7;
  l.gid = 8;
  apply({f, d, l});
  auto st = lstat_in("owned");
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 5678u);
  EXPECT_EQ(st.st_mode & 07777, 04750u) << "chown after chmod would have cleared setuid";
  st = lstat_in("d");
  EXPECT_EQ(st.st_uid, 42u);
  EXPECT_EQ(st.st_gid, 43u);
  EXPECT_EQ(st.st_mode & 07777, 02770u);
  st = lstat_in("link");
  EXPECT_EQ(st.st_uid, 7u);
  EXPECT_EQ(st.st_gid, 8u);
}

TEST_F(LayerUnpack, OwnershipCanBeDropped) {
  Spec f = File("owned", "x");
  f.uid = 1234;
  f.gid = 5678;
  UnpackOptions o;
  o.preserve_ownership = false;
  apply(TarBuilder().add(f).finish(), Compression::kNone, o);
  EXPECT_EQ(lstat_in("owned").st_uid, ::geteuid());
}

TEST_F(LayerUnpack, SymlinksAreStoredVerbatim) {
  apply({Symlink("abs", "/etc/passwd"), Symlink("rel", "../../../outside"),
         Symlink("dangling", "nowhere/at/all"), Dir("d"), Symlink("d/up", "..")});
  EXPECT_EQ(fs::read_symlink(root_ / "abs"), "/etc/passwd");
  EXPECT_EQ(fs::read_symlink(root_ / "rel"), "../../../outside");
  EXPECT_EQ(fs::read_symlink(root_ / "dangling"), "nowhere/at/all");
  EXPECT_TRUE(S_ISLNK(lstat_in("d/up").st_mode));
  expect_outside_untouched();
}

TEST_F(LayerUnpack, HardlinksSameLayerLowerLayerAndAbsolute) {
  apply({Dir("usr/bin/"), File("usr/bin/lower", "lower-data", 0755)});
  apply({File("usr/bin/python3.11", "py", 0755), Hardlink("usr/bin/python3", "usr/bin/python3.11"),
         Hardlink("usr/bin/from-lower", "./usr/bin/lower"),
         Hardlink("usr/bin/kaniko", "/usr/bin/python3.11"), Symlink("sl", "usr/bin/lower"),
         Hardlink("sl-hard", "sl")});
  auto target = lstat_in("usr/bin/python3.11");
  EXPECT_EQ(lstat_in("usr/bin/python3").st_ino, target.st_ino);
  EXPECT_EQ(lstat_in("usr/bin/kaniko").st_ino, target.st_ino);
  EXPECT_EQ(target.st_nlink, 3u);
  EXPECT_EQ(lstat_in("usr/bin/from-lower").st_ino, lstat_in("usr/bin/lower").st_ino);
  EXPECT_EQ(read_in("usr/bin/from-lower"), "lower-data");
  EXPECT_TRUE(S_ISLNK(lstat_in("sl-hard").st_mode)) << "a hardlink to a symlink links the symlink";
  EXPECT_EQ(lstat_in("sl-hard").st_ino, lstat_in("sl").st_ino);
}

TEST_F(LayerUnpack, HardlinkToMissingOrDirectoryIsRefused) {
  expect_refused(tar_of({Hardlink("h", "does/not/exist")}), "does not exist inside the image root");
  expect_refused(tar_of({Dir("d"), Hardlink("h", "d")}), "is a directory");
  expect_refused(tar_of({Hardlink("h", ".")}), "is the image root");
}

TEST_F(LayerUnpack, WhiteoutRemovesLowerFileAndDirectory) {
  apply({File("etc/keep", "k"), File("etc/gone", "g"), Dir("var/cache"), File("var/cache/a"),
         File("var/cache/sub/b")});
  auto stats = apply({File("etc/.wh.gone"), File("var/.wh.cache"), File(".wh.not-there")});
  EXPECT_EQ(stats.entries, 3u);
  EXPECT_FALSE(exists("etc/gone"));
  EXPECT_TRUE(exists("etc/keep"));
  EXPECT_FALSE(exists("var/cache"));
  EXPECT_TRUE(exists("var"));
  EXPECT_FALSE(exists("etc/.wh.gone")) << "whiteout markers are never materialised";
  EXPECT_FALSE(exists(".wh.not-there"));
}

TEST_F(LayerUnpack, WhiteoutDoesNotDeleteSameLayerContent) {
  apply({File("a", "lower-a"), File("b", "lower-b"), Dir("d"), File("d/old1"), File("d/old2")});
  apply({File("a", "upper-a"), File(".wh.a"),  // marker after the layer's own file
         File(".wh.b"), File("b", "upper-b"),  // marker before it
         File("d/new", "n"), File(".wh.d")});  // dir whiteout after the layer wrote under it
  EXPECT_EQ(read_in("a"), "upper-a");
  EXPECT_EQ(read_in("b"), "upper-b");
  EXPECT_EQ(list_in("d"), (std::set<std::string>{"new"}));
}

TEST_F(LayerUnpack, OpaqueMarkerBeforeChildren) {
  apply({Dir("d"), File("d/x"), File("d/sub/y"), File("other/z")});
  apply({Dir("d"), File("d/.wh..wh..opq"), File("d/new", "n")});
  EXPECT_EQ(list_in("d"), (std::set<std::string>{"new"}));
  EXPECT_TRUE(exists("other/z"));
}

TEST_F(LayerUnpack, OpaqueMarkerAfterChildren) {
  apply({Dir("d"), File("d/x"), File("d/sub/y"), File("d/keepname", "lower")});
  apply({Dir("d"), File("d/new", "n"), Dir("d/sub"), File("d/sub/z"), File("d/keepname", "upper"),
         File("d/.wh..wh..opq"), File("d/later", "l")});
  EXPECT_EQ(list_in("d"), (std::set<std::string>{"new", "sub", "keepname", "later"}));
  EXPECT_EQ(list_in("d/sub"), (std::set<std::string>{"z"})) << "lower d/sub/y is hidden too";
  EXPECT_EQ(read_in("d/keepname"), "upper");
  EXPECT_FALSE(exists("d/.wh..wh..opq"));
}

TEST_F(LayerUnpack, AufsMetadataIsSkipped) {
  apply({Dir(".wh..wh.plnk"), File(".wh..wh.plnk/1234.5678", "x"), File(".wh..wh.aufs"),
         File("d/.wh..wh.orph")});
  EXPECT_FALSE(exists(".wh..wh.plnk"));
  EXPECT_FALSE(exists(".wh..wh.aufs"));
  EXPECT_FALSE(exists("d/.wh..wh.orph"));
}

TEST_F(LayerUnpack, DirectoryReplacedByFileAndViceVersa) {
  apply({Dir("was-dir"), File("was-dir/child", "c"), File("was-file", "f"),
         Symlink("was-link", "was-dir")});
  apply({File("was-dir", "now a file"), Dir("was-file", 0711), File("was-file/x", "x"),
         Dir("was-link")});
  EXPECT_TRUE(S_ISREG(lstat_in("was-dir").st_mode));
  EXPECT_EQ(read_in("was-dir"), "now a file");
  EXPECT_TRUE(S_ISDIR(lstat_in("was-file").st_mode));
  EXPECT_EQ(lstat_in("was-file").st_mode & 07777, 0711u);
  EXPECT_EQ(read_in("was-file/x"), "x");
  EXPECT_TRUE(S_ISDIR(lstat_in("was-link").st_mode));
}

TEST_F(LayerUnpack, DuplicateEntriesLastWins) {
  apply({File("f", "one", 0600), File("f", "two", 0640), Dir("d", 0700), Dir("d", 0750)});
  EXPECT_EQ(read_in("f"), "two");
  EXPECT_EQ(lstat_in("f").st_mode & 07777, 0640u);
  EXPECT_EQ(lstat_in("d").st_mode & 07777, 0750u);
}

TEST_F(LayerUnpack, MtimesIncludingDirectoriesWithLaterChildren) {
  Spec d = Dir("d");
  d.mtime = 1200000000;
  Spec f = File("d/f", "x");
  f.mtime = 1000000000;
  Spec l = Symlink("d/l", "f");
  l.mtime = 1100000000;
  Spec root = Dir(".");
  root.mtime = 1300000000;
  root.perm = 0751;
  apply({root, d, f, l, File("d/later")});
  EXPECT_EQ(lstat_in("d").st_mtim.tv_sec, 1200000000);
  EXPECT_EQ(lstat_in("d/f").st_mtim.tv_sec, 1000000000);
  EXPECT_EQ(lstat_in("d/l").st_mtim.tv_sec, 1100000000);
  EXPECT_EQ(lstat_in("").st_mtim.tv_sec, 1300000000) << "'.' updates the root's metadata";
  EXPECT_EQ(lstat_in("").st_mode & 07777, 0751u);
}

TEST_F(LayerUnpack, FifoIsCreated) {
  Spec p = File("run/pipe", "", 0620);
  p.type = AE_IFIFO;
  apply({p});
  EXPECT_TRUE(S_ISFIFO(lstat_in("run/pipe").st_mode));
  EXPECT_EQ(lstat_in("run/pipe").st_mode & 07777, 0620u);
}

TEST_F(LayerUnpack, UserXattrOnRegularFile) {
  {
    std::ofstream(base_->path() / "probe") << "p";
    if (::setxattr((base_->path() / "probe").c_str(), "user.benchrun", "1", 1, 0) != 0)
      GTEST_SKIP() << "filesystem refuses user.* xattrs: " << strerror(errno);
    fs::remove(base_->path() / "probe");
  }
  Spec f = File("f", "data");
  f.xattrs = {{"user.bench", "hello"}, {"user.empty", ""}};
  Spec p = File("pipe", "", 0600);
  p.type = AE_IFIFO;
  p.xattrs = {{"user.onfifo", "refused by the kernel, tolerated"}};
  apply({f, p});
  char buf[64] = {};
  ssize_t n = ::getxattr((root_ / "f").c_str(), "user.bench", buf, sizeof buf);
  ASSERT_EQ(n, 5);
  EXPECT_EQ(std::string(buf, 5), "hello");
  EXPECT_EQ(::getxattr((root_ / "f").c_str(), "user.empty", buf, sizeof buf), 0);
}

TEST_F(LayerUnpack, FileCapabilitySurvivesChown) {
  if (!is_root()) GTEST_SKIP() << "needs root to set security.capability";
  // vfs_cap_data v2: magic_etc = REVISION_2 | EFFECTIVE, permitted = CAP_NET_BIND_SERVICE.
  std::string cap(20, '\0');
  cap[0] = 0x01;
  cap[3] = 0x02;
  cap[5] = 0x04;  // bit 10 of permitted[0]
  Spec f = File("ping", "elf", 0755);
  f.uid = 1000;
  f.xattrs = {{"security.capability", cap}};
  apply({f});
  char buf[64];
  ssize_t n = ::getxattr((root_ / "ping").c_str(), "security.capability", buf, sizeof buf);
  if (n < 0 && errno == ENOTSUP) GTEST_SKIP() << "no security.* xattrs here";
  ASSERT_GT(n, 0) << strerror(errno);
  EXPECT_EQ(lstat_in("ping").st_uid, 1000u);
}

TEST_F(LayerUnpack, OverlayMetadataXattrsAreDropped) {
  if (!is_root()) GTEST_SKIP() << "needs root to set trusted.* xattrs";
  // An image must not plant overlayfs metadata in what becomes every run's lowerdir.
  Spec d = Dir("secret");
  d.xattrs = {{"trusted.overlay.opaque", "y"}, {"trusted.overlay.redirect", "/etc"}};
  Spec f = File("f", "x");
  f.xattrs = {{"user.overlay.metacopy", ""}, {"trusted.overlay.origin", "z"}};
  apply({d, f});
  char buf[16];
  for (const char* name : {"trusted.overlay.opaque", "trusted.overlay.redirect"})
    EXPECT_LT(::getxattr((root_ / "secret").c_str(), name, buf, sizeof buf), 0) << name;
  for (const char* name : {"user.overlay.metacopy", "trusted.overlay.origin"})
    EXPECT_LT(::getxattr((root_ / "f").c_str(), name, buf, sizeof buf), 0) << name;
}

TEST_F(LayerUnpack, DiffIdCoversTheWholeUncompressedStream) {
  std::string tar = tar_of({Dir("d"), File("d/f", std::string(300000, 'q')), Symlink("s", "d")});
  tar += std::string(4096, '\0') + "bytes after the end-of-archive marker still count";
  for (Compression c : {Compression::kNone, Compression::kGzip, Compression::kZstd}) {
    fs::remove_all(root_ / "d");
    fs::remove(root_ / "s");
    std::string blob = tar;
    if (c != Compression::kNone) {
      // Compress with libarchive's raw writer filters.
      archive* a = archive_write_new();
      archive_write_set_format_raw(a);
      c == Compression::kGzip ? archive_write_add_filter_gzip(a) : archive_write_add_filter_zstd(a);
      archive_write_set_bytes_in_last_block(a, 1);
      blob.clear();
      archive_write_open(
          a, &blob, nullptr,
          [](archive*, void* ctx, const void* buf, size_t n) -> la_ssize_t {
            static_cast<std::string*>(ctx)->append(static_cast<const char*>(buf), n);
            return static_cast<la_ssize_t>(n);
          },
          nullptr);
      archive_entry* e = archive_entry_new();
      archive_entry_set_filetype(e, AE_IFREG);
      archive_write_header(a, e);
      archive_write_data(a, tar.data(), tar.size());
      archive_entry_free(e);
      archive_write_close(a);
      archive_write_free(a);
    }
    for (auto engine : {benchrun::oci::GzipEngine::kIsal, benchrun::oci::GzipEngine::kZlib}) {
      UnpackOptions o;
      o.gzip = engine;
      auto stats = apply(blob, c, o);
      EXPECT_EQ(stats.diff_id, benchrun::oci::digest_of(tar)) << static_cast<int>(c);
      EXPECT_EQ(stats.bytes, tar.size());
      EXPECT_EQ(stats.entries, 3u);
      EXPECT_EQ(read_in("d/f").size(), 300000u);
    }
  }
  auto stats512 = apply(tar, Compression::kNone, UnpackOptions{}, DigestAlgorithm::kSha512);
  EXPECT_EQ(stats512.diff_id, benchrun::oci::digest_of(tar, DigestAlgorithm::kSha512));
}

TEST_F(LayerUnpack, NonUtf8AndUnicodeNamesAreKeptAsBytes) {
  apply({File("caf\xc3\xa9.txt", "u"), File("raw\xff", "r")});
  EXPECT_EQ(read_in("caf\xc3\xa9.txt"), "u");
  EXPECT_EQ(read_in("raw\xff"), "r");
}

TEST_F(LayerUnpack, GarbageIsNotATar) {
  EXPECT_THROW(apply(std::string(10000, 'x')), ImageError);
  EXPECT_THROW(apply(std::string(10000, 'x'), Compression::kGzip), ImageError);
}

TEST_F(LayerUnpack, TruncatedTarIsAnImageError) {
  std::string tar = tar_of({File("a", "aaaa"), File("big", std::string(100000, 'b'))});
  try {
    apply(tar.substr(0, 50000));
    ADD_FAILURE() << "truncated tar accepted";
  } catch (const ImageError& e) {
    EXPECT_NE(std::string(e.what()).find("layer entry 'big'"), std::string::npos) << e.what();
  }
}

TEST_F(LayerUnpack, FileAsParentIsAnImageError) {
  apply({File("f", "x")});
  try {
    apply({File("f/child", "y")});
    ADD_FAILURE() << "expected ImageError";
  } catch (const UnsafeLayerError& e) {
    ADD_FAILURE() << "not unsafe, just malformed: " << e.what();
  } catch (const ImageError& e) {
    EXPECT_NE(std::string(e.what()).find("is not a directory"), std::string::npos) << e.what();
  }
}

// ---------------------------------------------------------------------------------------------
// Hostile layers: one test per attack; nothing may appear or change outside the root.

TEST_F(LayerUnpack, DotDotTraversalIsRefused) {
  expect_refused(tar_of({File("x/../../sentinel/pwned", "evil")}),
                 "layer entry 'x/../../sentinel/pwned': path escapes the image root");
  expect_refused(tar_of({File("../sentinel/pwned", "evil")}), "path escapes the image root");
  EXPECT_FALSE(exists("x"));
}

TEST_F(LayerUnpack, AbsolutePathLandsInsideTheRoot) {
  // Decision (as tar and umoci): "/abs/path" means "abs/path" under the root.
  std::string abs = (sentinel_ / "pwned").string();
  apply({File(abs, "in root")});
  EXPECT_EQ(read_in(abs.substr(1)), "in root");
  expect_outside_untouched();
}

TEST_F(LayerUnpack, AbsoluteSymlinkThenWriteThroughIt) {
  // evil -> /<host path of sentinel>: resolved inside the root that directory does not exist.
  expect_refused(
      tar_of({Symlink("evil", sentinel_.string()), File("evil/pwned", "evil")}),
      "parent 'evil' is a symlink that does not lead to a directory inside the image root");
}

TEST_F(LayerUnpack, AbsoluteSymlinkWriteLandsInsideTheRootWhenTargetExists) {
  std::string in_root = sentinel_.string().substr(1);
  apply({Dir(in_root), Symlink("evil", sentinel_.string()), File("evil/pwned", "contained")});
  EXPECT_EQ(read_in(in_root + "/pwned"), "contained");
  expect_outside_untouched();
}

TEST_F(LayerUnpack, RelativeDotDotSymlinkThenWriteThroughIt) {
  // On the host, root/../sentinel is the real sentinel; inside the root, ".." stops at the root.
  expect_refused(tar_of({Symlink("evil", "../sentinel"), File("evil/pwned", "evil")}),
                 "is a symlink that does not lead to a directory inside the image root");
  expect_refused(
      tar_of({Dir("a/b"), Symlink("a/b/up", "../../../../../../../../.." + sentinel_.string()),
              File("a/b/up/pwned", "evil")}),
      "is a symlink that does not lead to a directory inside the image root");
  // With the in-root target present, the write lands there.
  apply({Dir("sentinel"), Symlink("evil2", "../../sentinel"), File("evil2/pwned", "contained")});
  EXPECT_EQ(read_in("sentinel/pwned"), "contained");
  expect_outside_untouched();
}

TEST_F(LayerUnpack, SymlinkToOutsideDirFromLowerLayerThenFileUnderIt) {
  apply({Symlink("lib", "../sentinel"), Symlink("lib64", sentinel_.string())});
  expect_refused(tar_of({File("lib/pwned", "evil")}), "parent 'lib' is a symlink");
  expect_refused(tar_of({File("lib64/pwned", "evil")}), "parent 'lib64' is a symlink");
  // A dir entry, chmod or whiteout through the link must not touch the sentinel either.
  apply({File("lib/.wh.canary"), File("lib64/.wh..wh..opq")});
  expect_outside_untouched();
  apply({Dir("lib", 0777)});  // replaces the symlink with a directory inside the root
  EXPECT_TRUE(S_ISDIR(lstat_in("lib").st_mode));
  expect_outside_untouched();
}

TEST_F(LayerUnpack, RegularFileOverPlantedSymlinkReplacesTheLink) {
  apply({Symlink("evil", (sentinel_ / "canary").string()), Symlink("evil2", "../sentinel/canary")});
  apply({File("evil", "replaced"), File("evil2", "replaced", 0777)});
  EXPECT_TRUE(S_ISREG(lstat_in("evil").st_mode));
  EXPECT_EQ(read_in("evil2"), "replaced");
  expect_outside_untouched();
}

TEST_F(LayerUnpack, HardlinkToHostFileIsRefused) {
  expect_refused(tar_of({Hardlink("passwd", "/etc/passwd")}),
                 "hardlink target '/etc/passwd' does not exist inside the image root");
  expect_refused(tar_of({Hardlink("canary", (sentinel_ / "canary").string())}),
                 "does not exist inside the image root");
  expect_refused(tar_of({Hardlink("canary", "../sentinel/canary")}),
                 "hardlink target '../sentinel/canary' escapes the image root");
  expect_refused(tar_of({Symlink("out", "../sentinel"), Hardlink("canary", "out/canary")}),
                 "does not exist inside the image root");
  EXPECT_FALSE(exists("passwd"));
  EXPECT_FALSE(exists("canary"));
}

TEST_F(LayerUnpack, TraversingWhiteoutIsRefused) {
  expect_refused(tar_of({File(".wh...")}), "invalid whiteout");
  expect_refused(tar_of({File("sub/.wh...")}), "invalid whiteout");
  expect_refused(tar_of({File(".wh.")}), "invalid whiteout");
  expect_refused(tar_of({File("../.wh.sentinel")}), "path escapes the image root");
  expect_refused(tar_of({File("a/../../.wh.sentinel")}), "path escapes the image root");
  EXPECT_TRUE(fs::exists(root_));
}

TEST_F(LayerUnpack, RootReplacementIsRefused) {
  expect_refused(tar_of({Symlink(".", sentinel_.string())}),
                 "layer entry '.': refusing to replace the image root with a non-directory");
  expect_refused(tar_of({Symlink("/", "../sentinel")}), "refusing to replace the image root");
  expect_refused(tar_of({File(".", "x")}), "refusing to replace the image root");
  Spec fifo = File("./", "", 0600);
  fifo.type = AE_IFIFO;
  expect_refused(tar_of({fifo}), "refusing to replace the image root");
  expect_refused(tar_of({File("real"), Hardlink(".", "real")}),
                 "refusing to replace the image root");
}

TEST_F(LayerUnpack, DeviceNodesAreSkipped) {
  Spec null = File("dev/null", "", 0666);
  null.type = AE_IFCHR;
  null.rdev = makedev(1, 3);
  Spec sda = File("dev/sda", "", 0660);
  sda.type = AE_IFBLK;
  sda.rdev = makedev(8, 0);
  auto stats = apply({Dir("dev"), null, sda});
  EXPECT_EQ(stats.skipped_devices, 2u);
  EXPECT_EQ(stats.entries, 3u);
  EXPECT_FALSE(exists("dev/null"));
  EXPECT_FALSE(exists("dev/sda"));
  expect_outside_untouched();
}

TEST_F(LayerUnpack, EntryCountBombIsRefused) {
  TarBuilder b;
  for (int i = 0; i < 1000; ++i) b.add(File("f" + std::to_string(i)));
  UnpackOptions o;
  o.limits.max_entries = 100;
  expect_refused(b.finish(), "more than max_entries (100)", o);
  EXPECT_LE(list_in("").size(), 100u);
}

TEST_F(LayerUnpack, SizeBombIsRefusedBeforeWriting) {
  // 100 MiB of zeros gzip to ~100 KiB; with a 10 MiB limit nothing of it may be written.
  std::string blob = TarBuilder(ARCHIVE_FILTER_GZIP).add_zeros("zero", 100 << 20).finish();
  EXPECT_LT(blob.size(), 1u << 20);
  UnpackOptions o;
  o.limits.max_total_bytes = 10 << 20;
  try {
    apply(blob, Compression::kGzip, o);
    ADD_FAILURE() << "bomb not refused";
  } catch (const UnsafeLayerError& e) {
    EXPECT_NE(std::string(e.what()).find("layer entry 'zero'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("max_total_bytes"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(exists("zero"));
  expect_outside_untouched();
}

TEST_F(LayerUnpack, SizeBombAcrossManyEntriesStopsAtTheLimit) {
  TarBuilder b(ARCHIVE_FILTER_GZIP);
  for (int i = 0; i < 40; ++i) b.add_zeros("z" + std::to_string(i), 1 << 20);
  UnpackOptions o;
  o.limits.max_total_bytes = 10 << 20;
  try {
    apply(b.finish(), Compression::kGzip, o);
    ADD_FAILURE() << "bomb not refused";
  } catch (const UnsafeLayerError& e) {
    EXPECT_NE(std::string(e.what()).find("max_total_bytes"), std::string::npos) << e.what();
  }
  uint64_t written = 0;
  for (const auto& d : fs::directory_iterator(root_)) written += fs::file_size(d.path());
  EXPECT_LE(written, 12u << 20);
}

TEST_F(LayerUnpack, TooLongPathIsRefused) {
  std::string name =
      std::string(200, 'a') + "/" + std::string(200, 'b') + "/" + std::string(5000 - 402, 'c');
  expect_refused(tar_of({File(name, "x")}), "path is longer than max_path_length (4096)");
  UnpackOptions o;
  o.limits.max_path_length = 16;
  expect_refused(tar_of({File("this/is/longer/than/16")}), "max_path_length (16)", o);
  expect_refused(tar_of({Symlink("s", std::string(100, 'x'))}), "link target is longer", o);
}

TEST_F(LayerUnpack, SymlinkLoopAsParentIsAnImageError) {
  EXPECT_THROW(apply({Symlink("l1", "l2"), Symlink("l2", "l1"), File("l1/x")}), ImageError);
  expect_outside_untouched();
}

// ---------------------------------------------------------------------------------------------
// The in-root resolver: openat2 and the fallback fd walk agree.

TEST_F(LayerUnpack, ResolverModesAgree) {
  apply({Dir("a/b"), File("f", "x"), Symlink("abs", "/a"), Symlink("rel", "a/../a/b"),
         Symlink("a/b/up", "../../../../.."), Symlink("loop1", "loop2"), Symlink("loop2", "loop1"),
         Symlink("tofile", "f"), Symlink("dangling", "/nope"), Symlink("out", "../sentinel"),
         Symlink("magic", "/proc/self/root"), Symlink("chain", "abs/b/up/rel")});
  struct Case {
    std::string path;
    int flags;
  };
  const std::vector<Case> cases = {
      {"", O_PATH | O_DIRECTORY},
      {"a/b", O_PATH | O_DIRECTORY},
      {"abs/b", O_PATH | O_DIRECTORY},
      {"rel", O_PATH | O_DIRECTORY},
      {"a/b/up", O_PATH | O_DIRECTORY},
      {"a/b/up/a/b/up/f", O_PATH},
      {"loop1/x", O_PATH},
      {"tofile/x", O_PATH},
      {"dangling", O_PATH},
      {"out", O_PATH},
      {"out/canary", O_PATH},
      {"magic", O_PATH | O_DIRECTORY},
      {"chain", O_PATH | O_DIRECTORY},
      {"abs", O_PATH | O_NOFOLLOW},
      {"f", O_PATH | O_DIRECTORY},
      {"tofile", O_RDONLY},
      {"a/b/up", O_RDONLY | O_DIRECTORY | O_NOFOLLOW},
  };
  RootResolver kernel(rootfd_.get(), ResolveMode::kOpenat2);
  RootResolver walk(rootfd_.get(), ResolveMode::kFdWalk);
  for (const Case& c : cases) {
    UniqueFd k, w;
    int ek = kernel.open(c.path, c.flags, k);
    int ew = walk.open(c.path, c.flags, w);
    if (ek == ENOSYS) GTEST_SKIP() << "kernel has no openat2";
    EXPECT_EQ(ek, ew) << c.path << ": openat2 " << strerror(ek) << ", walk " << strerror(ew);
    if (ek != 0 || ew != 0) continue;
    struct stat sk {
    }, sw{};
    ASSERT_EQ(fstat(k.get(), &sk), 0);
    ASSERT_EQ(fstat(w.get(), &sw), 0);
    EXPECT_EQ(sk.st_ino, sw.st_ino) << c.path;
    EXPECT_EQ(sk.st_dev, sw.st_dev) << c.path;
  }
  // Spot checks of what they agree on.
  UniqueFd fd;
  struct stat st {
  }, want{};
  ASSERT_EQ(walk.open("a/b/up", O_PATH | O_DIRECTORY, fd), 0);
  ASSERT_EQ(fstat(fd.get(), &st), 0);
  ASSERT_EQ(fstat(rootfd_.get(), &want), 0);
  EXPECT_EQ(st.st_ino, want.st_ino) << "'..' above the root stays at the root";
  EXPECT_EQ(walk.open("loop1/x", O_PATH, fd), ELOOP);
  EXPECT_EQ(walk.open("out/canary", O_PATH, fd), ENOENT);
  ASSERT_EQ(walk.open("abs", O_PATH | O_NOFOLLOW, fd), 0);
  ASSERT_EQ(fstat(fd.get(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  RootResolver automatic(rootfd_.get());
  ASSERT_EQ(automatic.open("a", O_PATH, fd), 0);
  EXPECT_NE(automatic.mode(), ResolveMode::kAuto);
}

// Finding 5 (issue 11): the puller's per-image budget and free-space checks run through
// UnpackOptions::check_bytes: before each regular file (with its size) and as the stream grows.
TEST_F(LayerUnpack, CheckBytesSeesEveryFileAndCanStopTheUnpack) {
  std::vector<std::pair<uint64_t, uint64_t>> seen;
  UnpackOptions opts;
  opts.check_bytes = [&](uint64_t reached, uint64_t to_write) {
    seen.emplace_back(reached, to_write);
  };
  apply(tar_of({File("a", std::string(1 << 20, 'a')), File("small", "s"),
                File("b", std::string(2 << 20, 'b'))}),
        Compression::kNone, opts);
  std::vector<uint64_t> writes;
  for (const auto& [reached, to_write] : seen)
    if (to_write) writes.push_back(to_write);
  EXPECT_EQ(writes, (std::vector<uint64_t>{1 << 20, 2 << 20}));  // small files: the stream step
  EXPECT_EQ(seen.front().second, 0u);  // the stream's own check comes first

  opts.check_bytes = [](uint64_t reached, uint64_t to_write) {
    if (to_write && reached > (3u << 20)) throw benchrun::ImageTooLarge("over budget");
  };
  EXPECT_THROW(apply(tar_of({File("c", std::string(4 << 20, 'c'))}), Compression::kNone, opts),
               benchrun::ImageTooLarge);
  EXPECT_FALSE(exists("c"));  // refused before a byte of it was written
}
