// digest.cpp: digest validation (image-spec descriptor.md: lowercase hex of exact length) and
// hashing.
#include "benchrun/oci/digest.hpp"

#include <openssl/evp.h>

#include "benchrun/common/error.hpp"
#include "benchrun/common/text.hpp"

namespace benchrun::oci {

namespace {

size_t hex_length(DigestAlgorithm a) { return a == DigestAlgorithm::kSha256 ? 64 : 128; }

bool is_lower_hex(std::string_view s) {
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

const EVP_MD* evp_for(DigestAlgorithm a) {
  return a == DigestAlgorithm::kSha256 ? EVP_sha256() : EVP_sha512();
}

}  // namespace

bool Digest::valid(std::string_view text) noexcept {
  auto colon = text.find(':');
  if (colon == std::string_view::npos) return false;
  auto alg = text.substr(0, colon);
  auto hex = text.substr(colon + 1);
  if (alg == "sha256") return hex.size() == 64 && is_lower_hex(hex);
  if (alg == "sha512") return hex.size() == 128 && is_lower_hex(hex);
  return false;
}

Digest Digest::parse(std::string_view text) {
  auto colon = text.find(':');
  if (colon == std::string_view::npos)
    throw ImageError("invalid digest '" + printable(text) + "': expected <algorithm>:<hex>");
  auto alg = text.substr(0, colon);
  auto hex = text.substr(colon + 1);
  DigestAlgorithm a;
  if (alg == "sha256") {
    a = DigestAlgorithm::kSha256;
  } else if (alg == "sha512") {
    a = DigestAlgorithm::kSha512;
  } else {
    throw ImageError("invalid digest '" + printable(text) + "': unsupported algorithm '" +
                     printable(alg) + "' (sha256 and sha512 are supported)");
  }
  if (hex.size() != hex_length(a) || !is_lower_hex(hex))
    throw ImageError("invalid digest '" + printable(text) + "': " + std::string(alg) + " needs " +
                     std::to_string(hex_length(a)) + " lowercase hex digits");
  return Digest(a, std::string(hex));
}

std::string_view Digest::algorithm_name() const noexcept {
  return algorithm_ == DigestAlgorithm::kSha256 ? "sha256" : "sha512";
}

std::string Digest::str() const { return std::string(algorithm_name()) + ":" + hex_; }

std::string key_of(const Digest& d) { return std::string(d.algorithm_name()) + "-" + d.hex(); }

std::optional<Digest> digest_from_key(std::string_view key) {
  const size_t dash = key.find('-');
  if (dash == std::string_view::npos) return std::nullopt;
  std::string text(key);
  text[dash] = ':';
  if (!Digest::valid(text)) return std::nullopt;
  return Digest::parse(text);
}

struct Hasher::Impl {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ~Impl() { EVP_MD_CTX_free(ctx); }
};

Hasher::Hasher(DigestAlgorithm a) : algorithm_(a), impl_(std::make_unique<Impl>()) {
  if (!impl_->ctx) throw Error("hash: out of memory");
  reset();
}
Hasher::Hasher(Hasher&&) noexcept = default;
Hasher& Hasher::operator=(Hasher&&) noexcept = default;
Hasher::~Hasher() = default;

void Hasher::reset() {
  if (EVP_DigestInit_ex(impl_->ctx, evp_for(algorithm_), nullptr) != 1)
    throw Error("hash: EVP_DigestInit_ex failed");
}

void Hasher::update(const void* data, size_t len) {
  if (len && EVP_DigestUpdate(impl_->ctx, data, len) != 1) throw Error("hash: update failed");
}

Digest Hasher::finish() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (EVP_DigestFinal_ex(impl_->ctx, md, &n) != 1) throw Error("hash: final failed");
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex(n * 2, '0');
  for (unsigned i = 0; i < n; ++i) {
    hex[2 * i] = kHex[md[i] >> 4];
    hex[2 * i + 1] = kHex[md[i] & 0xf];
  }
  return Digest(algorithm_, std::move(hex));
}

Digest digest_of(std::string_view data, DigestAlgorithm a) {
  Hasher h(a);
  h.update(data);
  return h.finish();
}

Digest chain_id(const std::vector<Digest>& diff_ids) {
  if (diff_ids.empty()) return digest_of("");
  Digest chain = diff_ids.front();
  for (size_t i = 1; i < diff_ids.size(); ++i)
    chain = digest_of(chain.str() + " " + diff_ids[i].str());
  return chain;
}

}  // namespace benchrun::oci
