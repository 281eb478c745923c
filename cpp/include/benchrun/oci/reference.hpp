// reference.hpp: image references (docker-style names, Docker Hub normalisation) and transports.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "benchrun/oci/digest.hpp"

namespace benchrun::oci {

// A registry image reference, normalised: "busybox" -> docker.io/library/busybox:latest.
struct Reference {
  std::string registry;    // "docker.io", "localhost:5000", "[::1]:5000"
  std::string repository;  // "library/busybox"
  std::string tag;         // empty when only a digest was given
  std::optional<Digest> digest;

  // "docker.io/library/busybox:latest" or ".../busybox@sha256:..." (digest wins over tag).
  std::string str() const;
  // Repository path without tag/digest: "docker.io/library/busybox".
  std::string name() const;
  // The tag or digest to ask the registry for (digest wins).
  std::string manifest_ref() const;
  // Host to talk to: docker.io -> registry-1.docker.io.
  std::string api_host() const;
  // True for localhost, 127.0.0.0/8 and ::1 hosts (plain HTTP allowed automatically).
  bool is_loopback() const;
};

// Parses a docker-style reference. Throws ConfigError with the reason for bad input. The first
// component is a registry only if it contains '.' or ':', is "localhost" or an [IPv6] literal;
// index.docker.io becomes docker.io; the repository path (as typed, before "library/" is added)
// is at most 255 characters; the tag defaults to "latest" only when no digest is given.
Reference parse_reference(std::string_view text);

enum class Transport { kDocker, kOciLayout, kDockerArchive };

// Where an image comes from: skopeo's transports. "docker://REF" (or a bare REF), "oci:PATH[:TAG]",
// "docker-archive:PATH[:REF|:@N]".
struct ImageSource {
  Transport transport = Transport::kDocker;
  Reference reference;  // for kDocker
  std::string path;     // for kOciLayout / kDockerArchive (as given; not made absolute)
  // kOciLayout: ref name in index.json (org.opencontainers.image.ref.name; empty: the only image).
  // kDockerArchive: which image of a multi-image archive, either a normalised reference
  // ("docker.io/library/busybox:latest", matched against RepoTags) or "@N" (the N-th image,
  // 0-based, as skopeo's source index); empty: the only image.
  std::string tag;
  // Renders back in transport form: "docker://docker.io/library/busybox:latest", "oci:/d:tag".
  std::string str() const;
};

// Parses a transport-prefixed source; text without a known prefix is a docker reference (so
// "oci:x" is always the OCI layout "x"; write "docker://oci:x" for an image named oci).
//  - oci:PATH[:TAG]: the last ':' starts a tag only when no '/' follows it ("oci:/a:b/dir" is a
//    path); the tag must match the tag grammar.
//  - docker-archive:PATH[:REF]: split at the first ':' like skopeo, so PATH cannot contain ':'.
// Throws ConfigError naming the input; unsupported skopeo transports (dir:, oci-archive:, ...) are
// reported as such when the text is not also a valid reference.
ImageSource parse_image_source(std::string_view text);

}  // namespace benchrun::oci
