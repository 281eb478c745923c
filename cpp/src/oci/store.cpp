// store.cpp: the content-addressed local store; every publish is a rename, every name a digest.
#include "benchrun/oci/store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>
#include <set>

#include "benchrun/common/dir.hpp"
#include "benchrun/common/error.hpp"

namespace benchrun::oci {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr size_t kMaxRecordSize = 16 << 20;
// tmp/ entries older than this are considered abandoned by a dead process and swept by prune().
constexpr int64_t kStaleTmpSeconds = 24 * 3600;

uint64_t tree_size(const fs::path& p) {
  uint64_t total = 0;
  std::error_code ec;
  for (auto it =
           fs::recursive_directory_iterator(p, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) == 0 && S_ISREG(st.st_mode))
      total += static_cast<uint64_t>(st.st_blocks) * 512;
  }
  return total;
}

json descriptor_to_json(const Descriptor& d) {
  json j{{"mediaType", d.media_type}, {"digest", d.digest.str()}, {"size", d.size}};
  if (!d.annotations.empty()) j["annotations"] = d.annotations;
  return j;
}

Descriptor descriptor_from_json(const json& j) {
  Descriptor d;
  d.media_type = j.at("mediaType").get<std::string>();
  d.digest = Digest::parse(j.at("digest").get<std::string>());
  d.size = j.at("size").get<int64_t>();
  if (j.contains("annotations"))
    d.annotations = j.at("annotations").get<std::map<std::string, std::string>>();
  return d;
}

json record_to_json(const ImageRecord& r) {
  json layers = json::array();
  for (const auto& l : r.layers) layers.push_back(descriptor_to_json(l));
  json diff_ids = json::array();
  for (const auto& d : r.diff_ids) diff_ids.push_back(d.str());
  json j{{"schema", 1},
         {"manifest_digest", r.manifest_digest.str()},
         {"manifest_media_type", r.manifest_media_type},
         {"config_digest", r.config_digest.str()},
         {"layers", layers},
         {"diff_ids", diff_ids},
         {"platform", r.platform.str()},
         {"source", r.source},
         {"pulled_at", r.pulled_at},
         {"size", r.size}};
  if (r.chain_id) j["chain_id"] = r.chain_id->str();
  return j;
}

ImageRecord record_from_json(const json& j) {
  ImageRecord r;
  r.manifest_digest = Digest::parse(j.at("manifest_digest").get<std::string>());
  r.manifest_media_type = j.at("manifest_media_type").get<std::string>();
  r.config_digest = Digest::parse(j.at("config_digest").get<std::string>());
  for (const auto& l : j.at("layers")) r.layers.push_back(descriptor_from_json(l));
  for (const auto& d : j.at("diff_ids")) r.diff_ids.push_back(Digest::parse(d.get<std::string>()));
  if (j.contains("chain_id")) r.chain_id = Digest::parse(j.at("chain_id").get<std::string>());
  r.platform = Platform::parse(j.at("platform").get<std::string>());
  r.source = j.at("source").get<std::string>();
  r.pulled_at = j.at("pulled_at").get<int64_t>();
  r.size = j.at("size").get<uint64_t>();
  return r;
}

}  // namespace

namespace {

// The parent of the store must not let another user swap the store for a directory of theirs
// (rename it away, plant a symlink): world-writable parents need the sticky bit, as /tmp has.
void check_parent(const fs::path& root) {
  fs::path abs = fs::absolute(root).lexically_normal();
  if (!abs.has_filename()) abs = abs.parent_path();
  const fs::path parent = abs.parent_path();
  struct stat st {};
  if (::stat(parent.c_str(), &st) != 0) return;  // make_dirs reports a missing parent
  if ((st.st_mode & S_IWOTH) && !(st.st_mode & S_ISVTX))
    throw ConfigError("store '" + abs.string() + "': its parent directory '" + parent.string() +
                      "' is writable by every user and not sticky, so another user could replace "
                      "the store (hint: use a private directory such as ~/.cache/benchrun, or "
                      "chmod o-w or +t '" +
                      parent.string() + "')");
}

// Unpacked trees keep the image's modes and owners (setuid-root binaries included), so nobody but
// the store's owner may reach them: the directory is made (or repaired to) 0700.
void make_private(const fs::path& dir) {
  UniqueFd fd = open_file(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw_errno("stat", dir.string());
  if ((st.st_mode & 07777) == 0700) return;
  if (::fchmod(fd.get(), 0700) != 0) {
    const int err = errno;
    throw ConfigError(
        "store directory '" + dir.string() + "' is mode " + std::to_string((st.st_mode >> 6) & 7) +
        std::to_string((st.st_mode >> 3) & 7) + std::to_string(st.st_mode & 7) +
        ", reachable by other users, and could not be made 0700: " + std::strerror(err) +
        " (hint: chmod 700 it as its owner)");
  }
}

}  // namespace

Store::Store(fs::path root) : root_(std::move(root)) {
  check_parent(root_);
  make_dirs(root_);
  make_private(root_);
  for (const char* sub :
       {"blobs/sha256", "blobs/sha512", "rootfs", "images", "refs", "repos", "tmp", "locks"})
    make_dirs(root_ / sub);
  // Defence in depth under the private root: the directories that hold unpacked trees.
  for (const char* sub : {"rootfs", "tmp"}) make_private(root_ / sub);
}

fs::path Store::blob_path(const Digest& d) const {
  return root_ / "blobs" / std::string(d.algorithm_name()) / d.hex();
}

bool Store::has_blob(const Digest& d) const {
  struct stat st {};
  return ::stat(blob_path(d).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string Store::read_blob(const Digest& d, size_t max_bytes) const {
  return read_file(blob_path(d), max_bytes);
}

std::string Store::read_verified_blob(const Digest& d, size_t max_bytes) const {
  std::string data = read_blob(d, max_bytes);
  Digest actual = digest_of(data, d.algorithm());
  if (actual != d)
    throw DigestMismatch("store blob '" + blob_path(d).string() + "': content hashes to " +
                         actual.str() + " (hint: benchrun rmi the image, prune, and pull again)");
  return data;
}

bool Store::blob_size_ok(const Descriptor& d) const {
  struct stat st {};
  return ::stat(blob_path(d.digest).c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
         static_cast<int64_t>(st.st_size) == d.size;
}

void Store::remove_blob(const Digest& d) {
  const fs::path p = blob_path(d);
  if (::unlink(p.c_str()) != 0 && errno != ENOENT) throw_errno("unlink", p.string());
}

void Store::put_blob(const Digest& d, std::string_view data) {
  Digest actual = digest_of(data, d.algorithm());
  if (actual != d)
    throw DigestMismatch("store blob " + d.str() + ": content hashes to " + actual.str());
  // Only small blobs (manifests, configs) come here: a cached copy is compared, not trusted.
  struct stat st {};
  if (::stat(blob_path(d).c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
      static_cast<size_t>(st.st_size) == data.size() &&
      read_file(blob_path(d), data.size()) == data)
    return;
  write_file_atomic(blob_path(d), data);
}

Store::BlobWriter::BlobWriter(fs::path tmp, fs::path final_path, UniqueFd fd)
    : tmp_(std::move(tmp)), final_(std::move(final_path)), fd_(std::move(fd)) {}

Store::BlobWriter::BlobWriter(BlobWriter&& o) noexcept
    : tmp_(std::move(o.tmp_)),
      final_(std::move(o.final_)),
      fd_(std::move(o.fd_)),
      committed_(std::exchange(o.committed_, true)) {}

Store::BlobWriter::~BlobWriter() {
  if (!committed_ && !tmp_.empty()) ::unlink(tmp_.c_str());
}

void Store::BlobWriter::commit() {
  if (::fsync(fd_.get()) != 0) throw_errno("fsync", tmp_.string());
  if (::fchmod(fd_.get(), 0444) != 0) throw_errno("chmod", tmp_.string());
  if (::rename(tmp_.c_str(), final_.c_str()) != 0) throw_errno("rename", final_.string());
  committed_ = true;
}

Store::BlobWriter Store::begin_blob(const Digest& d) {
  std::string tmpl = (root_ / "tmp" / ("blob-" + key_of(d).substr(0, 24) + "-XXXXXX")).string();
  int fd = ::mkostemp(tmpl.data(), O_CLOEXEC);
  if (fd < 0) throw_errno("mkstemp", tmpl);
  return BlobWriter(tmpl, blob_path(d), UniqueFd(fd));
}

void Store::commit_blob_as(BlobWriter& w, const Digest& d) {
  w.final_ = blob_path(d);
  w.commit();
}

fs::path Store::rootfs_path(const Digest& chain_id) const {
  return root_ / "rootfs" / key_of(chain_id);
}

bool Store::has_rootfs(const Digest& chain_id) const {
  struct stat st {};
  return ::lstat(rootfs_path(chain_id).c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

TempDir Store::begin_rootfs() { return TempDir(root_ / "tmp", "rootfs-"); }

void Store::commit_rootfs(TempDir dir, const Digest& chain_id) {
  fs::path dst = rootfs_path(chain_id);
  // renameat2(RENAME_NOREPLACE): a rootfs published by another process wins; ours is discarded.
  if (::renameat2(AT_FDCWD, dir.path().c_str(), AT_FDCWD, dst.c_str(), RENAME_NOREPLACE) == 0) {
    dir.release();
    return;
  }
  if (errno != EEXIST && errno != ENOTEMPTY) throw_errno("rename", dst.string());
}

namespace {
std::string repo_dir(const std::string& repository) { return digest_of(repository).hex(); }
}  // namespace

void Store::grant(const std::string& repository, const Digest& manifest_digest) {
  if (granted(repository, manifest_digest)) return;
  const fs::path dir = root_ / "repos" / repo_dir(repository);
  make_dirs(dir);
  json j{{"repository", repository}, {"digest", manifest_digest.str()}};
  write_file_atomic(dir / key_of(manifest_digest), j.dump());
}

bool Store::granted(const std::string& repository, const Digest& manifest_digest) const {
  const fs::path p = root_ / "repos" / repo_dir(repository) / key_of(manifest_digest);
  if (::access(p.c_str(), F_OK) != 0) return false;
  try {
    json j = json::parse(read_file(p, kMaxRecordSize));
    return j.at("repository").get<std::string>() == repository &&
           j.at("digest").get<std::string>() == manifest_digest.str();
  } catch (const std::exception&) {
    return false;  // a corrupt record grants nothing; the next pull rewrites it
  }
}

FileLock Store::lock(const std::string& name, bool shared) const {
  return FileLock(root_ / "locks" / name, shared);
}

void Store::put_image(const ImageRecord& r) {
  write_file_atomic(root_ / "images" / (key_of(r.manifest_digest) + ".json"),
                    record_to_json(r).dump(2));
}

std::optional<ImageRecord> Store::get_image(const Digest& manifest_digest) const {
  fs::path p = root_ / "images" / (key_of(manifest_digest) + ".json");
  if (::access(p.c_str(), F_OK) != 0) return std::nullopt;
  try {
    return record_from_json(json::parse(read_file(p, kMaxRecordSize)));
  } catch (const json::exception& e) {
    throw ImageError("read image record '" + p.string() + "': " + e.what() +
                     " (hint: benchrun rmi the image and pull it again)");
  }
}

std::vector<ImageRecord> Store::list_images() const {
  std::vector<ImageRecord> out;
  for (const auto& name : list_dir_if_exists(root_ / "images")) {
    if (name.size() < 6 || name.substr(name.size() - 5) != ".json") continue;
    std::optional<Digest> digest = digest_from_key(name.substr(0, name.size() - 5));
    if (!digest) continue;
    if (auto r = get_image(*digest)) out.push_back(std::move(*r));
  }
  return out;
}

namespace {
std::string ref_file(const std::string& reference) { return digest_of(reference).hex() + ".json"; }
}  // namespace

void Store::tag(const std::string& reference, const Digest& manifest_digest) {
  json j{{"reference", reference}, {"digest", manifest_digest.str()}};
  write_file_atomic(root_ / "refs" / ref_file(reference), j.dump());
}

std::optional<Digest> Store::resolve(const std::string& reference) const {
  fs::path p = root_ / "refs" / ref_file(reference);
  if (::access(p.c_str(), F_OK) != 0) return std::nullopt;
  try {
    json j = json::parse(read_file(p, kMaxRecordSize));
    if (j.at("reference").get<std::string>() != reference) return std::nullopt;
    return Digest::parse(j.at("digest").get<std::string>());
  } catch (const json::exception& e) {
    throw ImageError("read reference '" + p.string() + "': " + e.what());
  }
}

std::vector<std::pair<std::string, Digest>> Store::refs() const {
  std::vector<std::pair<std::string, Digest>> out;
  for (const auto& name : list_dir_if_exists(root_ / "refs")) {
    try {
      json j = json::parse(read_file(root_ / "refs" / name, kMaxRecordSize));
      out.emplace_back(j.at("reference").get<std::string>(),
                       Digest::parse(j.at("digest").get<std::string>()));
    } catch (const std::exception&) {
      // A corrupt ref file is ignored here; prune() does not touch refs, rmi can remove it by name.
    }
  }
  return out;
}

bool Store::remove_ref(const std::string& reference) {
  auto digest = resolve(reference);
  if (!digest) return false;
  FileLock l = lock("refs");
  fs::path p = root_ / "refs" / ref_file(reference);
  if (::unlink(p.c_str()) != 0 && errno != ENOENT) throw_errno("unlink", p.string());
  for (const auto& [ref, d] : refs())
    if (d == *digest) return true;
  fs::path rec = root_ / "images" / (key_of(*digest) + ".json");
  if (::unlink(rec.c_str()) != 0 && errno != ENOENT) throw_errno("unlink", rec.string());
  return true;
}

bool Store::remove_image(const Digest& manifest_digest) {
  FileLock l = lock("refs");
  bool found = false;
  for (const auto& [ref, d] : refs()) {
    if (d != manifest_digest) continue;
    fs::path p = root_ / "refs" / ref_file(ref);
    if (::unlink(p.c_str()) != 0 && errno != ENOENT) throw_errno("unlink", p.string());
    found = true;
  }
  fs::path rec = root_ / "images" / (key_of(manifest_digest) + ".json");
  if (::unlink(rec.c_str()) == 0) found = true;
  return found;
}

PruneStats Store::prune() {
  FileLock gc = lock("gc");
  PruneStats stats;
  std::set<std::string> live_blobs, live_rootfs;
  for (const auto& r : list_images()) {
    live_blobs.insert(r.manifest_digest.str());
    live_blobs.insert(r.config_digest.str());
    for (const auto& layer : r.layers) live_blobs.insert(layer.digest.str());
    if (r.chain_id) live_rootfs.insert(key_of(*r.chain_id));
  }
  // Blobs and trees are only removed under their own lock, so a concurrent pull that is using
  // one keeps it (the puller re-checks existence under the same lock).
  for (const char* alg : {"sha256", "sha512"}) {
    fs::path dir = root_ / "blobs" / alg;
    for (const auto& hex : list_dir_if_exists(dir)) {
      std::string text = std::string(alg) + ":" + hex;
      if (live_blobs.count(text)) continue;
      fs::path p = dir / hex;
      struct stat st {};
      if (::lstat(p.c_str(), &st) == 0) stats.bytes_freed += static_cast<uint64_t>(st.st_size);
      FileLock bl = lock("blob-" + std::string(alg) + "-" + hex.substr(0, 128));
      remove_tree(p);
      ++stats.blobs_removed;
    }
  }
  for (const auto& name : list_dir_if_exists(root_ / "rootfs")) {
    if (live_rootfs.count(name)) continue;
    FileLock rl = lock("rootfs-" + name.substr(0, 140));
    fs::path p = root_ / "rootfs" / name;
    stats.bytes_freed += tree_size(p);
    remove_tree(p);
    ++stats.rootfs_removed;
  }
  int64_t now = static_cast<int64_t>(::time(nullptr));
  for (const auto& name : list_dir_if_exists(root_ / "tmp")) {
    fs::path p = root_ / "tmp" / name;
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0) continue;
    if (now - static_cast<int64_t>(st.st_mtime) < kStaleTmpSeconds) continue;
    stats.bytes_freed += S_ISDIR(st.st_mode) ? tree_size(p) : static_cast<uint64_t>(st.st_size);
    remove_tree(p);
    ++stats.tmp_removed;
  }
  return stats;
}

}  // namespace benchrun::oci
