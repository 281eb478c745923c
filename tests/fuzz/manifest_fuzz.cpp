// manifest_fuzz.cpp: libFuzzer target for manifest/index parsing and platform selection
// (oci/manifest.cpp): bodies come from registries, OCI layouts and docker-archive tarballs.
//
// The first byte picks the Content-Type the body arrived with (the parser checks the two agree),
// the rest is the body. The only acceptable failure is ImageError (from parse_manifest,
// select_platform and compression_for).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "benchrun/common/error.hpp"
#include "benchrun/oci/manifest.hpp"

namespace oci = benchrun::oci;

namespace {

const std::string_view kContentTypes[] = {
    "",
    oci::media_type::kOciIndex,
    oci::media_type::kOciManifest,
    oci::media_type::kDockerList,
    oci::media_type::kDockerManifest,
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
    "application/json; charset=utf-8",
    "application/vnd.oci.image.manifest.v1+json; charset=utf-8",
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string_view ct = kContentTypes[data[0] % std::size(kContentTypes)];
  const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    oci::ParsedManifest m = oci::parse_manifest(body, ct);
    if (m.index) {
      for (const char* want : {"linux/amd64", "linux/arm64", "linux/arm/v7"}) {
        try {
          (void)oci::select_platform(*m.index, oci::Platform::parse(want)).digest.str();
        } catch (const benchrun::ImageError&) {
        }
      }
    }
    if (m.manifest) {
      for (const auto& layer : m.manifest->layers) {
        try {
          (void)oci::compression_for(layer.media_type);
        } catch (const benchrun::ImageError&) {
        }
      }
    }
  } catch (const benchrun::ImageError&) {
  }
  return 0;
}
