// reference.cpp: docker-style reference parsing (distribution/reference grammar + Docker Hub
// normalisation, see oci-notes §1.1) and skopeo-style transport prefixes.
#include "benchrun/oci/reference.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <array>

#include "benchrun/common/error.hpp"
#include "benchrun/common/text.hpp"

namespace benchrun::oci {

namespace {

constexpr std::string_view kDockerHub = "docker.io";
constexpr std::string_view kDockerHubLegacy = "index.docker.io";
constexpr std::string_view kDockerHubApi = "registry-1.docker.io";
constexpr size_t kMaxPathLength = 255;
constexpr size_t kMaxTagLength = 128;

// Printable, bounded rendering of hostile text for error messages.
[[noreturn]] void fail(std::string_view text, const std::string& cause) {
  throw ConfigError("invalid image reference '" + printable(text) + "': " + cause);
}

bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool is_alnum(char c) { return is_lower_alnum(c) || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_lower_hex(std::string_view s) {
  for (char c : s)
    if (!is_digit(c) && !(c >= 'a' && c <= 'f')) return false;
  return true;
}

// One path component: [a-z0-9]+ ((\.|_|__|-+) [a-z0-9]+)*
bool valid_path_component(std::string_view c) {
  if (c.empty() || !is_lower_alnum(c.front()) || !is_lower_alnum(c.back())) return false;
  size_t i = 0;
  while (i < c.size()) {
    if (is_lower_alnum(c[i])) {
      ++i;
      continue;
    }
    size_t start = i;
    while (i < c.size() && !is_lower_alnum(c[i])) ++i;
    std::string_view sep = c.substr(start, i - start);
    bool dashes = sep.find_first_not_of('-') == std::string_view::npos;
    if (!(sep == "." || sep == "_" || sep == "__" || dashes)) return false;
  }
  return true;
}

// One DNS label of a registry host: [A-Za-z0-9] ([A-Za-z0-9-]* [A-Za-z0-9])?
bool valid_host_label(std::string_view l) {
  if (l.empty() || !is_alnum(l.front()) || !is_alnum(l.back())) return false;
  for (char c : l)
    if (!is_alnum(c) && c != '-') return false;
  return true;
}

bool valid_port(std::string_view p) {
  if (p.empty() || p.size() > 5) return false;
  unsigned v = 0;
  for (char c : p) {
    if (!is_digit(c)) return false;
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  return v >= 1 && v <= 65535;
}

// Splits "host[:port]" / "[v6][:port]" into host and port; returns false if malformed.
bool split_host_port(std::string_view domain, std::string_view& host, std::string_view& port) {
  port = {};
  if (!domain.empty() && domain.front() == '[') {
    size_t close = domain.find(']');
    if (close == std::string_view::npos) return false;
    host = domain.substr(0, close + 1);
    std::string_view rest = domain.substr(close + 1);
    if (rest.empty()) return true;
    if (rest.front() != ':') return false;
    port = rest.substr(1);
    return valid_port(port);
  }
  size_t colon = domain.find(':');
  host = domain.substr(0, colon);
  if (colon != std::string_view::npos) {
    port = domain.substr(colon + 1);
    if (!valid_port(port)) return false;
  }
  return true;
}

bool valid_ipv6_literal(std::string_view bracketed, in6_addr* out = nullptr) {
  if (bracketed.size() < 3 || bracketed.front() != '[' || bracketed.back() != ']') return false;
  std::string inner(bracketed.substr(1, bracketed.size() - 2));
  in6_addr addr{};
  if (inet_pton(AF_INET6, inner.c_str(), &addr) != 1) return false;
  if (out) *out = addr;
  return true;
}

void validate_domain(std::string_view text, std::string_view domain) {
  std::string_view host;
  std::string_view port;
  if (!split_host_port(domain, host, port))
    fail(text, "invalid registry '" + printable(domain) +
                   "' (expected host[:port] with a port in 1-65535, or [ipv6][:port])");
  if (host.front() == '[') {
    if (!valid_ipv6_literal(host))
      fail(text, "invalid IPv6 registry address '" + printable(host) + "'");
    return;
  }
  size_t start = 0;
  for (;;) {
    size_t dot = host.find('.', start);
    std::string_view label = host.substr(start, dot == std::string_view::npos ? dot : dot - start);
    if (!valid_host_label(label))
      fail(text, "invalid registry host '" + printable(host) +
                     "' (letters, digits and '-' in dot-separated labels)");
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
}

bool valid_tag(std::string_view t) {
  if (t.empty() || t.size() > kMaxTagLength) return false;
  if (!is_alnum(t.front()) && t.front() != '_') return false;
  for (char c : t)
    if (!is_alnum(c) && c != '_' && c != '.' && c != '-') return false;
  return true;
}

void validate_path(std::string_view text, std::string_view path) {
  if (path.empty()) fail(text, "empty repository name");
  for (char c : path)
    if (c >= 'A' && c <= 'Z') fail(text, "repository name must be lowercase");
  if (path.size() > kMaxPathLength)
    fail(text, "repository path is " + std::to_string(path.size()) + " characters (maximum " +
                   std::to_string(kMaxPathLength) + ")");
  size_t start = 0;
  for (;;) {
    size_t slash = path.find('/', start);
    std::string_view comp =
        path.substr(start, slash == std::string_view::npos ? slash : slash - start);
    if (comp.empty()) fail(text, "empty path component (check for '//' or a leading/trailing '/')");
    if (!valid_path_component(comp))
      fail(text, "invalid path component '" + printable(comp) +
                     "' (lowercase letters and digits, separated by '.', '_', '__' or '-')");
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
}

// A first path component names a registry only if it looks like a host (distribution/reference
// splitDockerDomain, minus its uppercase rule: "Foo/bar" is a lowercase error here, not a host).
bool looks_like_domain(std::string_view first) {
  return first.find('.') != std::string_view::npos || first.find(':') != std::string_view::npos ||
         first == "localhost" || (!first.empty() && first.front() == '[');
}

bool is_loopback_host(std::string_view host) {
  // DNS names are case-insensitive: "LOCALHOST:5000/x" is loopback too.
  constexpr std::string_view kLocalhost = "localhost";
  if (std::equal(host.begin(), host.end(), kLocalhost.begin(), kLocalhost.end(),
                 [](char a, char b) { return (a >= 'A' && a <= 'Z' ? a - 'A' + 'a' : a) == b; }))
    return true;
  if (!host.empty() && host.front() == '[') {
    in6_addr a{};
    if (!valid_ipv6_literal(host, &a)) return false;
    if (IN6_IS_ADDR_LOOPBACK(&a)) return true;
    return IN6_IS_ADDR_V4MAPPED(&a) && a.s6_addr[12] == 127;
  }
  in_addr v4{};
  std::string h(host);
  if (inet_pton(AF_INET, h.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  return false;
}

// Transports of skopeo that we recognise only to explain that they are unsupported.
constexpr std::array<std::string_view, 6> kUnsupportedTransports = {
    "dir:", "containers-storage:", "docker-daemon:", "oci-archive:", "ostree:", "sif:"};

[[noreturn]] void fail_source(std::string_view text, const std::string& cause) {
  throw ConfigError("invalid image source '" + printable(text) + "': " + cause);
}

}  // namespace

std::string Reference::name() const { return registry + "/" + repository; }

std::string Reference::str() const {
  if (digest) return name() + "@" + digest->str();
  if (!tag.empty()) return name() + ":" + tag;
  return name();
}

std::string Reference::manifest_ref() const { return digest ? digest->str() : tag; }

std::string Reference::api_host() const {
  if (registry == kDockerHub) return std::string(kDockerHubApi);
  return registry;
}

bool Reference::is_loopback() const {
  std::string_view host;
  std::string_view port;
  if (!split_host_port(registry, host, port)) return false;
  return is_loopback_host(host);
}

Reference parse_reference(std::string_view text) {
  if (text.empty()) fail(text, "empty reference");
  for (char c : text)
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f)
      fail(text, "contains whitespace or control characters");

  Reference ref;
  std::string_view name_tag = text;
  size_t at = text.find('@');
  if (at != std::string_view::npos) {
    std::string_view d = text.substr(at + 1);
    name_tag = text.substr(0, at);
    if (d.empty()) fail(text, "empty digest after '@'");
    if (!Digest::valid(d))
      fail(text, "invalid digest '" + printable(d) +
                     "' (expected sha256:<64 lowercase hex> or sha512:<128 lowercase hex>)");
    ref.digest = Digest::parse(d);
  }

  // A tag is a ':' after the last '/', so "localhost:5000/app" has none.
  std::string_view name = name_tag;
  size_t last_slash = name_tag.rfind('/');
  size_t colon = name_tag.rfind(':');
  if (colon != std::string_view::npos &&
      (last_slash == std::string_view::npos || colon > last_slash)) {
    name = name_tag.substr(0, colon);
    std::string_view tag = name_tag.substr(colon + 1);
    if (tag.empty()) fail(text, "empty tag after ':'");
    if (!valid_tag(tag))
      fail(text, "invalid tag '" + printable(tag) +
                     "' (up to 128 of [A-Za-z0-9_.-], not starting with '.' or '-')");
    ref.tag = std::string(tag);
  }
  if (name.empty()) fail(text, "empty repository name");

  std::string_view path = name;
  size_t first_slash = name.find('/');
  if (first_slash != std::string_view::npos && looks_like_domain(name.substr(0, first_slash))) {
    std::string_view domain = name.substr(0, first_slash);
    validate_domain(text, domain);
    ref.registry = std::string(domain);
    path = name.substr(first_slash + 1);
    if (ref.registry == kDockerHubLegacy) ref.registry = std::string(kDockerHub);
  } else {
    ref.registry = std::string(kDockerHub);
    if (name.size() == 64 && is_lower_hex(name))
      fail(text,
           "a 64-hex string is an image ID, not a repository name "
           "(to pin content use NAME@sha256:<hex>)");
    if ((name == "sha256" && ref.tag.size() == 64 && is_lower_hex(ref.tag)) ||
        (name == "sha512" && ref.tag.size() == 128 && is_lower_hex(ref.tag)))
      fail(text, "a bare digest is not a reference (use NAME@" + std::string(name) + ":<hex>)");
  }
  validate_path(text, path);
  ref.repository = std::string(path);
  if (ref.registry == kDockerHub && path.find('/') == std::string_view::npos)
    ref.repository = "library/" + ref.repository;
  if (ref.tag.empty() && !ref.digest) ref.tag = "latest";
  return ref;
}

std::string ImageSource::str() const {
  switch (transport) {
    case Transport::kDocker:
      return "docker://" + reference.str();
    case Transport::kOciLayout:
      return "oci:" + path + (tag.empty() ? "" : ":" + tag);
    case Transport::kDockerArchive:
      return "docker-archive:" + path + (tag.empty() ? "" : ":" + tag);
  }
  return {};
}

ImageSource parse_image_source(std::string_view text) {
  ImageSource src;
  constexpr std::string_view kDockerPrefix = "docker://";
  constexpr std::string_view kOciPrefix = "oci:";
  constexpr std::string_view kArchivePrefix = "docker-archive:";

  if (text.starts_with(kDockerPrefix)) {
    src.reference = parse_reference(text.substr(kDockerPrefix.size()));
    return src;
  }

  if (text.starts_with(kOciPrefix)) {
    // oci:PATH[:TAG] - the last ':' starts a tag only if no '/' follows it, so "oci:/a:b/dir"
    // is a path. A ref name containing '/' cannot be selected this way.
    src.transport = Transport::kOciLayout;
    std::string_view rest = text.substr(kOciPrefix.size());
    size_t colon = rest.rfind(':');
    if (colon != std::string_view::npos && rest.find('/', colon + 1) == std::string_view::npos) {
      std::string_view tag = rest.substr(colon + 1);
      if (!valid_tag(tag))
        fail_source(text, "invalid tag '" + printable(tag) +
                              "' after the last ':' (up to 128 of [A-Za-z0-9_.-]; a path "
                              "containing ':' needs a '/' after it)");
      src.tag = std::string(tag);
      rest = rest.substr(0, colon);
    }
    if (rest.empty()) fail_source(text, "missing OCI layout directory (oci:PATH[:TAG])");
    src.path = std::string(rest);
    return src;
  }

  if (text.starts_with(kArchivePrefix)) {
    // docker-archive:PATH[:REF] as in skopeo: split at the first ':'. REF picks one image of a
    // multi-image archive, either a reference (stored normalised) or "@N" (the N-th image).
    src.transport = Transport::kDockerArchive;
    std::string_view rest = text.substr(kArchivePrefix.size());
    size_t colon = rest.find(':');
    std::string_view path = rest.substr(0, colon);
    if (path.empty()) fail_source(text, "missing archive path (docker-archive:PATH[:REF])");
    src.path = std::string(path);
    if (colon != std::string_view::npos) {
      std::string_view sel = rest.substr(colon + 1);
      if (sel.empty()) fail_source(text, "empty image selector after ':'");
      if (sel.front() == '@') {
        std::string_view n = sel.substr(1);
        if (n.empty() || n.size() > 9 ||
            n.find_first_not_of("0123456789") != std::string_view::npos)
          fail_source(text, "invalid source index '" + printable(sel) + "' (expected @N)");
        src.tag = std::string(sel);
      } else {
        src.tag = parse_reference(sel).str();
      }
    }
    return src;
  }

  try {
    src.reference = parse_reference(text);
  } catch (const ConfigError&) {
    for (std::string_view t : kUnsupportedTransports)
      if (text.starts_with(t))
        fail_source(text, "unsupported transport '" + std::string(t.substr(0, t.size() - 1)) +
                              "' (supported: docker://REF, oci:PATH[:TAG], docker-archive:PATH)");
    throw;
  }
  return src;
}

}  // namespace benchrun::oci
