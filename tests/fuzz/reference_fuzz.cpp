// reference_fuzz.cpp: libFuzzer target for image references and transport-prefixed sources
// (oci/reference.cpp), which take text from users, job submissions and docker-archive RepoTags.
//
// The only acceptable failure is ConfigError. What parses must be stable: rendering it and parsing
// that again gives the same reference (the string is used as a cache and record key).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "benchrun/common/error.hpp"
#include "benchrun/oci/reference.hpp"

namespace oci = benchrun::oci;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    oci::Reference r = oci::parse_reference(text);
    const std::string s = r.str();
    (void)r.name();
    (void)r.manifest_ref();
    (void)r.api_host();
    (void)r.is_loopback();
    if (oci::parse_reference(s).str() != s) std::abort();
  } catch (const benchrun::ConfigError&) {
  }
  try {
    oci::ImageSource src = oci::parse_image_source(text);
    (void)src.str();
  } catch (const benchrun::ConfigError&) {
  }
  return 0;
}
