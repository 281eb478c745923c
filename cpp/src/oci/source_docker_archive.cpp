// source_docker_archive.cpp: images from a `docker save` tarball (legacy and OCI-in-tar layouts).
//
// The tarball is read once, sequentially: every regular member is streamed into the store as a
// content-addressed blob (its sha256 computed while copying), then manifest.json picks the config
// and layers by member name and we synthesise an OCI manifest for them. Members are never extracted
// to the filesystem, so hostile member names cannot escape anything.
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "benchrun/common/error.hpp"
#include "benchrun/common/fs.hpp"
#include "oci/source.hpp"

namespace benchrun::oci {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr size_t kMaxMembers = 100'000;

struct ArchiveDeleter {
  void operator()(struct archive* a) const { archive_read_free(a); }
};

struct Member {
  Digest digest;
  uint64_t size = 0;
};

std::string clean_name(std::string name) {
  while (name.rfind("./", 0) == 0) name.erase(0, 2);
  while (!name.empty() && name.front() == '/') name.erase(0, 1);
  return name;
}

// Resolves a relative symlink target against the link's directory, lexically.
std::string join_link(const std::string& link_name, const std::string& target) {
  if (!target.empty() && target.front() == '/') return clean_name(target);
  std::vector<std::string> parts;
  auto push = [&](const std::string& path) {
    size_t start = 0;
    while (start <= path.size()) {
      size_t slash = path.find('/', start);
      std::string part =
          path.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
      if (part == "..") {
        if (!parts.empty()) parts.pop_back();
      } else if (!part.empty() && part != ".") {
        parts.push_back(part);
      }
      if (slash == std::string::npos) break;
      start = slash + 1;
    }
  };
  auto dir = link_name.rfind('/');
  if (dir != std::string::npos) push(link_name.substr(0, dir));
  push(target);
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : "/") + p;
  return out;
}

class DockerArchiveSource final : public Source {
 public:
  DockerArchiveSource(fs::path tarball, std::string tag, Store& store)
      : tarball_(std::move(tarball)), tag_(std::move(tag)), store_(store) {
    scan();
  }

  ResolvedManifest resolve(const Platform& platform) override {
    (void)platform;  // docker save holds one platform per image
    const Member& manifest_member = member("manifest.json");
    std::string text = store_.read_blob(manifest_member.digest, kMaxManifestSize);
    json entries;
    try {
      entries = json::parse(text);
    } catch (const json::exception& e) {
      throw ImageError(where() + ": manifest.json is not JSON: " + e.what());
    }
    if (!entries.is_array() || entries.empty())
      throw ImageError(where() + ": manifest.json holds no images");
    const json* chosen = nullptr;
    std::string tags;
    for (const auto& e : entries) {
      if (!e.is_object()) throw ImageError(where() + ": manifest.json entry is not an object");
      if (!e.contains("RepoTags") || !e["RepoTags"].is_array()) continue;
      for (const auto& t : e["RepoTags"]) {
        if (!t.is_string()) continue;
        std::string text = t.get<std::string>();
        tags += (tags.empty() ? "" : ", ") + text.substr(0, 200);
        // docker save writes short names ("busybox:latest"), skopeo full ones: compare normalised.
        std::string normalised;
        try {
          normalised = parse_reference(text).str();
        } catch (const ConfigError&) {
          continue;
        }
        if (!tag_.empty() && tag_[0] != '@' && normalised == tag_) chosen = &e;
      }
    }
    if (tag_.empty()) {
      if (entries.size() != 1)
        throw ImageError(
            where() + ": holds " + std::to_string(entries.size()) +
            " images, name one with docker-archive:PATH:REF or :@N (available: " + tags + ")");
      chosen = &entries[0];
    } else if (tag_[0] == '@') {
      size_t n = 0;
      try {
        n = std::stoul(tag_.substr(1));
      } catch (const std::exception&) {
        throw ConfigError(where() + ": bad image index '" + tag_ + "'");
      }
      if (n >= entries.size())
        throw ImageError(where() + ": image index " + tag_ + " out of range (it holds " +
                         std::to_string(entries.size()) + ")");
      chosen = &entries[n];
    }
    if (!chosen)
      throw ImageError(where() + ": no image tagged '" + tag_ + "' (available: " + tags + ")");

    std::string config_name, layer_name;
    try {
      config_name = chosen->at("Config").get<std::string>();
    } catch (const json::exception&) {
      throw ImageError(where() + ": manifest.json entry has no Config");
    }
    const Member& config = member(config_name);
    json layers = json::array();
    if (!chosen->contains("Layers") || !(*chosen)["Layers"].is_array())
      throw ImageError(where() + ": manifest.json entry has no Layers");
    for (const auto& l : (*chosen)["Layers"]) {
      if (!l.is_string()) throw ImageError(where() + ": a Layers entry is not a string");
      const Member& m = member(l.get<std::string>());
      layers.push_back({{"mediaType", layer_media_type(m.digest)},
                        {"digest", m.digest.str()},
                        {"size", m.size}});
    }
    json manifest{{"schemaVersion", 2},
                  {"mediaType", std::string(media_type::kOciManifest)},
                  {"config",
                   {{"mediaType", std::string(media_type::kOciConfig)},
                    {"digest", config.digest.str()},
                    {"size", config.size}}},
                  {"layers", layers}};
    std::string body = manifest.dump();
    ParsedManifest parsed = parse_manifest(body, media_type::kOciManifest);
    Digest d = digest_of(body);
    store_.put_blob(d, body);
    return ResolvedManifest{std::move(body), std::string(media_type::kOciManifest), d,
                            std::move(*parsed.manifest)};
  }

  void fetch_blob(const Descriptor& blob, int fd, const ProgressFn& progress) override {
    UniqueFd src = open_file(store_.blob_path(blob.digest), O_RDONLY);
    copy_verified(src.get(), fd, blob, where(), progress);
  }

  std::string fetch_small_blob(const Descriptor& blob, size_t max_bytes) override {
    return store_.read_verified_blob(blob.digest, max_bytes);
  }

 private:
  std::string where() const { return "docker-archive '" + tarball_.string() + "'"; }

  const Member& member(const std::string& raw) {
    std::string name = clean_name(raw);
    for (int hops = 0; hops < 8; ++hops) {
      auto it = members_.find(name);
      if (it != members_.end()) return it->second;
      auto link = links_.find(name);
      if (link == links_.end()) break;
      name = link->second;
    }
    throw ImageError(where() + ": member '" + raw.substr(0, 200) + "' is missing");
  }

  std::string layer_media_type(const Digest& d) {
    UniqueFd fd = open_file(store_.blob_path(d), O_RDONLY);
    unsigned char magic[4] = {0, 0, 0, 0};
    ssize_t n = ::pread(fd.get(), magic, sizeof magic, 0);
    if (n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b)
      return "application/vnd.oci.image.layer.v1.tar+gzip";
    if (n == 4 && magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd)
      return "application/vnd.oci.image.layer.v1.tar+zstd";
    return "application/vnd.oci.image.layer.v1.tar";
  }

  void scan() {
    std::unique_ptr<struct archive, ArchiveDeleter> a(archive_read_new());
    archive_read_support_filter_all(a.get());
    archive_read_support_format_tar(a.get());
    if (archive_read_open_filename(a.get(), tarball_.c_str(), 1 << 20) != ARCHIVE_OK)
      throw ImageError("open " + where() + ": " + archive_error_string(a.get()));
    std::vector<char> buf(1 << 20);
    struct archive_entry* entry = nullptr;
    size_t count = 0;
    for (;;) {
      int r = archive_read_next_header(a.get(), &entry);
      if (r == ARCHIVE_EOF) break;
      if (r < ARCHIVE_WARN)
        throw ImageError("read " + where() + ": " + archive_error_string(a.get()));
      if (++count > kMaxMembers) throw ImageError(where() + ": more than 100000 members");
      std::string name =
          clean_name(archive_entry_pathname(entry) ? archive_entry_pathname(entry) : "");
      mode_t type = archive_entry_filetype(entry);
      if (type == AE_IFLNK && archive_entry_symlink(entry)) {
        links_[name] = join_link(name, archive_entry_symlink(entry));
        continue;
      }
      if (type == AE_IFREG && archive_entry_hardlink(entry)) {
        links_[name] = clean_name(archive_entry_hardlink(entry));
        continue;
      }
      if (type != AE_IFREG) continue;
      Hasher hasher(DigestAlgorithm::kSha256);
      // The digest is only known at the end: stage under a temporary name, then publish.
      Store::BlobWriter w = store_.begin_blob(Digest());
      uint64_t size = 0;
      for (;;) {
        la_ssize_t n = archive_read_data(a.get(), buf.data(), buf.size());
        if (n < 0)
          throw ImageError("read " + where() + " member '" + name +
                           "': " + archive_error_string(a.get()));
        if (n == 0) break;
        hasher.update(buf.data(), static_cast<size_t>(n));
        write_all(w.fd(), std::string_view(buf.data(), static_cast<size_t>(n)),
                  store_.root().string() + "/tmp");
        size += static_cast<uint64_t>(n);
      }
      Digest d = hasher.finish();
      if (cached_ok(d, size)) {
        members_[name] = Member{d, size};
        continue;  // w's destructor drops the duplicate
      }
      store_.commit_blob_as(w, d);
      members_[name] = Member{d, size};
    }
  }

  // A blob already in the store is kept only with this member's size (and, for small ones such as
  // configs, its digest); otherwise the member's bytes replace it.
  bool cached_ok(const Digest& d, uint64_t size) const {
    Descriptor desc;
    desc.digest = d;
    desc.size = static_cast<int64_t>(size);
    if (!store_.blob_size_ok(desc)) return false;
    if (size > kMaxConfigSize) return true;
    try {
      (void)store_.read_verified_blob(d, kMaxConfigSize);
      return true;
    } catch (const DigestMismatch&) {
      return false;
    }
  }

  fs::path tarball_;
  std::string tag_;
  Store& store_;
  std::map<std::string, Member> members_;
  std::map<std::string, std::string> links_;
};

}  // namespace

std::unique_ptr<Source> open_docker_archive_source(const fs::path& tarball, const std::string& tag,
                                                   Store& store) {
  return std::make_unique<DockerArchiveSource>(tarball, tag, store);
}

}  // namespace benchrun::oci
