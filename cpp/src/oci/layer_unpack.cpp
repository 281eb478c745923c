// layer_unpack.cpp: apply one OCI layer tarball (gzip/zstd/plain) onto a root directory, safely.
//
// Design note. Semantics follow image-spec layer.md as umoci and containerd implement them:
//  * Names are cleaned ("./", "/" and empty components dropped; "/etc/x" is "etc/x" under the
//    root, as tar and umoci do); a ".." component is refused outright. The root itself only takes
//    directory metadata: an entry "." or "/" of any other type is refused (CVE-2021-29136).
//  * Existing path: dir onto dir merges (metadata only); anything else is removed (recursively)
//    and recreated. Duplicate entries: the last one wins.
//  * ".wh.NAME" removes NAME from lower layers only: paths this layer wrote are tracked (upper_)
//    and survive, and a whiteout or opaque marker on a directory that holds upper paths removes
//    only the lower content below it. "DIR/.wh..wh..opq" hides every lower child of DIR; applying
//    it when seen, with the same upper_ bookkeeping, gives the spec's "regardless of position"
//    result. Other ".wh..wh.*" (AUFS plnk/aufs) are metadata and skipped. Markers are never
//    written. upper_ is keyed by cleaned archive path, so a layer that writes "lib/x" through a
//    lib -> usr/lib symlink and whites out "usr/lib/.wh.x" does remove its own file (as
//    containerd's path-keyed tracking does).
//  * Containment: every parent directory is resolved with RootResolver (openat2 RESOLVE_IN_ROOT,
//    or an O_NOFOLLOW fd walk), so symlinks planted by this or earlier layers resolve as inside a
//    container and never lead out of the root; leaves are created relative to that dirfd with
//    O_CREAT|O_EXCL|O_NOFOLLOW, mkdirat, symlinkat (targets are data, never followed), mkfifoat,
//    and linkat between in-root dirfds (absolute hardlink targets are relative to the root, as
//    kaniko writes them). Metadata goes through fds: fchown, then fchmod (chown clears setuid),
//    then fsetxattr (chown also clears security.capability), then futimens; symlinks use
//    fchownat/utimensat with AT_SYMLINK_NOFOLLOW (symlink xattrs are dropped: no fd setter for
//    them before Linux 6.13). Directory mode and mtime are applied at the end of the layer,
//    deepest first, because creating children changes them.
//  * Device nodes are skipped and counted: the sandbox mounts its own /dev, and creating them
//    would need CAP_MKNOD for no benefit. FIFOs are created.
//  * Limits (UnpackLimits) bound entries, path length and uncompressed bytes; every byte of the
//    decompressed stream, including anything after the tar end-of-archive, is hashed for the
//    diff_id and counted against max_total_bytes.
#include "benchrun/oci/layer_unpack.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "benchrun/common/dir.hpp"
#include "benchrun/common/eintr.hpp"
#include "benchrun/common/error.hpp"
#include "benchrun/common/unique_fd.hpp"
#include "oci/path_resolve.hpp"

namespace benchrun::oci {

namespace {

constexpr size_t kTarBlock = 1 << 20;  // libarchive hands file data out in blocks of this size
constexpr std::string_view kWhiteoutPrefix = ".wh.";
constexpr std::string_view kWhiteoutMetaPrefix = ".wh..wh.";
constexpr std::string_view kOpaqueMarker = ".wh..wh..opq";

std::string entry_msg(std::string_view entry, std::string_view cause) {
  return "layer entry '" + printable(entry) + "': " + std::string(cause);
}

// Cleans an archive path into out ("" = the root). Returns false if it has a ".." component.
bool clean_path(std::string_view raw, std::string& out) {
  out.clear();
  size_t pos = 0;
  while (pos <= raw.size()) {
    size_t slash = raw.find('/', pos);
    if (slash == std::string_view::npos) slash = raw.size();
    std::string_view comp = raw.substr(pos, slash - pos);
    pos = slash + 1;
    if (comp.empty() || comp == ".") continue;
    if (comp == "..") return false;
    if (!out.empty()) out += '/';
    out += comp;
  }
  return true;
}

// Splits a cleaned path into parent (assigned to parent) and returns the leaf's offset in path.
size_t split_parent(const std::string& path, std::string& parent) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) {
    parent.clear();
    return 0;
  }
  parent.assign(path, 0, slash);
  return slash + 1;
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

void pwrite_all(int fd, const void* data, size_t size, off_t offset, std::string_view what) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = retry_eintr([&] { return ::pwrite(fd, p, size, offset); });
    if (n < 0) throw_errno("write", printable(what));
    p += n;
    size -= static_cast<size_t>(n);
    offset += n;
  }
}

// ---------------------------------------------------------------------------------------------
// The uncompressed tar stream as libarchive pulls it: every byte is hashed and counted.
class TarStream {
 public:
  TarStream(Decompressor& dec, DigestAlgorithm algorithm, uint64_t max_bytes,
            const std::function<void(uint64_t, uint64_t)>& check)
      : dec_(dec),
        hasher_(algorithm),
        max_bytes_(max_bytes),
        check_(check),
        buf_(new uint8_t[kTarBlock]) {}

  // libarchive's read callback. Exceptions must not unwind through libarchive's C frames: stash
  // the exception and report a fatal error; the caller rethrows it.
  static la_ssize_t read_cb(struct archive* a, void* self, const void** out) {
    auto* s = static_cast<TarStream*>(self);
    try {
      size_t n = s->next_block();
      *out = s->buf_.get();
      return static_cast<la_ssize_t>(n);
    } catch (...) {
      s->error_ = std::current_exception();
      archive_set_error(a, EIO, "layer stream failed");
      return -1;
    }
  }

  // Reads the rest of the stream (after the tar end-of-archive) so the digest covers every byte.
  void drain() {
    while (next_block() != 0) {
    }
  }

  void rethrow_pending() {
    if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
  }
  // Names the entry being applied in limit errors (copied: libarchive reuses its buffers).
  void set_entry(std::string_view entry) { entry_.assign(entry); }
  uint64_t bytes() const noexcept { return bytes_; }
  Digest finish() { return hasher_.finish(); }

 private:
  size_t next_block() {
    size_t n = dec_.read(buf_.get(), kTarBlock);
    hasher_.update(buf_.get(), n);
    bytes_ += n;
    if (bytes_ > max_bytes_) {
      std::string cause = "uncompressed layer is larger than max_total_bytes (" +
                          std::to_string(max_bytes_) + " bytes); refusing a decompression bomb";
      throw UnsafeLayerError(entry_.empty() ? "layer stream: " + cause : entry_msg(entry_, cause));
    }
    if (check_ && bytes_ >= next_check_) {
      next_check_ = bytes_ + kCheckBytesStep;
      check_(bytes_, 0);
    }
    return n;
  }

  Decompressor& dec_;
  Hasher hasher_;
  uint64_t max_bytes_;
  const std::function<void(uint64_t, uint64_t)>& check_;
  uint64_t bytes_ = 0;
  uint64_t next_check_ = 0;
  std::unique_ptr<uint8_t[]> buf_;
  std::exception_ptr error_;
  std::string entry_;
};

// ---------------------------------------------------------------------------------------------
// Applies entries one by one; finish() applies the deferred directory metadata.
class LayerApplier {
 public:
  LayerApplier(int rootfd, const UnpackOptions& options, TarStream& stream)
      : resolver_(rootfd), opts_(options), stream_(stream), is_root_(::geteuid() == 0) {}

  // Applies entry number index (1-based, for messages).
  void apply(struct archive* a, struct archive_entry* e, uint64_t index);
  void finish();
  uint64_t skipped_devices() const noexcept { return skipped_devices_; }

 private:
  struct DirMeta {
    std::string path;
    dev_t dev;
    ino_t ino;
    mode_t mode;
    struct timespec times[2];
  };

  int parent_dir();
  void apply_root(struct archive_entry* e);
  void make_dir(struct archive_entry* e, int dirfd, const char* leaf, bool exists,
                const struct stat& st);
  void make_file(struct archive* a, struct archive_entry* e, int dirfd, const char* leaf,
                 bool exists, const struct stat& st);
  void make_symlink(struct archive_entry* e, int dirfd, const char* leaf, bool exists,
                    const struct stat& st);
  void make_fifo(struct archive_entry* e, int dirfd, const char* leaf, bool exists,
                 const struct stat& st);
  void make_hardlink(const char* target, int dirfd, const char* leaf, bool exists,
                     const struct stat& st);
  void whiteout(std::string_view name);
  void opaque();

  void remove_existing(int dirfd, const char* leaf, const struct stat& st);
  void remove_tree_at(int dirfd, const char* name);
  void remove_lower_at(int dirfd, const std::string& name, const std::string& path);
  void remove_lower_children(int dirfd, const std::string& path);
  void mark_upper(const std::string& path);

  void set_owner(int fd, struct archive_entry* e);
  void set_xattrs(int fd, struct archive_entry* e, bool regular_or_dir);
  void record_dir_meta(int fd, struct archive_entry* e, const std::string& path);
  static void entry_times(struct archive_entry* e, struct timespec ts[2]);
  void check_link_length(const char* target);

  RootResolver resolver_;
  const UnpackOptions& opts_;
  TarStream& stream_;
  const bool is_root_;

  // Scratch for the current entry (reused: no per-entry allocation once grown).
  std::string raw_;   // the name as in the archive, for messages
  std::string path_;  // cleaned
  std::string parent_;
  std::string link_path_;
  std::string link_parent_;

  // Parent dirfd of the previous entry: consecutive entries mostly share it. Any removal may
  // change what a path resolves to, so removals invalidate it.
  std::string cached_parent_;
  UniqueFd cached_fd_;
  bool cache_valid_ = false;

  // Paths written by this layer, and every ancestor of one (whiteouts spare both).
  std::unordered_set<std::string> upper_;
  std::unordered_set<std::string> upper_ancestors_;

  std::vector<DirMeta> dirs_;
  std::unordered_map<std::string, size_t> dir_index_;
  uint64_t skipped_devices_ = 0;
};

void LayerApplier::apply(struct archive* a, struct archive_entry* e, uint64_t index) {
  const char* raw = archive_entry_pathname(e);
  if (raw == nullptr) raw = archive_entry_pathname_utf8(e);
  if (raw == nullptr)
    throw ImageError("layer entry #" + std::to_string(index) + ": name cannot be decoded");
  raw_.assign(raw);
  stream_.set_entry(raw_);
  if (raw_.size() > opts_.limits.max_path_length)
    throw UnsafeLayerError(entry_msg(raw_, "path is longer than max_path_length (" +
                                               std::to_string(opts_.limits.max_path_length) + ")"));
  if (!clean_path(raw_, path_))
    throw UnsafeLayerError(entry_msg(raw_, "path escapes the image root"));
  const size_t leaf_pos = split_parent(path_, parent_);
  const std::string_view leaf = std::string_view(path_).substr(leaf_pos);

  if (starts_with(leaf, kWhiteoutPrefix)) {
    if (leaf == kOpaqueMarker) return opaque();
    if (starts_with(leaf, kWhiteoutMetaPrefix)) return;  // AUFS metadata (.wh..wh.plnk, ...)
    std::string_view name = leaf.substr(kWhiteoutPrefix.size());
    if (name.empty() || name == "." || name == "..")
      throw UnsafeLayerError(entry_msg(raw_, "invalid whiteout (names no file in its directory)"));
    return whiteout(name);
  }
  for (size_t pos = 0; pos < parent_.size();) {
    size_t slash = std::min(parent_.find('/', pos), parent_.size());
    std::string_view comp = std::string_view(parent_).substr(pos, slash - pos);
    if (starts_with(comp, kWhiteoutMetaPrefix)) return;  // inside the AUFS hardlink dir
    if (starts_with(comp, kWhiteoutPrefix))
      throw ImageError(entry_msg(raw_, "lies beneath a whiteout marker"));
    pos = slash + 1;
  }

  const char* hardlink = archive_entry_hardlink(e);
  if (hardlink == nullptr) hardlink = archive_entry_hardlink_utf8(e);
  const mode_t type = archive_entry_filetype(e);
  if (path_.empty()) {
    if (hardlink != nullptr || type != AE_IFDIR)
      throw UnsafeLayerError(
          entry_msg(raw_, "refusing to replace the image root with a non-directory"));
    return apply_root(e);
  }
  if (hardlink == nullptr && (type == AE_IFCHR || type == AE_IFBLK)) {
    ++skipped_devices_;  // the sandbox provides /dev
    return;
  }
  if (hardlink == nullptr && type == AE_IFREG) {
    // Refuse an oversized file before writing any of it (the stream limit would stop it later).
    const int64_t size = archive_entry_size(e);
    const int64_t pos = archive_read_header_position(a);
    const uint64_t max = opts_.limits.max_total_bytes;
    if (size < 0 || static_cast<uint64_t>(size) > max ||
        static_cast<uint64_t>(std::max<int64_t>(pos, 0)) + static_cast<uint64_t>(size) > max)
      throw UnsafeLayerError(
          entry_msg(raw_, "file of " + std::to_string(size) + " bytes exceeds max_total_bytes (" +
                              std::to_string(max) + " bytes); refusing a decompression bomb"));
    // Large files are checked before a byte is written; smaller ones by the stream's periodic check
    // (a statvfs per small file would cost more than writing it).
    if (opts_.check_bytes && static_cast<uint64_t>(size) >= kCheckFileBytes)
      opts_.check_bytes(
          static_cast<uint64_t>(std::max<int64_t>(pos, 0)) + static_cast<uint64_t>(size),
          static_cast<uint64_t>(size));
  }

  const int dirfd = parent_dir();
  const char* leaf_c = path_.c_str() + leaf_pos;
  struct stat st {};
  bool exists = ::fstatat(dirfd, leaf_c, &st, AT_SYMLINK_NOFOLLOW) == 0;
  if (!exists && errno != ENOENT) throw_errno("stat", printable(raw_));

  if (hardlink != nullptr) {
    make_hardlink(hardlink, dirfd, leaf_c, exists, st);
  } else {
    switch (type) {
      case AE_IFDIR:
        make_dir(e, dirfd, leaf_c, exists, st);
        break;
      case AE_IFREG:
        make_file(a, e, dirfd, leaf_c, exists, st);
        break;
      case AE_IFLNK:
        make_symlink(e, dirfd, leaf_c, exists, st);
        break;
      case AE_IFIFO:
        make_fifo(e, dirfd, leaf_c, exists, st);
        break;
      default:
        throw ImageError(entry_msg(raw_, "unsupported entry type (mode " +
                                             std::to_string(static_cast<unsigned>(type)) + ")"));
    }
  }
  mark_upper(path_);
}

int LayerApplier::parent_dir() {
  if (parent_.empty()) return resolver_.rootfd();
  if (cache_valid_ && cached_parent_ == parent_) return cached_fd_.get();
  cached_fd_ = open_or_create_dir(resolver_, parent_, raw_, [this](std::string_view created) {
    mark_upper(std::string(created));
  });
  cached_parent_ = parent_;
  cache_valid_ = true;
  return cached_fd_.get();
}

void LayerApplier::apply_root(struct archive_entry* e) {
  UniqueFd fd(::openat(resolver_.rootfd(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) throw_errno("open", "image root");
  set_owner(fd.get(), e);
  set_xattrs(fd.get(), e, true);
  record_dir_meta(fd.get(), e, std::string());
}

void LayerApplier::make_dir(struct archive_entry* e, int dirfd, const char* leaf, bool exists,
                            const struct stat& st) {
  if (!exists || !S_ISDIR(st.st_mode)) {
    if (exists) remove_existing(dirfd, leaf, st);
    // 0700 until the deferred chmod at the end of the layer.
    if (::mkdirat(dirfd, leaf, 0700) != 0) throw_errno("mkdir", printable(raw_));
  }
  UniqueFd fd(::openat(dirfd, leaf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) throw_errno("open", printable(raw_));
  set_owner(fd.get(), e);
  set_xattrs(fd.get(), e, true);
  record_dir_meta(fd.get(), e, path_);
}

void LayerApplier::make_file(struct archive* a, struct archive_entry* e, int dirfd,
                             const char* leaf, bool exists, const struct stat& st) {
  if (exists) remove_existing(dirfd, leaf, st);
  UniqueFd fd(::openat(dirfd, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd) throw_errno("create", printable(raw_));
  // Data blocks point into libarchive's buffer (no copy); offsets skip sparse holes.
  uint64_t end = 0;
  for (;;) {
    const void* buf = nullptr;
    size_t size = 0;
    la_int64_t offset = 0;
    int rc = archive_read_data_block(a, &buf, &size, &offset);
    if (rc == ARCHIVE_EOF) break;
    if (rc < ARCHIVE_WARN) {
      stream_.rethrow_pending();
      throw ImageError(entry_msg(raw_, std::string("read tar data: ") + archive_error_string(a)));
    }
    if (offset < 0) throw ImageError(entry_msg(raw_, "negative data offset"));
    pwrite_all(fd.get(), buf, size, static_cast<off_t>(offset), raw_);
    end = std::max<uint64_t>(end, static_cast<uint64_t>(offset) + size);
  }
  const int64_t size = archive_entry_size(e);
  if (size > 0 && static_cast<uint64_t>(size) > end && ::ftruncate(fd.get(), size) != 0)
    throw_errno("truncate", printable(raw_));
  set_owner(fd.get(), e);
  if (::fchmod(fd.get(), archive_entry_perm(e) & 07777) != 0) throw_errno("chmod", printable(raw_));
  set_xattrs(fd.get(), e, true);
  struct timespec ts[2];
  entry_times(e, ts);
  if (::futimens(fd.get(), ts) != 0) throw_errno("set times", printable(raw_));
}

void LayerApplier::make_symlink(struct archive_entry* e, int dirfd, const char* leaf, bool exists,
                                const struct stat& st) {
  const char* target = archive_entry_symlink(e);
  if (target == nullptr) target = archive_entry_symlink_utf8(e);
  if (target == nullptr || *target == '\0')
    throw ImageError(entry_msg(raw_, "symlink has no (decodable) target"));
  check_link_length(target);
  if (exists) remove_existing(dirfd, leaf, st);
  // The target is stored verbatim and never followed here.
  if (::symlinkat(target, dirfd, leaf) != 0) throw_errno("symlink", printable(raw_));
  if (opts_.preserve_ownership &&
      ::fchownat(dirfd, leaf, static_cast<uid_t>(archive_entry_uid(e)),
                 static_cast<gid_t>(archive_entry_gid(e)), AT_SYMLINK_NOFOLLOW) != 0)
    throw_errno("chown", printable(raw_));
  // Symlink xattrs are skipped: there is no fd-based setter for a symlink before Linux 6.13.
  struct timespec ts[2];
  entry_times(e, ts);
  if (::utimensat(dirfd, leaf, ts, AT_SYMLINK_NOFOLLOW) != 0)
    throw_errno("set times", printable(raw_));
}

void LayerApplier::make_fifo(struct archive_entry* e, int dirfd, const char* leaf, bool exists,
                             const struct stat& st) {
  if (exists) remove_existing(dirfd, leaf, st);
  if (::mkfifoat(dirfd, leaf, 0600) != 0) throw_errno("mkfifo", printable(raw_));
  // Opening a FIFO read-only and non-blocking returns at once; metadata then goes through the fd.
  UniqueFd fd(::openat(dirfd, leaf, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) throw_errno("open", printable(raw_));
  set_owner(fd.get(), e);
  if (::fchmod(fd.get(), archive_entry_perm(e) & 07777) != 0) throw_errno("chmod", printable(raw_));
  set_xattrs(fd.get(), e, false);
  struct timespec ts[2];
  entry_times(e, ts);
  if (::futimens(fd.get(), ts) != 0) throw_errno("set times", printable(raw_));
}

void LayerApplier::make_hardlink(const char* target, int dirfd, const char* leaf, bool exists,
                                 const struct stat& st) {
  check_link_length(target);
  auto refuse = [&](std::string_view why) {
    throw UnsafeLayerError(
        entry_msg(raw_, "hardlink target '" + printable(target) + "' " + std::string(why)));
  };
  if (!clean_path(target, link_path_)) refuse("escapes the image root");
  if (link_path_.empty()) refuse("is the image root");
  const size_t leaf_pos = split_parent(link_path_, link_parent_);
  const char* target_leaf = link_path_.c_str() + leaf_pos;
  UniqueFd tdir;
  int err = resolver_.open(link_parent_, O_PATH | O_DIRECTORY, tdir);
  if (err == ENOENT || err == ENOTDIR || err == ELOOP)
    refuse("does not exist inside the image root");
  if (err != 0) throw_errno(err, "open hardlink target of", printable(raw_));
  struct stat tst {};
  if (::fstatat(tdir.get(), target_leaf, &tst, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) refuse("does not exist inside the image root");
    throw_errno("stat hardlink target of", printable(raw_));
  }
  if (S_ISDIR(tst.st_mode)) refuse("is a directory");
  if (exists && st.st_dev == tst.st_dev && st.st_ino == tst.st_ino) return;  // already linked
  if (exists) remove_existing(dirfd, leaf, st);
  // Flags 0: a symlink target is linked itself, not followed. Metadata belongs to the inode and
  // came with the target's own entry, so none is applied here.
  if (::linkat(tdir.get(), target_leaf, dirfd, leaf, 0) != 0) throw_errno("link", printable(raw_));
}

void LayerApplier::whiteout(std::string_view name) {
  UniqueFd dir;
  int err = resolver_.open(parent_, O_PATH | O_DIRECTORY, dir);
  if (err == ENOENT || err == ENOTDIR || err == ELOOP) return;  // nothing below to hide
  if (err != 0) throw_errno(err, "open", printable(raw_));
  std::string target = parent_.empty() ? std::string(name) : parent_ + "/" + std::string(name);
  remove_lower_at(dir.get(), std::string(name), target);
  cache_valid_ = false;
}

void LayerApplier::opaque() {
  UniqueFd dir;
  int err = resolver_.open(parent_, O_RDONLY | O_DIRECTORY, dir);
  if (err == ENOENT || err == ENOTDIR || err == ELOOP) return;
  if (err != 0) throw_errno(err, "open", printable(raw_));
  remove_lower_children(dir.get(), parent_);
  cache_valid_ = false;
}

// Removes name (a file, or a directory not holding upper paths) unless this layer wrote it; for
// a directory holding upper paths, recurses and removes only the lower children.
void LayerApplier::remove_lower_at(int dirfd, const std::string& name, const std::string& path) {
  struct stat st {};
  if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return;
    throw_errno("stat", printable(path));
  }
  const bool upper = upper_.count(path) != 0;
  if (S_ISDIR(st.st_mode) && (upper || upper_ancestors_.count(path) != 0)) {
    UniqueFd fd(::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) throw_errno("open", printable(path));
    remove_lower_children(fd.get(), path);
    return;
  }
  if (upper) return;
  remove_existing(dirfd, name.c_str(), st);
}

void LayerApplier::remove_lower_children(int dirfd, const std::string& path) {
  for (const std::string& name : list_dir(dirfd, printable(path)))
    remove_lower_at(dirfd, name, path.empty() ? name : path + "/" + name);
}

void LayerApplier::remove_existing(int dirfd, const char* leaf, const struct stat& st) {
  cache_valid_ = false;
  if (S_ISDIR(st.st_mode)) return remove_tree_at(dirfd, leaf);
  if (::unlinkat(dirfd, leaf, 0) != 0 && errno != ENOENT) throw_errno("unlink", printable(raw_));
}

void LayerApplier::remove_tree_at(int dirfd, const char* name) {
  if (::unlinkat(dirfd, name, 0) == 0 || errno == ENOENT) return;
  if (errno != EISDIR) throw_errno("unlink", printable(raw_));
  UniqueFd fd(::openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) throw_errno("open", printable(raw_));
  if (!is_root_) ::fchmod(fd.get(), 0700);  // a read-only directory must not block removal
  for (const std::string& child : list_dir(fd.get(), printable(raw_)))
    remove_tree_at(fd.get(), child.c_str());
  if (::unlinkat(dirfd, name, AT_REMOVEDIR) != 0 && errno != ENOENT)
    throw_errno("rmdir", printable(raw_));
}

void LayerApplier::mark_upper(const std::string& path) {
  upper_.insert(path);
  // Ancestors deepest first; once one is known, all of its own ancestors are too.
  for (size_t slash = path.rfind('/'); slash != std::string::npos && slash > 0;
       slash = path.rfind('/', slash - 1)) {
    if (!upper_ancestors_.insert(path.substr(0, slash)).second) break;
  }
}

void LayerApplier::set_owner(int fd, struct archive_entry* e) {
  if (!opts_.preserve_ownership) return;
  const int64_t uid = archive_entry_uid(e);
  const int64_t gid = archive_entry_gid(e);
  // (uid_t)-1 means "unchanged" to the kernel: refuse it and anything out of range.
  if (uid < 0 || gid < 0 || uid >= UINT32_MAX || gid >= UINT32_MAX)
    throw ImageError(entry_msg(raw_, "uid/gid out of range"));
  if (::fchown(fd, static_cast<uid_t>(uid), static_cast<gid_t>(gid)) != 0)
    throw_errno("chown", printable(raw_));
}

void LayerApplier::set_xattrs(int fd, struct archive_entry* e, bool regular_or_dir) {
  if (archive_entry_xattr_reset(e) == 0) return;
  const char* name = nullptr;
  const void* value = nullptr;
  size_t size = 0;
  while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
    // overlayfs metadata (whiteouts, opaque dirs, redirects, metacopy) must never come from an
    // image: the unpacked tree becomes an overlay lowerdir for every run.
    if (starts_with(name, "trusted.overlay.") || starts_with(name, "user.overlay.")) continue;
    if (::fsetxattr(fd, name, value, size, 0) == 0) continue;
    const int err = errno;
    // ENOTSUP: the filesystem has no such namespace. EPERM: user.* is refused on anything but
    // regular files and directories; trusted.* and security.* need root.
    if (err == ENOTSUP) continue;
    if (err == EPERM && (!is_root_ || (!regular_or_dir && starts_with(name, "user.")))) continue;
    throw_errno(err, "setxattr " + printable(name) + " on", printable(raw_));
  }
}

void LayerApplier::record_dir_meta(int fd, struct archive_entry* e, const std::string& path) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw_errno("stat", printable(raw_));
  DirMeta meta{path, st.st_dev, st.st_ino, static_cast<mode_t>(archive_entry_perm(e) & 07777), {}};
  entry_times(e, meta.times);
  auto [it, inserted] = dir_index_.try_emplace(path, dirs_.size());
  if (inserted)
    dirs_.push_back(std::move(meta));
  else
    dirs_[it->second] = std::move(meta);  // duplicate entry: the last one wins
}

void LayerApplier::entry_times(struct archive_entry* e, struct timespec ts[2]) {
  if (archive_entry_mtime_is_set(e))
    ts[1] = {static_cast<time_t>(archive_entry_mtime(e)), archive_entry_mtime_nsec(e)};
  else
    ts[1] = {0, UTIME_OMIT};
  if (archive_entry_atime_is_set(e))
    ts[0] = {static_cast<time_t>(archive_entry_atime(e)), archive_entry_atime_nsec(e)};
  else
    ts[0] = ts[1];
}

void LayerApplier::check_link_length(const char* target) {
  if (std::strlen(target) > opts_.limits.max_path_length)
    throw UnsafeLayerError(entry_msg(raw_, "link target is longer than max_path_length (" +
                                               std::to_string(opts_.limits.max_path_length) + ")"));
}

void LayerApplier::finish() {
  raw_.clear();
  // Deepest first: a parent's restrictive mode must not block reaching its children, and
  // nothing done here changes another directory's mtime.
  std::vector<size_t> order(dirs_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  auto depth = [&](size_t i) -> long {
    const std::string& p = dirs_[i].path;
    return p.empty() ? -1 : static_cast<long>(std::count(p.begin(), p.end(), '/'));
  };
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t x, size_t y) { return depth(x) > depth(y); });
  for (size_t i : order) {
    const DirMeta& m = dirs_[i];
    UniqueFd fd;
    int err = resolver_.open(m.path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, fd);
    if (err == ENOENT || err == ENOTDIR || err == ELOOP) continue;  // removed or replaced later
    if (err != 0) throw_errno(err, "open", printable(m.path));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) throw_errno("stat", printable(m.path));
    if (st.st_dev != m.dev || st.st_ino != m.ino) continue;  // not the directory we made
    if (::fchmod(fd.get(), m.mode) != 0) throw_errno("chmod", printable(m.path));
    if (::futimens(fd.get(), m.times) != 0) throw_errno("set times", printable(m.path));
  }
}

struct ArchiveFree {
  void operator()(struct archive* a) const noexcept { archive_read_free(a); }
};

}  // namespace

LayerStats apply_layer(int rootfd, int blob_fd, Compression c, DigestAlgorithm diff_algorithm,
                       const UnpackOptions& options) {
  struct stat root_st {};
  if (::fstat(rootfd, &root_st) != 0) throw_errno("stat", "image root");
  if (!S_ISDIR(root_st.st_mode)) throw_errno(ENOTDIR, "apply layer to", "image root");

  std::unique_ptr<Decompressor> dec = make_decompressor(c, blob_fd, options.gzip);
  TarStream stream(*dec, diff_algorithm, options.limits.max_total_bytes, options.check_bytes);
  std::unique_ptr<struct archive, ArchiveFree> a(archive_read_new());
  if (!a) throw std::bad_alloc();
  // Tar only (ustar, pax, GNU, v7); decompression is ours. No filters: bytes are never
  // reinterpreted.
  archive_read_support_format_tar(a.get());
  auto fail = [&](std::string_view where) {
    stream.rethrow_pending();
    const char* why = archive_error_string(a.get());
    throw ImageError("read layer tar" + std::string(where) + ": " + (why ? why : "unknown error"));
  };
  if (archive_read_open(a.get(), &stream, nullptr, &TarStream::read_cb, nullptr) != ARCHIVE_OK)
    fail("");

  LayerApplier applier(rootfd, options, stream);
  uint64_t entries = 0;
  for (;;) {
    struct archive_entry* entry = nullptr;
    int rc = archive_read_next_header(a.get(), &entry);
    if (rc == ARCHIVE_EOF) break;
    // ARCHIVE_RETRY (a damaged header libarchive would skip over) is fatal too: never guess.
    if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN)
      fail(entries ? " after entry #" + std::to_string(entries) : "");
    if (++entries > options.limits.max_entries)
      throw UnsafeLayerError("layer has more than max_entries (" +
                             std::to_string(options.limits.max_entries) + ") entries");
    applier.apply(a.get(), entry, entries);
  }
  applier.finish();
  stream.set_entry({});
  stream.drain();
  return LayerStats{stream.finish(), entries, stream.bytes(), applier.skipped_devices()};
}

}  // namespace benchrun::oci
