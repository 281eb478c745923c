// store.hpp: the content-addressed local store (blobs, unpacked rootfs trees, image records, refs).
//
// Layout under root (every name derived from a validated Digest or a hash, never from input text):
//   blobs/<alg>/<hex>          verified blobs (manifests, configs, compressed layers)
//   rootfs/<alg>-<hex>/        unpacked trees keyed by the ChainID of their diff_ids
//   images/<alg>-<hex>.json    image records keyed by manifest digest
//   refs/<sha256(name)>.json   {"reference": ..., "digest": ...}
//   repos/<sha256(repo)>/<alg>-<hex>  {"repository": ..., "digest": ...}: the repository (registry
//                              + name) served this manifest digest to a successful, authorised pull
//   runs/                      per-run directories (overlay upper/work/merged)
//   tmp/                       in-progress writes; published only by rename(2)
//   locks/                     flock files serialising work on one blob / rootfs / ref
// Nothing half-written is ever visible: every publish is a rename within the same filesystem.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "benchrun/common/fs.hpp"
#include "benchrun/common/unique_fd.hpp"
#include "benchrun/oci/digest.hpp"
#include "benchrun/oci/manifest.hpp"

namespace benchrun::oci {

// What the store remembers about one pulled image (the manifest and config are blobs).
struct ImageRecord {
  Digest manifest_digest;
  std::string manifest_media_type;
  Digest config_digest;
  std::vector<Descriptor> layers;
  std::vector<Digest> diff_ids;
  std::optional<Digest> chain_id;  // set once the rootfs is unpacked
  Platform platform;
  std::string source;     // where it was pulled from, e.g. docker://localhost:5000/x:1
  int64_t pulled_at = 0;  // unix seconds
  uint64_t size = 0;      // sum of layer (compressed) sizes
};

struct PruneStats {
  uint64_t blobs_removed = 0;
  uint64_t rootfs_removed = 0;
  uint64_t tmp_removed = 0;
  uint64_t bytes_freed = 0;
};

class Store {
 public:
  // Creates the layout under root if missing. The root, rootfs/ and tmp/ are made (or repaired to)
  // 0700: unpacked trees keep the image's setuid binaries and owners. Throws ConfigError when the
  // root's parent is world-writable without the sticky bit, or a mode cannot be repaired.
  explicit Store(std::filesystem::path root);

  const std::filesystem::path& root() const noexcept { return root_; }

  std::filesystem::path blob_path(const Digest& d) const;
  bool has_blob(const Digest& d) const;
  std::string read_blob(const Digest& d, size_t max_bytes) const;
  // read_blob, then checks the bytes hash to d (DigestMismatch naming the store file otherwise):
  // used for every cached manifest and config, where hashing is cheap.
  std::string read_verified_blob(const Digest& d, size_t max_bytes) const;
  // The blob is in the store with exactly the size the descriptor declares.
  bool blob_size_ok(const Descriptor& d) const;
  // Removes a blob (the caller holds its lock); a missing one is fine.
  void remove_blob(const Digest& d);
  // Verifies data hashes to d, then publishes it.
  void put_blob(const Digest& d, std::string_view data);

  // A blob being written: a temp file under tmp/, published by commit() (rename), removed
  // otherwise.
  class BlobWriter {
   public:
    BlobWriter(BlobWriter&&) noexcept;
    BlobWriter& operator=(BlobWriter&&) = delete;
    ~BlobWriter();
    int fd() const noexcept { return fd_.get(); }
    // Publishes the temp file as the blob. The caller has verified the content.
    void commit();

   private:
    friend class Store;
    BlobWriter(std::filesystem::path tmp, std::filesystem::path final_path, UniqueFd fd);
    std::filesystem::path tmp_;
    std::filesystem::path final_;
    UniqueFd fd_;
    bool committed_ = false;
  };
  BlobWriter begin_blob(const Digest& d);
  // Publishes w under d, a digest the caller computed over exactly what it wrote.
  void commit_blob_as(BlobWriter& w, const Digest& d);

  std::filesystem::path rootfs_path(const Digest& chain_id) const;
  bool has_rootfs(const Digest& chain_id) const;
  // A fresh directory under tmp/ to unpack into.
  TempDir begin_rootfs();
  // Publishes dir as the rootfs for chain_id (if another process won the race, dir is discarded).
  void commit_rootfs(TempDir dir, const Digest& chain_id);

  // Lock on a named resource ("blob-<alg>-<hex>", "rootfs-<alg>-<hex>"): names are generated from
  // digests only. A pull holds "gc" shared for its whole duration; prune() takes it exclusively, so
  // nothing a pull has fetched but not yet recorded can be collected under it.
  FileLock lock(const std::string& name, bool shared = false) const;

  void put_image(const ImageRecord& r);
  std::optional<ImageRecord> get_image(const Digest& manifest_digest) const;
  std::vector<ImageRecord> list_images() const;

  // Points reference (a canonical name like "localhost:5000/app:1") at manifest_digest.
  void tag(const std::string& reference, const Digest& manifest_digest);
  std::optional<Digest> resolve(const std::string& reference) const;
  // All (reference, digest) pairs.
  std::vector<std::pair<std::string, Digest>> refs() const;
  // Removes a reference; drops the image record when no reference points at it any more.
  // Returns false when the reference is unknown.
  bool remove_ref(const std::string& reference);
  // Removes an image record and every ref pointing at it.
  bool remove_image(const Digest& manifest_digest);

  // Records that repository ("registry/name", Reference::name()) served manifest_digest to a
  // successful pull; a cache hit by digest requires this record for the repository asked for.
  void grant(const std::string& repository, const Digest& manifest_digest);
  bool granted(const std::string& repository, const Digest& manifest_digest) const;

  // Removes blobs and rootfs trees no image record references, and stale tmp/ entries.
  PruneStats prune();

 private:
  std::filesystem::path root_;
};

}  // namespace benchrun::oci
