// source_registry.cpp: images from a distribution-spec registry.
#include "benchrun/common/error.hpp"
#include "oci/source.hpp"

namespace benchrun::oci {

namespace {

class RegistrySource final : public Source {
 public:
  RegistrySource(const Reference& ref, const RegistryOptions& options)
      : ref_(ref), client_(ref, options) {}

  ResolvedManifest resolve(const Platform& platform) override {
    ManifestResponse top = client_.get_manifest(ref_.manifest_ref());
    return resolve_platform({std::move(top.body), top.content_type}, top.digest, platform,
                            [this](const Descriptor& d) {
                              ManifestResponse r = client_.get_manifest(d.digest.str());
                              return ManifestBytes{std::move(r.body), r.content_type};
                            });
  }

  void fetch_blob(const Descriptor& blob, int fd, const ProgressFn& progress) override {
    client_.fetch_blob(blob, fd, progress);
  }

  std::string fetch_small_blob(const Descriptor& blob, size_t max_bytes) override {
    return client_.fetch_blob_bytes(blob, max_bytes);
  }

  bool confirm_manifest(const Digest& digest) override {
    client_.head_manifest(digest);
    return true;
  }

 private:
  Reference ref_;
  RegistryClient client_;
};

}  // namespace

std::unique_ptr<Source> open_registry_source(const Reference& ref, const RegistryOptions& options) {
  return std::make_unique<RegistrySource>(ref, options);
}

}  // namespace benchrun::oci
