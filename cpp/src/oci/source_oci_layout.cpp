// source_oci_layout.cpp: images from an OCI image layout directory (image-spec image-layout.md).
#include <fcntl.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "benchrun/common/error.hpp"
#include "benchrun/common/fs.hpp"
#include "oci/source.hpp"

namespace benchrun::oci {

namespace fs = std::filesystem;

namespace {

constexpr const char* kRefNameAnnotation = "org.opencontainers.image.ref.name";

class OciLayoutSource final : public Source {
 public:
  OciLayoutSource(fs::path dir, std::string tag) : dir_(std::move(dir)), tag_(std::move(tag)) {
    std::string layout;
    try {
      layout = read_file(dir_ / "oci-layout", 4096);
    } catch (const SysError& e) {
      throw ImageError("open OCI layout '" + dir_.string() + "': no oci-layout file (" + e.what() +
                       ")");
    }
    try {
      auto j = nlohmann::json::parse(layout);
      if (j.at("imageLayoutVersion").get<std::string>().rfind("1.", 0) != 0)
        throw ImageError("open OCI layout '" + dir_.string() + "': unsupported imageLayoutVersion");
    } catch (const nlohmann::json::exception& e) {
      throw ImageError("open OCI layout '" + dir_.string() + "': bad oci-layout file: " + e.what());
    }
  }

  ResolvedManifest resolve(const Platform& platform) override {
    std::string index_json = read_file(dir_ / "index.json", kMaxManifestSize);
    ParsedManifest top = parse_manifest(index_json, std::string(media_type::kOciIndex));
    if (!top.index)
      throw ImageError("open OCI layout '" + dir_.string() + "': index.json is not an index");
    const Descriptor* chosen = nullptr;
    std::string names;
    for (const auto& d : top.index->manifests) {
      auto it = d.annotations.find(kRefNameAnnotation);
      std::string name = it == d.annotations.end() ? "" : it->second;
      if (!name.empty()) names += (names.empty() ? "" : ", ") + name;
      if (tag_.empty() ? top.index->manifests.size() == 1 : name == tag_) chosen = &d;
    }
    if (!chosen) {
      throw ImageError("open OCI layout '" + dir_.string() + "': " +
                       (tag_.empty() ? std::string("several images, name one with oci:PATH:TAG")
                                     : "no image named '" + tag_ + "'") +
                       " (available: " + (names.empty() ? "none" : names) + ")");
    }
    ManifestBytes bytes{read_small(*chosen, kMaxManifestSize), chosen->media_type};
    return resolve_platform(std::move(bytes), chosen->digest, platform,
                            [this](const Descriptor& d) {
                              return ManifestBytes{read_small(d, kMaxManifestSize), d.media_type};
                            });
  }

  void fetch_blob(const Descriptor& blob, int fd, const ProgressFn& progress) override {
    UniqueFd src = open_blob(blob);
    copy_verified(src.get(), fd, blob, "OCI layout '" + dir_.string() + "'", progress);
  }

  std::string fetch_small_blob(const Descriptor& blob, size_t max_bytes) override {
    std::string data = read_small(blob, max_bytes);
    Digest actual = digest_of(data, blob.digest.algorithm());
    if (actual != blob.digest || static_cast<int64_t>(data.size()) != blob.size)
      throw DigestMismatch("blob " + blob.digest.str() + " in OCI layout '" + dir_.string() +
                           "': content hashes to " + actual.str());
    return data;
  }

 private:
  fs::path blob_path(const Descriptor& d) const {
    // Digest is validated at parse time: the path cannot traverse.
    return dir_ / "blobs" / std::string(d.digest.algorithm_name()) / d.digest.hex();
  }

  UniqueFd open_blob(const Descriptor& d) const {
    fs::path p = blob_path(d);
    int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
      if (errno == ENOENT)
        throw ImageError("OCI layout '" + dir_.string() + "': blob " + d.digest.str() +
                         " is missing");
      throw_errno("open", p.string());
    }
    UniqueFd out(fd);
    struct stat st {};
    if (::fstat(fd, &st) != 0) throw_errno("stat", p.string());
    if (!S_ISREG(st.st_mode))
      throw ImageError("OCI layout blob '" + p.string() + "' is not a regular file");
    return out;
  }

  std::string read_small(const Descriptor& d, size_t max_bytes) const {
    if (d.size < 0 || static_cast<uint64_t>(d.size) > max_bytes)
      throw ImageError("blob " + d.digest.str() + ": declared size " + std::to_string(d.size) +
                       " exceeds the limit of " + std::to_string(max_bytes));
    UniqueFd fd = open_blob(d);
    return read_file(blob_path(d), max_bytes);
  }

  fs::path dir_;
  std::string tag_;
};

}  // namespace

std::unique_ptr<Source> open_oci_layout_source(const fs::path& dir, const std::string& tag) {
  return std::make_unique<OciLayoutSource>(dir, tag);
}

}  // namespace benchrun::oci
