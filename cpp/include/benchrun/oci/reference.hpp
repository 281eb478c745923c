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

// Parses a docker-style reference. Throws ConfigError with the reason for bad input.
Reference parse_reference(std::string_view text);

enum class Transport { kDocker, kOciLayout, kDockerArchive };

// Where an image comes from: skopeo's transports. "docker://REF" (or a bare REF), "oci:PATH[:TAG]",
// "docker-archive:PATH".
struct ImageSource {
  Transport transport = Transport::kDocker;
  Reference reference;  // for kDocker
  std::string path;     // for kOciLayout / kDockerArchive
  std::string tag;      // for kOciLayout: ref name in index.json (empty: the only image)
  std::string str() const;
};

ImageSource parse_image_source(std::string_view text);

}  // namespace benchrun::oci
