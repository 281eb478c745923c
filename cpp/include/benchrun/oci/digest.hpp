// digest.hpp: validated content digests (sha256/sha512) and a streaming hasher.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace benchrun::oci {

enum class DigestAlgorithm { kSha256, kSha512 };

// "sha256:<64 lowercase hex>" or "sha512:<128 lowercase hex>". Construction validates, so a Digest
// is always safe to use as a path component.
class Digest {
 public:
  // The all-zero sha256 digest: a well-formed value for default-constructed records.
  Digest() : algorithm_(DigestAlgorithm::kSha256), hex_(64, '0') {}
  // Throws ImageError naming the text unless it is a well-formed sha256/sha512 digest.
  static Digest parse(std::string_view text);
  static bool valid(std::string_view text) noexcept;

  DigestAlgorithm algorithm() const noexcept { return algorithm_; }
  std::string_view algorithm_name() const noexcept;
  const std::string& hex() const noexcept { return hex_; }
  std::string str() const;

  bool operator==(const Digest& o) const noexcept {
    return algorithm_ == o.algorithm_ && hex_ == o.hex_;
  }
  bool operator!=(const Digest& o) const noexcept { return !(*this == o); }
  bool operator<(const Digest& o) const noexcept { return str() < o.str(); }

 private:
  Digest(DigestAlgorithm a, std::string hex) : algorithm_(a), hex_(std::move(hex)) {}
  DigestAlgorithm algorithm_;
  std::string hex_;
  friend class Hasher;
};

// Incremental hash (OpenSSL EVP). Movable, not copyable.
class Hasher {
 public:
  explicit Hasher(DigestAlgorithm a);
  Hasher(Hasher&&) noexcept;
  Hasher& operator=(Hasher&&) noexcept;
  ~Hasher();
  void update(const void* data, size_t len);
  void update(std::string_view s) { update(s.data(), s.size()); }
  // Ends the hash; the hasher must be reset() before reuse.
  Digest finish();
  void reset();
  DigestAlgorithm algorithm() const noexcept { return algorithm_; }

 private:
  DigestAlgorithm algorithm_;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// "sha256-<hex>": the digest as one file name (no ':'), the local store's key for blobs' locks,
// image records and unpacked rootfs trees.
std::string key_of(const Digest& d);
// The digest a key_of() string names; nullopt for any other text (a stray file in the store).
std::optional<Digest> digest_from_key(std::string_view key);

Digest digest_of(std::string_view data, DigestAlgorithm a = DigestAlgorithm::kSha256);

// ChainID of a stack of diff_ids (image-spec config.md): the cache key of an unpacked rootfs.
Digest chain_id(const std::vector<Digest>& diff_ids);

}  // namespace benchrun::oci
