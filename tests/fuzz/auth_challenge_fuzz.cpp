// auth_challenge_fuzz.cpp: libFuzzer target for what a registry sends before any check of its
// content: the WWW-Authenticate challenge (oci/auth.cpp) and digest strings (oci/digest.cpp), which
// name blobs on disk. parse_www_authenticate never throws (nullopt for garbage); Digest::parse
// throws ImageError only, agrees with Digest::valid, and what it accepts round-trips through the
// store's key form.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "benchrun/common/error.hpp"
#include "benchrun/oci/auth.hpp"
#include "benchrun/oci/digest.hpp"

namespace oci = benchrun::oci;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto ch = oci::parse_www_authenticate(text)) {
    for (char c : ch->scheme)
      if (c >= 'A' && c <= 'Z') std::abort();  // documented: lowercased
  }
  const bool valid = oci::Digest::valid(text);
  try {
    oci::Digest d = oci::Digest::parse(text);
    if (!valid || d.str() != text) std::abort();
    auto back = oci::digest_from_key(oci::key_of(d));
    if (!back || *back != d) std::abort();
  } catch (const benchrun::ImageError&) {
    if (valid) std::abort();
  }
  (void)oci::digest_from_key(text);
  return 0;
}
