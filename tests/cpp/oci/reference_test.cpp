// reference_test.cpp: reference grammar, Docker Hub normalisation, loopback hosts and transports.
#include "benchrun/oci/reference.hpp"

#include <gtest/gtest.h>

#include "benchrun/common/error.hpp"

using benchrun::ConfigError;
using benchrun::oci::ImageSource;
using benchrun::oci::parse_image_source;
using benchrun::oci::parse_reference;
using benchrun::oci::Reference;
using benchrun::oci::Transport;

namespace {

const std::string kHex(64, 'a');
const std::string kDigest = "sha256:" + kHex;

struct Case {
  std::string input;
  std::string registry;
  std::string repository;
  std::string tag;
  std::string digest;  // empty: none
  std::string str;
};

// Returns the ConfigError message for text, or "" if it parsed.
std::string error_of(const std::string& text) {
  try {
    parse_reference(text);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Reference, NormalisesTable) {
  const Case cases[] = {
      {"busybox", "docker.io", "library/busybox", "latest", "", "docker.io/library/busybox:latest"},
      {"busybox:1.36", "docker.io", "library/busybox", "1.36", "",
       "docker.io/library/busybox:1.36"},
      {"library/busybox", "docker.io", "library/busybox", "latest", "",
       "docker.io/library/busybox:latest"},
      {"docker.io/busybox", "docker.io", "library/busybox", "latest", "",
       "docker.io/library/busybox:latest"},
      {"index.docker.io/library/busybox", "docker.io", "library/busybox", "latest", "",
       "docker.io/library/busybox:latest"},
      {"index.docker.io/busybox", "docker.io", "library/busybox", "latest", "",
       "docker.io/library/busybox:latest"},
      {"myorg/app", "docker.io", "myorg/app", "latest", "", "docker.io/myorg/app:latest"},
      {"localhost/app", "localhost", "app", "latest", "", "localhost/app:latest"},
      {"localhost:5000/app:1", "localhost:5000", "app", "1", "", "localhost:5000/app:1"},
      {"example.com/a/b/c:tag", "example.com", "a/b/c", "tag", "", "example.com/a/b/c:tag"},
      {"[::1]:5000/x", "[::1]:5000", "x", "latest", "", "[::1]:5000/x:latest"},
      {"[::1]/x:v1", "[::1]", "x", "v1", "", "[::1]/x:v1"},
      {"127.0.0.1:5000/x@" + kDigest, "127.0.0.1:5000", "x", "", kDigest,
       "127.0.0.1:5000/x@" + kDigest},
      {"name:tag@" + kDigest, "docker.io", "library/name", "tag", kDigest,
       "docker.io/library/name@" + kDigest},
      {"ghcr.io/org/my-app_x.y__z---w:V_1.2-rc", "ghcr.io", "org/my-app_x.y__z---w", "V_1.2-rc", "",
       "ghcr.io/org/my-app_x.y__z---w:V_1.2-rc"},
      {"Registry.Example.com:443/a", "Registry.Example.com:443", "a", "latest", "",
       "Registry.Example.com:443/a:latest"},
      {"busybox:_underscore", "docker.io", "library/busybox", "_underscore", "",
       "docker.io/library/busybox:_underscore"},
      {"localhost:5000", "docker.io", "library/localhost", "5000", "",  // as docker parses it
       "docker.io/library/localhost:5000"},
      {"registry-1.docker.io/library/busybox", "registry-1.docker.io", "library/busybox", "latest",
       "", "registry-1.docker.io/library/busybox:latest"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.input);
    Reference r = parse_reference(c.input);
    EXPECT_EQ(r.registry, c.registry);
    EXPECT_EQ(r.repository, c.repository);
    EXPECT_EQ(r.tag, c.tag);
    EXPECT_EQ(r.digest ? r.digest->str() : "", c.digest);
    EXPECT_EQ(r.str(), c.str);
    // str() is a fixed point of the parser.
    EXPECT_EQ(parse_reference(r.str()).str(), r.str());
  }
}

TEST(Reference, DigestWinsOverTag) {
  Reference r = parse_reference("busybox:1.36@" + kDigest);
  EXPECT_EQ(r.manifest_ref(), kDigest);
  EXPECT_EQ(r.name(), "docker.io/library/busybox");
  EXPECT_EQ(r.tag, "1.36");  // kept for display, never asked for
  Reference t = parse_reference("busybox:1.36");
  EXPECT_EQ(t.manifest_ref(), "1.36");
  Reference d = parse_reference("busybox@sha512:" + std::string(128, '0'));
  EXPECT_TRUE(d.tag.empty()) << "no default tag when a digest is given";
}

TEST(Reference, RejectsBadInput) {
  const std::pair<std::string, std::string> cases[] = {
      {"Uppercase/Repo", "must be lowercase"},
      {"UPPER", "must be lowercase"},
      {"example.com/Foo", "must be lowercase"},
      {kHex, "image ID"},
      {"sha256:" + kHex, "bare digest"},
      {"", "empty reference"},
      {"a//b", "empty path component"},
      {"a/", "empty path component"},
      {"busybox:", "empty tag"},
      {"busybox:bad!tag", "invalid tag"},
      {"busybox:.dot", "invalid tag"},
      {"busybox:" + std::string(129, 't'), "invalid tag"},
      {"example.com/" + std::string(256, 'a'), "maximum 255"},
      {"busybox@sha256:abc", "invalid digest"},
      {"busybox@md5:" + kHex, "invalid digest"},
      {"busybox@", "empty digest"},
      {"@" + kDigest, "empty repository"},
      {":tag", "empty repository"},
      {"bad..name", "invalid path component"},
      {"a___b", "invalid path component"},
      {"-a", "invalid path component"},
      {"example.com:0/a", "invalid registry"},
      {"example.com:99999/a", "invalid registry"},
      {"example.com:http/a", "invalid registry"},
      {"ex_ample.com/a", "invalid registry host"},
      {"-x.com/a", "invalid registry host"},
      {"[::1/a", "invalid registry"},
      {"[zz::1]:5000/a", "invalid IPv6"},
      {"example.com/", "empty repository"},
      {"busy box", "whitespace"},
      {std::string("busy\x01box"), "control"},
  };
  for (const auto& [input, want] : cases) {
    std::string msg = error_of(input);
    EXPECT_NE(msg.find(want), std::string::npos) << "input '" << input << "' gave: " << msg;
    EXPECT_EQ(msg.rfind("invalid image reference '", 0), 0u) << msg;
  }
  // Just at the limit is fine.
  EXPECT_NO_THROW(parse_reference("example.com/" + std::string(255, 'a')));
}

TEST(Reference, ErrorMessagesAreBoundedAndPrintable) {
  std::string hostile = std::string(5000, 'A') + "\n\x1b[31m";
  std::string msg = error_of(hostile);
  EXPECT_LT(msg.size(), 400u);
  for (char c : msg) EXPECT_TRUE(c >= 0x20 && c < 0x7f) << int(c);
}

TEST(Reference, ApiHostAndLoopback) {
  EXPECT_EQ(parse_reference("busybox").api_host(), "registry-1.docker.io");
  EXPECT_EQ(parse_reference("ghcr.io/a/b").api_host(), "ghcr.io");
  EXPECT_EQ(parse_reference("localhost:5000/a").api_host(), "localhost:5000");

  for (const char* yes : {"localhost/a", "localhost:5000/a", "127.0.0.1/a", "127.0.0.1:5000/a",
                          "127.1.2.3:80/a", "[::1]/a", "[::1]:5000/a", "[0:0:0:0:0:0:0:1]:5000/a",
                          "[::ffff:127.0.0.1]:5000/a", "LOCALHOST:5000/a"})
    EXPECT_TRUE(parse_reference(yes).is_loopback()) << yes;
  for (const char* no :
       {"busybox", "example.com/a", "128.0.0.1/a", "10.0.0.1:5000/a", "localhost.example.com/a",
        "foo.localhost/a", "127.0.0.1.nip.io/a", "[::2]:5000/a"})
    EXPECT_FALSE(parse_reference(no).is_loopback()) << no;
}

TEST(ReferenceSource, Transports) {
  ImageSource s = parse_image_source("docker://busybox:1.36");
  EXPECT_EQ(s.transport, Transport::kDocker);
  EXPECT_EQ(s.reference.str(), "docker.io/library/busybox:1.36");
  EXPECT_EQ(s.str(), "docker://docker.io/library/busybox:1.36");

  s = parse_image_source("localhost:5000/app:1");  // bare reference
  EXPECT_EQ(s.transport, Transport::kDocker);
  EXPECT_EQ(s.reference.registry, "localhost:5000");

  s = parse_image_source("oci:/path/dir");
  EXPECT_EQ(s.transport, Transport::kOciLayout);
  EXPECT_EQ(s.path, "/path/dir");
  EXPECT_EQ(s.tag, "");
  EXPECT_EQ(s.str(), "oci:/path/dir");

  s = parse_image_source("oci:/path/dir:tag");
  EXPECT_EQ(s.path, "/path/dir");
  EXPECT_EQ(s.tag, "tag");
  EXPECT_EQ(s.str(), "oci:/path/dir:tag");

  s = parse_image_source("oci:relative:tag");
  EXPECT_EQ(s.path, "relative");
  EXPECT_EQ(s.tag, "tag");

  s = parse_image_source("oci:/mnt/a:b/dir");  // ':' inside the path
  EXPECT_EQ(s.path, "/mnt/a:b/dir");
  EXPECT_EQ(s.tag, "");

  s = parse_image_source("docker-archive:/x.tar");
  EXPECT_EQ(s.transport, Transport::kDockerArchive);
  EXPECT_EQ(s.path, "/x.tar");
  EXPECT_EQ(s.tag, "");
  EXPECT_EQ(s.str(), "docker-archive:/x.tar");

  s = parse_image_source("docker-archive:/x.tar:busybox:1.36");
  EXPECT_EQ(s.path, "/x.tar");
  EXPECT_EQ(s.tag, "docker.io/library/busybox:1.36");
  EXPECT_EQ(s.str(), "docker-archive:/x.tar:docker.io/library/busybox:1.36");
  EXPECT_EQ(parse_image_source(s.str()).tag, s.tag);

  s = parse_image_source("docker-archive:x.tar:@1");
  EXPECT_EQ(s.path, "x.tar");
  EXPECT_EQ(s.tag, "@1");
}

TEST(ReferenceSource, RejectsBadSources) {
  const std::pair<std::string, std::string> cases[] = {
      {"oci:", "missing OCI layout directory"},
      {"oci::tag", "missing OCI layout directory"},
      {"oci:/dir:bad!tag", "invalid tag"},
      {"oci:/dir:", "invalid tag"},
      {"docker-archive:", "missing archive path"},
      {"docker-archive:/x.tar:", "empty image selector"},
      {"docker-archive:/x.tar:@x", "invalid source index"},
      {"docker-archive:/x.tar:Bad/Ref", "must be lowercase"},
      {"docker://", "empty reference"},
      {"docker://Bad", "must be lowercase"},
      {"dir:/some/path", "unsupported transport 'dir'"},
      {"oci-archive:/x.tar", "unsupported transport 'oci-archive'"},
  };
  for (const auto& [input, want] : cases) {
    try {
      parse_image_source(input);
      ADD_FAILURE() << "accepted " << input;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos)
          << "input '" << input << "' gave: " << e.what();
    }
  }
  // A skopeo transport name that is also a valid image name stays an image.
  EXPECT_EQ(parse_image_source("dir:1.0").reference.str(), "docker.io/library/dir:1.0");
}
