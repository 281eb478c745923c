// layer_unpack.hpp: apply OCI layer tarballs to a root directory, safely.
#pragma once

#include <cstdint>
#include <string>

#include "benchrun/oci/decompress.hpp"
#include "benchrun/oci/digest.hpp"
#include "benchrun/oci/manifest.hpp"

namespace benchrun::oci {

struct UnpackLimits {
  uint64_t max_entries = 2'000'000;        // per layer
  uint64_t max_total_bytes = 64ull << 30;  // uncompressed tar bytes per layer
  uint64_t max_path_length = 4096;
};

struct UnpackOptions {
  // Keep uid/gid from the archive (as root). When false, files belong to the caller.
  bool preserve_ownership = true;
  UnpackLimits limits;
  GzipEngine gzip = GzipEngine::kIsal;
};

struct LayerStats {
  Digest diff_id;  // digest of the uncompressed tar stream (same algorithm as requested)
  uint64_t entries = 0;
  uint64_t bytes = 0;  // uncompressed tar bytes
  uint64_t skipped_devices = 0;
};

// Applies one layer read from blob_fd (compressed per c) onto the directory rootfd, with whiteout
// and opaque-directory semantics. Every path is resolved beneath rootfd; an entry that would escape
// it
// (.., absolute, through a symlink, hardlink to outside, traversing whiteout), replace the root, or
// exceed the limits throws UnsafeLayerError naming the entry. Device nodes are skipped (counted).
// The diff_id is computed over the whole uncompressed stream (read to EOF); the caller compares it
// with the config's diff_ids.
LayerStats apply_layer(int rootfd, int blob_fd, Compression c, DigestAlgorithm diff_algorithm,
                       const UnpackOptions& options);

}  // namespace benchrun::oci
