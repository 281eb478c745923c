// manifest.hpp: OCI / Docker v2 manifests, indexes and image configs; platform selection.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "benchrun/oci/digest.hpp"

namespace benchrun::oci {

namespace media_type {
inline constexpr std::string_view kOciIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr std::string_view kOciManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view kOciConfig = "application/vnd.oci.image.config.v1+json";
inline constexpr std::string_view kDockerList =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr std::string_view kDockerManifest =
    "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr std::string_view kDockerConfig = "application/vnd.docker.container.image.v1+json";
// The Accept header value for manifest requests: all four manifest types.
std::string accept_header();
}  // namespace media_type

inline constexpr size_t kMaxManifestSize = 4 << 20;  // containerd's cap
inline constexpr size_t kMaxConfigSize = 8 << 20;

struct Platform {
  std::string os;
  std::string architecture;
  std::string variant;
  std::string str() const;  // "linux/arm64/v8"
  // linux + the host architecture (GOARCH naming: amd64, arm64, ...).
  static Platform host();
  // Parses "os/arch[/variant]"; throws ConfigError.
  static Platform parse(std::string_view text);
};

struct Descriptor {
  std::string media_type;
  Digest digest;
  int64_t size = 0;
  std::optional<Platform> platform;
  std::map<std::string, std::string> annotations;
};

struct Index {
  std::string media_type;
  std::vector<Descriptor> manifests;
};

struct Manifest {
  std::string media_type;
  Descriptor config;
  std::vector<Descriptor> layers;
};

// Either an index/list or an image manifest, after validation.
struct ParsedManifest {
  std::optional<Index> index;
  std::optional<Manifest> manifest;
  std::string media_type;
};

// Validates and parses a manifest body. content_type is the HTTP Content-Type (parameters allowed;
// empty when unknown, e.g. from an OCI layout where the descriptor's mediaType is passed instead).
// Rejects: body larger than kMaxManifestSize, invalid JSON, mediaType contradicting content_type,
// documents with both "manifests" and "layers"/"config", unsupported (schema 1) types, bad digests.
ParsedManifest parse_manifest(std::string_view body, std::string_view content_type);

// Picks the entry for want: same os and architecture, variant-aware (an arm64 entry without variant
// matches v8; when want.variant is empty the first entry wins), skipping attestation manifests
// (platform unknown/unknown or vnd.docker.reference.type=attestation-manifest) and entries whose
// mediaType is not a manifest/index. Throws ImageError listing the available platforms.
const Descriptor& select_platform(const Index& index, const Platform& want);

struct ImageConfig {
  std::string os;
  std::string architecture;
  std::string variant;
  std::vector<std::string> entrypoint;
  std::vector<std::string> cmd;
  std::vector<std::string> env;
  std::string working_dir;
  std::string user;
  std::string stop_signal;
  std::map<std::string, std::string> labels;
  std::vector<Digest> diff_ids;
  std::string created;
};

// Parses an image config blob; rootfs.type must be "layers". Throws ImageError.
ImageConfig parse_config(std::string_view body);

// Layer compression from a layer media type (OCI and Docker types); throws ImageError if unknown.
enum class Compression { kNone, kGzip, kZstd };
Compression compression_for(std::string_view layer_media_type);

}  // namespace benchrun::oci
