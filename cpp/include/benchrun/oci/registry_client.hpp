// registry_client.hpp: distribution-spec pull client over libcurl (HTTPS with system CAs).
//
// Design: one client per (registry, repository). Manifests are fetched with all four manifest media
// types in Accept and validated by parse_manifest. Blobs are streamed to an fd while being hashed
// and verified against the requested digest (never Docker-Content-Digest). Auth: anonymous or
// credentialed Bearer token flow from the WWW-Authenticate challenge (tokens cached per scope until
// expiry), or Basic. Redirects are followed by hand so Authorization never leaves the registry's
// host. 429/5xx and transport errors are retried with exponential backoff (Retry-After honoured);
// an interrupted blob is resumed with Range only when the 206 Content-Range starts at the offset we
// asked for, otherwise it restarts from byte 0.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "benchrun/oci/auth.hpp"
#include "benchrun/oci/manifest.hpp"
#include "benchrun/oci/reference.hpp"

namespace benchrun::oci {

struct RegistryOptions {
  // Registries (host[:port]) that may be spoken to over plain HTTP although not loopback.
  std::vector<std::string> insecure_registries;
  // Explicit credentials win over docker_config; a registry_token is sent as Bearer directly.
  std::optional<Credentials> credentials;
  std::string docker_config;  // path to config.json; empty = none
  std::string credential_helper_dir;
  // CA bundle file to trust instead of the default bundle file (the system CA directory still
  // applies); empty = system CAs.
  std::string ca_file;
  std::string user_agent = "benchrun";
  int max_attempts = 5;          // per request, including the first
  int backoff_initial_ms = 200;  // doubled each retry, capped at backoff_max_ms
  int backoff_max_ms = 10'000;
  long connect_timeout_s = 30;
  long low_speed_timeout_s = 60;  // abort a transfer slower than 1 KiB/s for this long
};

// Called with (bytes_done, bytes_total) while a blob downloads; may be called from worker threads.
using ProgressFn = std::function<void(uint64_t, uint64_t)>;

struct ManifestResponse {
  std::string body;          // exact bytes received
  std::string content_type;  // without parameters
  Digest digest;             // sha256 (or the requested algorithm) of body, verified if by digest
  ParsedManifest parsed;
};

class RegistryClient {
 public:
  RegistryClient(Reference ref, RegistryOptions options);
  ~RegistryClient();
  RegistryClient(const RegistryClient&) = delete;
  RegistryClient& operator=(const RegistryClient&) = delete;

  // "https://host" or "http://host" as decided by the options and loopback rule.
  const std::string& base_url() const;

  // GET /v2/<repo>/manifests/<tag-or-digest>. When ref_or_digest is a digest, the body must hash to
  // it.
  ManifestResponse get_manifest(const std::string& ref_or_digest);

  // HEAD /v2/<repo>/manifests/<digest> with the client's credentials: returns when the registry
  // serves that manifest to us (200), throws RegistryError/AuthError otherwise. The cheap access
  // check before a cached image is used (--pull always).
  void head_manifest(const Digest& digest);

  // GET /v2/<repo>/blobs/<digest>, writing to fd (opened read-write, positioned at 0, empty).
  // Verifies size and digest while streaming; throws DigestMismatch (and leaves fd content
  // undefined) on bad bytes. Thread-safe: several blobs may be fetched concurrently from one
  // client.
  void fetch_blob(const Descriptor& blob, int fd, const ProgressFn& progress = {});

  // Same, into memory (configs), capped at max_bytes.
  std::string fetch_blob_bytes(const Descriptor& blob, size_t max_bytes);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace benchrun::oci
