// source_common.cpp: index resolution and verified copies shared by all image sources.
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "benchrun/common/eintr.hpp"
#include "benchrun/common/error.hpp"
#include "benchrun/common/fs.hpp"
#include "oci/source.hpp"

namespace benchrun::oci {

namespace {
constexpr int kMaxIndexDepth = 4;
}

ResolvedManifest resolve_platform(ManifestBytes top, const Digest& top_digest,
                                  const Platform& platform,
                                  const std::function<ManifestBytes(const Descriptor&)>& fetch) {
  ManifestBytes current = std::move(top);
  Digest digest = top_digest;
  for (int depth = 0; depth <= kMaxIndexDepth; ++depth) {
    ParsedManifest parsed = parse_manifest(current.body, current.content_type);
    if (parsed.manifest) {
      return ResolvedManifest{std::move(current.body), parsed.media_type, digest,
                              std::move(*parsed.manifest)};
    }
    const Descriptor& chosen = select_platform(*parsed.index, platform);
    ManifestBytes child = fetch(chosen);
    Digest actual = digest_of(child.body, chosen.digest.algorithm());
    if (actual != chosen.digest)
      throw DigestMismatch("manifest " + chosen.digest.str() + ": content hashes to " +
                           actual.str());
    if (child.content_type.empty()) child.content_type = chosen.media_type;
    current = std::move(child);
    digest = chosen.digest;
  }
  throw ImageError("resolve manifest " + top_digest.str() + ": indexes nested more than " +
                   std::to_string(kMaxIndexDepth) + " deep");
}

void copy_verified(int src_fd, int dst_fd, const Descriptor& blob, const std::string& what,
                   const ProgressFn& progress) {
  Hasher hasher(blob.digest.algorithm());
  std::vector<char> buf(1 << 20);
  uint64_t total = 0;
  const uint64_t want = static_cast<uint64_t>(blob.size);
  for (;;) {
    ssize_t n = retry_eintr([&] { return ::read(src_fd, buf.data(), buf.size()); });
    if (n < 0) throw_errno("read", what);
    if (n == 0) break;
    total += static_cast<uint64_t>(n);
    if (total > want)
      throw DigestMismatch("blob " + blob.digest.str() + " from " + what + ": larger than its " +
                           std::to_string(want) + " bytes");
    hasher.update(buf.data(), static_cast<size_t>(n));
    write_all(dst_fd, std::string_view(buf.data(), static_cast<size_t>(n)),
              "blob " + blob.digest.str());
    if (progress) progress(total, want);
  }
  if (total != want)
    throw DigestMismatch("blob " + blob.digest.str() + " from " + what + ": " +
                         std::to_string(total) + " bytes, descriptor says " + std::to_string(want));
  Digest actual = hasher.finish();
  if (actual != blob.digest)
    throw DigestMismatch("blob " + blob.digest.str() + " from " + what + ": content hashes to " +
                         actual.str());
}

}  // namespace benchrun::oci
