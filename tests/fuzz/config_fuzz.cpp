// config_fuzz.cpp: libFuzzer target for image config parsing (oci/manifest.cpp parse_config): the
// config blob is chosen by the image's author. The only acceptable failure is ImageError.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "benchrun/common/error.hpp"
#include "benchrun/oci/digest.hpp"
#include "benchrun/oci/manifest.hpp"

namespace oci = benchrun::oci;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  try {
    oci::ImageConfig c = oci::parse_config(body);
    if (!c.diff_ids.empty()) (void)oci::chain_id(c.diff_ids);
  } catch (const benchrun::ImageError&) {
  }
  return 0;
}
