// source.hpp: where image bytes come from (registry, OCI layout, docker-archive), behind one
// interface.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "benchrun/oci/manifest.hpp"
#include "benchrun/oci/reference.hpp"
#include "benchrun/oci/registry_client.hpp"
#include "benchrun/oci/store.hpp"

namespace benchrun::oci {

// The platform-specific image manifest a source resolved to.
struct ResolvedManifest {
  std::string json;  // exact bytes
  std::string media_type;
  Digest digest;  // digest of json
  Manifest manifest;
};

class Source {
 public:
  virtual ~Source() = default;
  // Resolves tag/index to one image manifest for platform.
  virtual ResolvedManifest resolve(const Platform& platform) = 0;
  // Writes the blob to fd (empty, read-write), verifying its size and digest (DigestMismatch).
  // Must be safe to call from several threads at once.
  virtual void fetch_blob(const Descriptor& blob, int fd, const ProgressFn& progress) = 0;
  // A small blob (config) into memory, verified.
  virtual std::string fetch_small_blob(const Descriptor& blob, size_t max_bytes) = 0;
  // Asks the source, cheaply, whether it still serves the manifest digest to us (a registry: a
  // manifest HEAD with our credentials; throws when refused). False when the source has no cheap
  // check: the caller resolves in full instead.
  virtual bool confirm_manifest(const Digest&) { return false; }
};

std::unique_ptr<Source> open_registry_source(const Reference& ref, const RegistryOptions& options);
std::unique_ptr<Source> open_oci_layout_source(const std::filesystem::path& dir,
                                               const std::string& tag);
// Scans the archive once, storing its layers and config in the store as verified blobs.
std::unique_ptr<Source> open_docker_archive_source(const std::filesystem::path& tarball,
                                                   const std::string& tag, Store& store);

// Follows an index (nested up to a small depth) to the image manifest for platform. fetch(digest)
// returns {body, content type} of a child manifest, which must hash to the requested digest.
struct ManifestBytes {
  std::string body;
  std::string content_type;
};
ResolvedManifest resolve_platform(ManifestBytes top, const Digest& top_digest,
                                  const Platform& platform,
                                  const std::function<ManifestBytes(const Descriptor&)>& fetch);

// Streams src_fd to dst_fd while hashing; throws DigestMismatch unless size and digest match.
void copy_verified(int src_fd, int dst_fd, const Descriptor& blob, const std::string& what,
                   const ProgressFn& progress);

}  // namespace benchrun::oci
