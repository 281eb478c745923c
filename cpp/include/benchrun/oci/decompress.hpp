// decompress.hpp: pull-style stream decompressors (gzip via ISA-L or zlib, zstd, none) over an fd.
#pragma once

#include <cstddef>
#include <memory>

#include "benchrun/oci/manifest.hpp"

namespace benchrun::oci {

enum class GzipEngine { kIsal, kZlib };

// Reads compressed bytes from a source fd and yields uncompressed bytes. Multi-member gzip streams
// (eStargz) and multi-frame zstd are decoded whole. Corrupt input throws ImageError.
class Decompressor {
 public:
  virtual ~Decompressor() = default;
  // Fills up to len bytes; returns 0 only at the end of the stream.
  virtual size_t read(void* buf, size_t len) = 0;
};

// fd is borrowed and must outlive the decompressor.
std::unique_ptr<Decompressor> make_decompressor(Compression c, int fd,
                                                GzipEngine gzip = GzipEngine::kIsal);

}  // namespace benchrun::oci
