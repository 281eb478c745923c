// layer_unpack.hpp: apply OCI layer tarballs to a root directory, safely.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "benchrun/oci/decompress.hpp"
#include "benchrun/oci/digest.hpp"
#include "benchrun/oci/manifest.hpp"

namespace benchrun::oci {

struct UnpackLimits {
  uint64_t max_entries = 2'000'000;        // per layer
  uint64_t max_total_bytes = 64ull << 30;  // uncompressed tar bytes per layer
  uint64_t max_path_length = 4096;
  // Per image (pull): the uncompressed bytes of all layers together may be at most
  // max(min_image_bytes, max_image_ratio x the compressed size), and never more than
  // max_image_bytes. Exceeding it throws ImageTooLarge and the pull leaves nothing behind.
  uint64_t max_image_ratio = 100;
  uint64_t min_image_bytes = 64ull << 20;
  uint64_t max_image_bytes = 32ull << 30;
  // Kept free on the store's filesystem before and during the unpack (bytes; UINT64_MAX = 5 % of
  // the filesystem, at most 1 GiB).
  uint64_t min_free_bytes = UINT64_MAX;
};

struct UnpackOptions {
  // Keep uid/gid from the archive (as root). When false, files belong to the caller.
  bool preserve_ownership = true;
  UnpackLimits limits;
  GzipEngine gzip = GzipEngine::kIsal;
  // Called with (uncompressed bytes of this layer so far, bytes about to be written) every
  // kCheckBytesStep bytes of the stream (with 0 to write) and before each regular file of at least
  // kCheckFileBytes is written; throws to stop the unpack (the puller's per-image budget and
  // free-space checks).
  std::function<void(uint64_t, uint64_t)> check_bytes;
};

constexpr uint64_t kCheckBytesStep = 4ull << 20;
constexpr uint64_t kCheckFileBytes = 1ull << 20;

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
