// registry_client_test.cpp: the registry client against an in-process HTTP server (auth, manifests,
// blobs, redirects, resume, retries).
#include "benchrun/oci/registry_client.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "benchrun/common/error.hpp"
#include "benchrun/common/unique_fd.hpp"
#include "support/http_test_server.hpp"

namespace {

using benchrun::AuthError;
using benchrun::ConfigError;
using benchrun::DigestMismatch;
using benchrun::ImageError;
using benchrun::RegistryError;
using benchrun::UniqueFd;
using benchrun::oci::Credentials;
using benchrun::oci::Descriptor;
using benchrun::oci::digest_of;
using benchrun::oci::kMaxManifestSize;
using benchrun::oci::Reference;
using benchrun::oci::RegistryClient;
using benchrun::oci::RegistryOptions;
using benchrun::test::HttpTestRequest;
using benchrun::test::HttpTestResponse;
using benchrun::test::HttpTestServer;

constexpr const char* kRepo = "library/app";
constexpr const char* kOciManifestType = "application/vnd.oci.image.manifest.v1+json";

// Small backoff so retry tests stay fast.
RegistryOptions fast_options() {
  RegistryOptions o;
  o.max_attempts = 3;
  o.backoff_initial_ms = 1;
  o.backoff_max_ms = 20;
  o.connect_timeout_s = 5;
  o.low_speed_timeout_s = 5;
  return o;
}

Reference ref_at(const std::string& authority) {
  Reference r;
  r.registry = authority;
  r.repository = kRepo;
  r.tag = "latest";
  return r;
}

Descriptor descriptor_of(const std::string& content) {
  Descriptor d;
  d.media_type = "application/vnd.oci.image.layer.v1.tar+gzip";
  d.digest = digest_of(content);
  d.size = static_cast<int64_t>(content.size());
  return d;
}

std::string blob_path(const Descriptor& d) {
  return std::string("/v2/") + kRepo + "/blobs/" + d.digest.str();
}
std::string manifest_path(const std::string& ref) {
  return std::string("/v2/") + kRepo + "/manifests/" + ref;
}

// Deterministic, non-repeating-looking content of n bytes.
std::string make_content(size_t n, char seed = 1) {
  std::string s(n, '\0');
  uint32_t x = 2463534242u + static_cast<uint32_t>(seed);
  for (auto& c : s) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c = static_cast<char>(x);
  }
  return s;
}

std::string manifest_body() {
  std::string config = std::string("sha256:") + std::string(64, 'a');
  std::string layer = std::string("sha256:") + std::string(64, 'b');
  return std::string(R"({"schemaVersion":2,"mediaType":")") + kOciManifestType +
         R"(","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" +
         config +
         R"(","size":100},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":")" +
         layer + R"(","size":200}]})";
}

HttpTestResponse manifest_response(const std::string& body = manifest_body()) {
  return {200, {{"Content-Type", std::string(kOciManifestType) + "; charset=utf-8"}}, body};
}

UniqueFd temp_fd() {
  UniqueFd fd(::memfd_create("blob", MFD_CLOEXEC));
  if (!fd) throw std::runtime_error("memfd_create failed");
  return fd;
}

std::string read_all(int fd) {
  std::string out;
  char buf[1 << 16];
  off_t off = 0;
  for (;;) {
    ssize_t n = ::pread(fd, buf, sizeof buf, off);
    if (n <= 0) return out;
    out.append(buf, static_cast<size_t>(n));
    off += n;
  }
}

std::string url_decode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += s[i] == '+' ? ' ' : s[i];
    }
  }
  return out;
}

// The decoded value of name in a query string or form body ("" when absent).
std::string form_value(const std::string& text, const std::string& name) {
  std::string q = text.substr(text.find('?') == std::string::npos ? 0 : text.find('?') + 1);
  size_t pos = 0;
  while (pos <= q.size()) {
    size_t amp = q.find('&', pos);
    std::string kv = q.substr(pos, amp == std::string::npos ? std::string::npos : amp - pos);
    size_t eq = kv.find('=');
    if (kv.substr(0, eq) == name)
      return eq == std::string::npos ? "" : url_decode(kv.substr(eq + 1));
    if (amp == std::string::npos) break;
    pos = amp + 1;
  }
  return "";
}

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.rfind(prefix, 0) == 0;
}

HttpTestResponse unauthorized(const std::string& challenge) {
  return {401,
          {{"WWW-Authenticate", challenge}, {"Content-Type", "application/json"}},
          R"({"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]})"};
}

// ---------------------------------------------------------------------------------------------
// Scheme selection

TEST(RegistryClient, ChoosesHttpsUnlessLoopbackOrInsecure) {
  auto url_for = [](const std::string& registry, std::vector<std::string> insecure = {}) {
    RegistryOptions o;
    o.insecure_registries = std::move(insecure);
    return RegistryClient(ref_at(registry), o).base_url();
  };
  EXPECT_EQ(url_for("registry.example.com"), "https://registry.example.com");
  EXPECT_EQ(url_for("docker.io"), "https://registry-1.docker.io");
  EXPECT_EQ(url_for("localhost:5000"), "http://localhost:5000");
  EXPECT_EQ(url_for("127.0.0.1:5000"), "http://127.0.0.1:5000");
  EXPECT_EQ(url_for("[::1]:5000"), "http://[::1]:5000");
  EXPECT_EQ(url_for("10.0.0.5:5000"), "https://10.0.0.5:5000");
  EXPECT_EQ(url_for("10.0.0.5:5000", {"10.0.0.5:5000"}), "http://10.0.0.5:5000");
}

TEST(RegistryClient, NotAnOciRegistry) {
  HttpTestServer srv([](const HttpTestRequest&) { return HttpTestResponse{404, {}, "nope"}; });
  RegistryClient client(ref_at(srv.authority()), fast_options());
  try {
    client.get_manifest("latest");
    FAIL() << "expected RegistryError";
  } catch (const RegistryError& e) {
    EXPECT_EQ(e.http_status(), 404);
    EXPECT_NE(std::string(e.what()).find("not an OCI registry"), std::string::npos) << e.what();
  }
  EXPECT_EQ(srv.count("/v2/"), 1u);  // the ping only
}

TEST(RegistryClient, RejectsBadTagsAndDigestsBeforeAsking) {
  HttpTestServer srv([](const HttpTestRequest&) { return HttpTestResponse{200, {}, ""}; });
  RegistryClient client(ref_at(srv.authority()), fast_options());
  EXPECT_THROW(client.get_manifest("../../etc"), ConfigError);
  EXPECT_THROW(client.get_manifest("sha256:xyz"), ImageError);
  EXPECT_EQ(srv.requests().size(), 0u);
}

// A non-loopback IPv4 address of this machine ("" if none): a test server bound there is "remote"
// to the client (https by default, no credentials over plain HTTP) yet reachable.
std::string local_non_loopback_ipv4() {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return "";
  std::string found;
  for (ifaddrs* i = list; i && found.empty(); i = i->ifa_next) {
    if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || (i->ifa_flags & IFF_LOOPBACK))
      continue;
    char buf[INET_ADDRSTRLEN];
    auto* sin = reinterpret_cast<sockaddr_in*>(i->ifa_addr);
    if (::inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof buf)) found = buf;
  }
  ::freeifaddrs(list);
  return found;
}

TEST(RegistryClient, HttpsToPlainHttpServerGivesHint) {
  const std::string ip = local_non_loopback_ipv4();
  if (ip.empty()) GTEST_SKIP() << "no non-loopback IPv4 address on this machine";
  HttpTestServer srv([](const HttpTestRequest&) { return HttpTestResponse{200, {}, "{}"}; }, ip);
  Reference ref = ref_at(srv.authority());
  RegistryClient client(ref, fast_options());
  ASSERT_EQ(client.base_url(), "https://" + ref.registry);
  try {
    client.get_manifest("latest");
    FAIL() << "expected RegistryError";
  } catch (const RegistryError& e) {
    EXPECT_EQ(e.http_status(), 0);
    EXPECT_NE(std::string(e.what()).find("(hint: plain-HTTP registries need --insecure-registry " +
                                         ref.registry + ")"),
              std::string::npos)
        << e.what();
  }
}

TEST(RegistryAuth, NoCredentialsOverPlainHttpToNonLoopbackHost) {
  const std::string ip = local_non_loopback_ipv4();
  if (ip.empty()) GTEST_SKIP() << "no non-loopback IPv4 address on this machine";
  HttpTestServer srv(
      [](const HttpTestRequest& r) {
        if (r.has_header("authorization")) return HttpTestResponse{200, {}, "{}"};
        return unauthorized("Basic realm=\"test\"");
      },
      ip);
  Reference ref = ref_at(srv.authority());
  RegistryOptions o = fast_options();
  o.insecure_registries = {ref.registry};
  o.credentials = Credentials{"user", "secret", "", ""};
  RegistryClient client(ref, o);
  ASSERT_EQ(client.base_url(), "http://" + ref.registry);
  try {
    client.get_manifest("latest");
    FAIL() << "expected AuthError";
  } catch (const AuthError& e) {
    EXPECT_NE(std::string(e.what()).find("refusing to send credentials"), std::string::npos)
        << e.what();
  }
  for (const auto& r : srv.requests()) EXPECT_FALSE(r.has_header("authorization")) << r.path;
}

// ---------------------------------------------------------------------------------------------
// Authentication

TEST(RegistryAuth, AnonymousBearerFlowCachesToken) {
  const std::string blob = make_content(1000);
  const Descriptor desc = descriptor_of(blob);
  std::atomic<uint16_t> port{0};
  HttpTestServer srv([&](const HttpTestRequest& r) {
    const std::string challenge = "Bearer realm=\"http://127.0.0.1:" + std::to_string(port) +
                                  "/token\",service=\"test-registry\"";
    if (starts_with(r.path, "/token"))
      return HttpTestResponse{200, {}, R"({"token":"tok-1","expires_in":300})"};
    if (r.header("authorization") != "Bearer tok-1") return unauthorized(challenge);
    if (r.path == "/v2/") return HttpTestResponse{200, {}, "{}"};
    if (r.path == manifest_path("latest")) return manifest_response();
    if (r.path == blob_path(desc)) return HttpTestResponse{200, {}, blob};
    return HttpTestResponse{404, {}, ""};
  });
  port = srv.port();
  RegistryClient client(ref_at(srv.authority()), fast_options());
  client.get_manifest("latest");
  UniqueFd fd = temp_fd();
  client.fetch_blob(desc, fd.get());
  EXPECT_EQ(read_all(fd.get()), blob);

  ASSERT_EQ(srv.count("/token"), 1u);
  for (const auto& r : srv.requests()) {
    if (starts_with(r.path, "/token")) {
      EXPECT_EQ(form_value(r.path, "scope"), "repository:library/app:pull");
      EXPECT_EQ(form_value(r.path, "service"), "test-registry");
      EXPECT_FALSE(r.has_header("authorization"));  // anonymous
    } else if (r.path != "/v2/") {
      EXPECT_EQ(r.header("authorization"), "Bearer tok-1") << r.path;
    }
  }
}

TEST(RegistryAuth, CredentialedBearerUsesChallengeScopeVerbatim) {
  // The scope names a repository on host:port: it must reach the token server unsplit.
  const std::string scope = "repository:mirror.local:5000/library/app:pull";
  std::atomic<uint16_t> port{0};
  HttpTestServer srv([&](const HttpTestRequest& r) {
    if (r.path == "/v2/") return HttpTestResponse{200, {}, "{}"};  // anonymous ping, auth later
    if (starts_with(r.path, "/auth/token")) {
      if (r.header("authorization") != "Basic dXNlcjpzZWNyZXQ=")  // user:secret
        return HttpTestResponse{401, {}, R"({"details":"incorrect username or password"})"};
      return HttpTestResponse{200, {}, R"({"access_token":"tok-2"})"};
    }
    if (r.header("authorization") != "Bearer tok-2")
      return unauthorized("Bearer realm=\"http://127.0.0.1:" + std::to_string(port) +
                          "/auth/token?client=x\",service=\"svc\",scope=\"" + scope + "\"");
    return manifest_response();
  });
  port = srv.port();
  RegistryOptions o = fast_options();
  o.credentials = Credentials{"user", "secret", "", ""};
  RegistryClient client(ref_at(srv.authority()), o);
  client.get_manifest("latest");
  ASSERT_EQ(srv.count("/auth/token"), 1u);
  for (const auto& r : srv.requests())
    if (starts_with(r.path, "/auth/token")) {
      EXPECT_EQ(form_value(r.path, "scope"), scope);
      EXPECT_EQ(form_value(r.path, "client"), "x");  // the realm's own query is kept
    }
}

TEST(RegistryAuth, BasicChallengeSendsBasicOnEveryRequest) {
  const std::string blob = make_content(100);
  const Descriptor desc = descriptor_of(blob);
  HttpTestServer srv([&](const HttpTestRequest& r) {
    if (r.header("authorization") != "Basic dXNlcjpzZWNyZXQ=")
      return unauthorized("Basic realm=\"test\"");
    if (r.path == "/v2/") return HttpTestResponse{200, {}, "{}"};
    if (r.path == manifest_path("latest")) return manifest_response();
    if (r.path == blob_path(desc)) return HttpTestResponse{200, {}, blob};
    return HttpTestResponse{404, {}, ""};
  });
  RegistryOptions o = fast_options();
  o.credentials = Credentials{"user", "secret", "", ""};
  RegistryClient client(ref_at(srv.authority()), o);
  client.get_manifest("latest");
  EXPECT_EQ(client.fetch_blob_bytes(desc, 1000), blob);
  auto reqs = srv.requests();
  ASSERT_EQ(reqs.size(), 3u);  // ping (anonymous), manifest, blob
  EXPECT_FALSE(reqs[0].has_header("authorization"));
  EXPECT_EQ(reqs[1].header("authorization"), "Basic dXNlcjpzZWNyZXQ=");
  EXPECT_EQ(reqs[2].header("authorization"), "Basic dXNlcjpzZWNyZXQ=");
}

TEST(RegistryAuth, WrongBasicCredentialsRaiseAuthError) {
  HttpTestServer srv([&](const HttpTestRequest&) { return unauthorized("Basic realm=\"test\""); });
  RegistryOptions o = fast_options();
  o.credentials = Credentials{"user", "wrong", "", ""};
  RegistryClient client(ref_at(srv.authority()), o);
  try {
    client.get_manifest("latest");
    FAIL() << "expected AuthError";
  } catch (const AuthError& e) {
    EXPECT_EQ(e.http_status(), 401);
    EXPECT_NE(std::string(e.what()).find("authentication required"), std::string::npos) << e.what();
  }
  EXPECT_EQ(srv.count(manifest_path("latest")), 1u);  // no retry loop on a refused password
}

TEST(RegistryAuth, TokenEndpointRefusalIsAuthErrorWithMessage) {
  std::atomic<uint16_t> port{0};
  HttpTestServer srv([&](const HttpTestRequest& r) {
    if (starts_with(r.path, "/token"))
      return HttpTestResponse{401, {}, R"({"details":"incorrect username or password"})"};
    return unauthorized("Bearer realm=\"http://127.0.0.1:" + std::to_string(port) + "/token\"");
  });
  port = srv.port();
  RegistryOptions o = fast_options();
  o.credentials = Credentials{"user", "wrong", "", ""};
  RegistryClient client(ref_at(srv.authority()), o);
  try {
    client.get_manifest("latest");
    FAIL() << "expected AuthError";
  } catch (const AuthError& e) {
    EXPECT_EQ(e.http_status(), 401);
    EXPECT_NE(std::string(e.what()).find("incorrect username or password"), std::string::npos)
        << e.what();
  }
}

TEST(RegistryAuth, ForbiddenAfterAuthenticatingIsAuthError) {
  std::atomic<uint16_t> port{0};
  HttpTestServer srv([&](const HttpTestRequest& r) {
    if (starts_with(r.path, "/token")) return HttpTestResponse{200, {}, R"({"token":"t"})"};
    if (r.header("authorization") != "Bearer t")
      return unauthorized("Bearer realm=\"http://127.0.0.1:" + std::to_string(port) + "/token\"");
    if (r.path == "/v2/") return HttpTestResponse{200, {}, "{}"};
    return HttpTestResponse{
        403,
        {{"Content-Type", "application/json"}},
        R"({"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]})"};
  });
  port = srv.port();
  RegistryClient client(ref_at(srv.authority()), fast_options());
  try {
    client.get_manifest("latest");
    FAIL() << "expected AuthError";
  } catch (const AuthError& e) {
    EXPECT_EQ(e.http_status(), 403);
    const std::string msg = e.what();
    EXPECT_NE(msg.find("DENIED: requested access to the resource is denied"), std::string::npos)
        << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos);
  }
  EXPECT_EQ(srv.count(manifest_path("latest")), 1u);
}

TEST(RegistryAuth, RefreshesARejectedCachedTokenOnce) {
  std::atomic<uint16_t> port{0};
  std::atomic<int> tokens_issued{0};
  std::atomic<bool> revoked{false};
  HttpTestServer srv([&](const HttpTestRequest& r) {
    if (starts_with(r.path, "/token")) {
      int n = ++tokens_issued;
      return HttpTestResponse{
          200, {}, R"({"token":"tok-)" + std::to_string(n) + R"(","expires_in":3600})"};
    }
    const std::string auth = r.header("authorization");
    const bool valid = auth == "Bearer tok-2" || (auth == "Bearer tok-1" && !revoked);
    if (!valid)
      return unauthorized("Bearer realm=\"http://127.0.0.1:" + std::to_string(port) + "/token\"");
    if (r.path == "/v2/") return HttpTestResponse{200, {}, "{}"};
    return manifest_response();
  });
  port = srv.port();
  RegistryClient client(ref_at(srv.authority()), fast_options());
  client.get_manifest("latest");
  EXPECT_EQ(tokens_issued, 1);
  revoked = true;
  client.get_manifest("latest");  // cached tok-1 refused -> one refresh -> tok-2
  EXPECT_EQ(tokens_issued, 2);
  EXPECT_EQ(srv.count(manifest_path("latest")), 3u);
}

TEST(RegistryAuth, IdentityTokenUsesOAuth2RefreshGrant) {
  std::atomic<uint16_t> port{0};
  HttpTestServer srv([&](const HttpTestRequest& r) {
    if (starts_with(r.path, "/oauth")) {
      if (r.method != "POST" || form_value(r.body, "grant_type") != "refresh_token" ||
          form_value(r.body, "refresh_token") != "refresh-me")
        return HttpTestResponse{400, {}, R"({"error":"invalid_request"})"};
      return HttpTestResponse{200, {}, R"({"access_token":"oauth-tok","expires_in":60})"};
    }
    if (r.header("authorization") != "Bearer oauth-tok")
      return unauthorized("Bearer realm=\"http://127.0.0.1:" + std::to_string(port) +
                          "/oauth\",service=\"svc\"");
    if (r.path == "/v2/") return HttpTestResponse{200, {}, "{}"};
    return manifest_response();
  });
  port = srv.port();
  RegistryOptions o = fast_options();
  o.credentials = Credentials{"", "", "refresh-me", ""};
  RegistryClient client(ref_at(srv.authority()), o);
  client.get_manifest("latest");
  ASSERT_EQ(srv.count("/oauth"), 1u);
  for (const auto& r : srv.requests())
    if (starts_with(r.path, "/oauth")) {
      EXPECT_EQ(form_value(r.body, "scope"), "repository:library/app:pull");
      EXPECT_EQ(form_value(r.body, "service"), "svc");
    }
}

TEST(RegistryAuth, RegistryTokenIsSentAsBearerDirectly) {
  HttpTestServer srv([&](const HttpTestRequest& r) {
    if (r.header("authorization") != "Bearer fixed")
      return unauthorized("Bearer realm=\"http://127.0.0.1:1/token\"");
    return r.path == "/v2/" ? HttpTestResponse{200, {}, "{}"} : manifest_response();
  });
  RegistryOptions o = fast_options();
  o.credentials = Credentials{"", "", "", "fixed"};
  RegistryClient client(ref_at(srv.authority()), o);
  client.get_manifest("latest");
  EXPECT_EQ(srv.count("/token"), 0u);
  EXPECT_EQ(srv.count(manifest_path("latest")), 1u);
}

// ---------------------------------------------------------------------------------------------
// Manifests

TEST(RegistryManifest, ByTagHashesExactBytes) {
  const std::string body = manifest_body();
  HttpTestServer srv([&](const HttpTestRequest& r) {
    if (r.path == "/v2/") return HttpTestResponse{200, {}, "{}"};
    return manifest_response(body);
  });
  RegistryClient client(ref_at(srv.authority()), fast_options());
  auto m = client.get_manifest("latest");
  EXPECT_EQ(m.body, body);
  EXPECT_EQ(m.content_type, kOciManifestType);
  EXPECT_EQ(m.digest, digest_of(body));
  ASSERT_TRUE(m.parsed.manifest.has_value());
  EXPECT_EQ(m.parsed.manifest->layers.size(), 1u);
  const std::string accept = srv.requests().back().header("accept");
  for (const char* t :
       {"application/vnd.oci.image.manifest.v1+json", "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json"})
    EXPECT_NE(accept.find(t), std::string::npos) << t;
}

TEST(RegistryManifest, ByDigestMustMatch) {
  const std::string body = manifest_body();
  const std::string good = digest_of(body).str();
  const std::string other = digest_of("something else").str();
  HttpTestServer srv([&](const HttpTestRequest& r) {
    if (r.path == "/v2/") return HttpTestResponse{200, {}, "{}"};
    return manifest_response(body);  // whatever was asked for
  });
  RegistryClient client(ref_at(srv.authority()), fast_options());
  EXPECT_EQ(client.get_manifest(good).digest.str(), good);
  EXPECT_THROW(client.get_manifest(other), DigestMismatch);
}

TEST(RegistryManifest, ContentTypeContradictionRejected) {
  HttpTestServer srv([&](const HttpTestRequest& r) {
    if (r.path == "/v2/") return HttpTestResponse{200, {}, "{}"};
    return HttpTestResponse{
        200, {{"Content-Type", "application/vnd.oci.image.index.v1+json"}}, manifest_body()};
  });
  RegistryClient client(ref_at(srv.authority()), fast_options());
  EXPECT_THROW(client.get_manifest("latest"), ImageError);
}

TEST(RegistryManifest, OversizedManifestIsAbortedWhileReceiving) {
  const std::string huge(kMaxManifestSize + (1 << 20), ' ');
  for (bool close_delimited : {false, true}) {
    HttpTestServer srv([&](const HttpTestRequest& r) {
      if (r.path == "/v2/") return HttpTestResponse{200, {}, "{}"};
      HttpTestResponse resp{200, {{"Content-Type", kOciManifestType}}, huge};
      resp.close_delimited = close_delimited;
      return resp;
    });
    RegistryClient client(ref_at(srv.authority()), fast_options());
    try {
      client.get_manifest("latest");
      FAIL() << "expected ImageError";
    } catch (const DigestMismatch& e) {
      FAIL() << e.what();
    } catch (const ImageError& e) {
      EXPECT_NE(std::string(e.what()).find("limit"), std::string::npos) << e.what();
    }
    EXPECT_EQ(srv.count(manifest_path("latest")), 1u) << "close_delimited=" << close_delimited;
  }
}

TEST(RegistryManifest, UnknownManifestIs404AndNotRetried) {
  HttpTestServer srv([&](const HttpTestRequest& r) {
    if (r.path == "/v2/") return HttpTestResponse{200, {}, "{}"};
    return HttpTestResponse{
        404,
        {{"Content-Type", "application/json"}},
        R"({"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]})"};
  });
  RegistryClient client(ref_at(srv.authority()), fast_options());
  try {
    client.get_manifest("nope");
    FAIL() << "expected RegistryError";
  } catch (const AuthError& e) {
    FAIL() << e.what();
  } catch (const RegistryError& e) {
    EXPECT_EQ(e.http_status(), 404);
    EXPECT_NE(std::string(e.what()).find("manifest unknown: library/app:nope"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(srv.count(manifest_path("nope")), 1u);
}

// ---------------------------------------------------------------------------------------------
// Blobs: redirects, resume, verification

TEST(RegistryBlob, RedirectToAnotherHostCarriesNoAuthorization) {
  const std::string blob = make_content(50000);
  const Descriptor desc = descriptor_of(blob);
  HttpTestServer cdn(
      [&](const HttpTestRequest& r) {
        if (starts_with(r.path, "/cdn/blob")) return HttpTestResponse{200, {}, blob};
        return HttpTestResponse{404, {}, ""};
      },
      "127.0.0.2");
  HttpTestServer srv([&](const HttpTestRequest& r) {
    if (r.header("authorization") != "Basic dXNlcjpzZWNyZXQ=")
      return unauthorized("Basic realm=\"test\"");
    if (r.path == "/v2/") return HttpTestResponse{200, {}, "{}"};
    if (r.path == blob_path(desc))
      return HttpTestResponse{307, {{"Location", cdn.url() + "/cdn/blob?X-Signature=abc"}}, ""};
    return HttpTestResponse{404, {}, ""};
  });
  RegistryOptions o = fast_options();
  o.credentials = Credentials{"user", "secret", "", ""};
  RegistryClient client(ref_at(srv.authority()), o);
  UniqueFd fd = temp_fd();
  client.fetch_blob(desc, fd.get());
  EXPECT_EQ(read_all(fd.get()), blob);
  auto cdn_reqs = cdn.requests();
  ASSERT_EQ(cdn_reqs.size(), 1u);
  EXPECT_EQ(cdn_reqs[0].path, "/cdn/blob?X-Signature=abc");
  EXPECT_FALSE(cdn_reqs[0].has_header("authorization"));
  EXPECT_FALSE(cdn_reqs[0].has_header("cookie"));
  EXPECT_EQ(srv.count(blob_path(desc)), 1u);
}

TEST(RegistryBlob, RelativeRedirectStaysOnRegistryWithAuthorization) {
  const std::string blob = make_content(5000);
  const Descriptor desc = descriptor_of(blob);
  HttpTestServer srv([&](const HttpTestRequest& r) {
    if (r.header("authorization") != "Basic dXNlcjpzZWNyZXQ=")
      return unauthorized("Basic realm=\"test\"");
    if (r.path == "/v2/") return HttpTestResponse{200, {}, "{}"};
    if (r.path == blob_path(desc)) return HttpTestResponse{302, {{"Location", "../storage/x"}}, ""};
    if (r.path == "/v2/library/app/storage/x") return HttpTestResponse{200, {}, blob};
    return HttpTestResponse{404, {}, ""};
  });
  RegistryOptions o = fast_options();
  o.credentials = Credentials{"user", "secret", "", ""};
  RegistryClient client(ref_at(srv.authority()), o);
  EXPECT_EQ(client.fetch_blob_bytes(desc, 1 << 20), blob);
  EXPECT_EQ(srv.count("/v2/library/app/storage/x"), 1u);
}

TEST(RegistryBlob, RedirectLoopIsBounded) {
  const Descriptor desc = descriptor_of("x");
  HttpTestServer srv([&](const HttpTestRequest& r) {
    if (r.path == "/v2/") return HttpTestResponse{200, {}, "{}"};
    return HttpTestResponse{307, {{"Location", r.path + "x"}}, ""};
  });
  RegistryClient client(ref_at(srv.authority()), fast_options());
  EXPECT_THROW(client.fetch_blob_bytes(desc, 10), RegistryError);
  EXPECT_EQ(srv.requests().size(), 1u + 11u);  // ping + first GET + 10 redirects
}

TEST(RegistryBlob, CutTransferResumesWithRange) {
  const std::string blob = make_content(1 << 20);
  const Descriptor desc = descriptor_of(blob);
  constexpr size_t kCut = 300000;
  std::atomic<int> blob_requests{0};
  HttpTestServer srv([&](const HttpTestRequest& r) {
    if (r.path == "/v2/") return HttpTestResponse{200, {}, "{}"};
    if (++blob_requests == 1) {
      HttpTestResponse resp{200, {}, blob};
      resp.cut_after = kCut;
      return resp;
    }
    const std::string range = r.header("range");
    if (range != "bytes=" + std::to_string(kCut) + "-")
      return HttpTestResponse{400, {}, "bad range"};
    return HttpTestResponse{
        206,
        {{"Content-Range", "bytes " + std::to_string(kCut) + "-" + std::to_string(blob.size() - 1) +
                               "/" + std::to_string(blob.size())}},
        blob.substr(kCut)};
  });
  RegistryClient client(ref_at(srv.authority()), fast_options());
  UniqueFd fd = temp_fd();
  std::vector<std::pair<uint64_t, uint64_t>> progress;
  client.fetch_blob(desc, fd.get(),
                    [&](uint64_t done, uint64_t total) { progress.emplace_back(done, total); });
  EXPECT_EQ(read_all(fd.get()), blob);
  EXPECT_EQ(blob_requests, 2);
  ASSERT_FALSE(progress.empty());
  EXPECT_EQ(progress.back(), std::make_pair(uint64_t{blob.size()}, uint64_t{blob.size()}));
  for (size_t i = 1; i < progress.size(); ++i) EXPECT_LE(progress[i - 1].first, progress[i].first);
}

TEST(RegistryBlob, IgnoredRangeRestartsFromZero) {
  const std::string blob = make_content(200000);
  const Descriptor desc = descriptor_of(blob);
  std::atomic<int> blob_requests{0};
  HttpTestServer srv([&](const HttpTestRequest& r) {
    if (r.path == "/v2/") return HttpTestResponse{200, {}, "{}"};
    HttpTestResponse resp{200, {}, blob};  // never honours Range
    if (++blob_requests == 1) resp.cut_after = 70000;
    return resp;
  });
  RegistryClient client(ref_at(srv.authority()), fast_options());
  UniqueFd fd = temp_fd();
  client.fetch_blob(desc, fd.get());
  EXPECT_EQ(read_all(fd.get()), blob);  // not 70000 stale bytes + the full blob
  EXPECT_EQ(blob_requests, 2);
  EXPECT_EQ(srv.requests().back().header("range"), "bytes=70000-");
}

TEST(RegistryBlob, MismatchedContentRangeRestartsFromZero) {
  const std::string blob = make_content(100000);
  const Descriptor desc = descriptor_of(blob);
  std::atomic<int> blob_requests{0};
  HttpTestServer srv([&](const HttpTestRequest& r) {
    if (r.path == "/v2/") return HttpTestResponse{200, {}, "{}"};
    int n = ++blob_requests;
    if (n == 1) {
      HttpTestResponse resp{200, {}, blob};
      resp.cut_after = 40000;
      return resp;
    }
    if (r.has_header("range"))  // answers a different range than asked
      return HttpTestResponse{206, {{"Content-Range", "bytes 0-99999/100000"}}, blob};
    return HttpTestResponse{200, {}, blob};
  });
  RegistryClient client(ref_at(srv.authority()), fast_options());
  UniqueFd fd = temp_fd();
  client.fetch_blob(desc, fd.get());
  EXPECT_EQ(read_all(fd.get()), blob);
  EXPECT_EQ(blob_requests, 3);
  EXPECT_FALSE(srv.requests().back().has_header("range"));
}

TEST(RegistryBlob, WrongBytesAreDigestMismatch) {
  const std::string blob = make_content(4096, 1);
  const Descriptor desc = descriptor_of(blob);
  HttpTestServer srv([&](const HttpTestRequest& r) {
    if (r.path == "/v2/") return HttpTestResponse{200, {}, "{}"};
    return HttpTestResponse{
        200, {{"Docker-Content-Digest", desc.digest.str()}}, make_content(4096, 2)};
  });
  RegistryClient client(ref_at(srv.authority()), fast_options());
  UniqueFd fd = temp_fd();
  try {
    client.fetch_blob(desc, fd.get());
    FAIL() << "expected DigestMismatch";
  } catch (const DigestMismatch& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("blob " + desc.digest.str() + ": content hashes to sha256:"),
              std::string::npos)
        << msg;
    EXPECT_NE(msg.find("expected " + desc.digest.str()), std::string::npos) << msg;
  }
  EXPECT_EQ(srv.count(blob_path(desc)), 1u);
}

TEST(RegistryBlob, MoreBytesThanDeclaredAbortsImmediately) {
  const std::string blob = make_content(1000);
  const Descriptor desc = descriptor_of(blob);
  const std::string oversized = blob + make_content(4 << 20, 3);
  for (bool close_delimited : {false, true}) {
    HttpTestServer srv([&](const HttpTestRequest& r) {
      if (r.path == "/v2/") return HttpTestResponse{200, {}, "{}"};
      HttpTestResponse resp{200, {}, oversized};
      resp.close_delimited = close_delimited;
      return resp;
    });
    RegistryClient client(ref_at(srv.authority()), fast_options());
    UniqueFd fd = temp_fd();
    EXPECT_THROW(client.fetch_blob(desc, fd.get()), DigestMismatch);
    EXPECT_LE(read_all(fd.get()).size(), blob.size());
    EXPECT_EQ(srv.count(blob_path(desc)), 1u);
  }
}

TEST(RegistryBlob, FewerBytesThanDeclaredIsAnError) {
  const std::string blob = make_content(1000);
  const Descriptor desc = descriptor_of(blob);
  HttpTestServer srv([&](const HttpTestRequest& r) {
    if (r.path == "/v2/") return HttpTestResponse{200, {}, "{}"};
    return HttpTestResponse{200, {}, blob.substr(0, 900)};
  });
  RegistryClient client(ref_at(srv.authority()), fast_options());
  EXPECT_THROW(client.fetch_blob_bytes(desc, 1 << 20), DigestMismatch);
}

TEST(RegistryBlob, FetchBytesRespectsLimitWithoutAsking) {
  const std::string blob = make_content(1000);
  HttpTestServer srv([&](const HttpTestRequest&) { return HttpTestResponse{200, {}, blob}; });
  RegistryClient client(ref_at(srv.authority()), fast_options());
  EXPECT_THROW(client.fetch_blob_bytes(descriptor_of(blob), 999), ImageError);
  EXPECT_EQ(srv.requests().size(), 0u);
}

TEST(RegistryBlob, ConcurrentFetchesShareOneToken) {
  std::vector<std::string> blobs;
  for (int i = 0; i < 8; ++i)
    blobs.push_back(make_content(100000 + i * 1000, static_cast<char>(i)));
  std::atomic<uint16_t> port{0};
  HttpTestServer srv([&](const HttpTestRequest& r) {
    if (starts_with(r.path, "/token")) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // widen the race
      return HttpTestResponse{200, {}, R"({"token":"shared"})"};
    }
    if (r.header("authorization") != "Bearer shared")
      return unauthorized("Bearer realm=\"http://127.0.0.1:" + std::to_string(port) + "/token\"");
    if (r.path == "/v2/") return HttpTestResponse{200, {}, "{}"};
    for (const auto& b : blobs)
      if (r.path == blob_path(descriptor_of(b))) return HttpTestResponse{200, {}, b};
    return HttpTestResponse{404, {}, ""};
  });
  port = srv.port();
  RegistryClient client(ref_at(srv.authority()), fast_options());
  std::vector<std::string> got(blobs.size());
  std::vector<std::thread> threads;
  std::mutex err_mu;
  std::vector<std::string> errors;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (size_t i = static_cast<size_t>(t); i < blobs.size(); i += 4) {
        try {
          UniqueFd fd = temp_fd();
          client.fetch_blob(descriptor_of(blobs[i]), fd.get());
          got[i] = read_all(fd.get());
        } catch (const std::exception& e) {
          std::lock_guard<std::mutex> l(err_mu);
          errors.push_back(e.what());
        }
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_TRUE(errors.empty()) << errors.front();
  for (size_t i = 0; i < blobs.size(); ++i) EXPECT_EQ(got[i], blobs[i]) << i;
  EXPECT_EQ(srv.count("/token"), 1u);
  EXPECT_EQ(srv.count("/v2/library"), blobs.size());
}

// ---------------------------------------------------------------------------------------------
// Retries

TEST(RegistryRetry, ServiceUnavailableTwiceThenSucceeds) {
  const std::string blob = make_content(3000);
  const Descriptor desc = descriptor_of(blob);
  std::atomic<int> n{0};
  HttpTestServer srv([&](const HttpTestRequest& r) {
    if (r.path == "/v2/") return HttpTestResponse{200, {}, "{}"};
    if (++n <= 2) return HttpTestResponse{503, {}, "busy"};
    return HttpTestResponse{200, {}, blob};
  });
  RegistryClient client(ref_at(srv.authority()), fast_options());
  EXPECT_EQ(client.fetch_blob_bytes(desc, 1 << 20), blob);
  EXPECT_EQ(srv.count(blob_path(desc)), 3u);
}

TEST(RegistryRetry, GivesUpAfterMaxAttemptsWithOneLineMessage) {
  const Descriptor desc = descriptor_of("abc");
  HttpTestServer srv([&](const HttpTestRequest& r) {
    if (r.path == "/v2/") return HttpTestResponse{200, {}, "{}"};
    return HttpTestResponse{503, {}, "busy"};
  });
  RegistryClient client(ref_at(srv.authority()), fast_options());
  try {
    client.fetch_blob_bytes(desc, 100);
    FAIL() << "expected RegistryError";
  } catch (const RegistryError& e) {
    EXPECT_EQ(e.http_status(), 503);
    EXPECT_EQ(std::string(e.what()), "GET '" + srv.url() + blob_path(desc) +
                                         "': 503 Service Unavailable (after 3 attempts)");
  }
  EXPECT_EQ(srv.count(blob_path(desc)), 3u);
}

TEST(RegistryRetry, HonoursRetryAfter) {
  const std::string blob = make_content(100);
  const Descriptor desc = descriptor_of(blob);
  std::atomic<int> n{0};
  HttpTestServer srv([&](const HttpTestRequest& r) {
    if (r.path == "/v2/") return HttpTestResponse{200, {}, "{}"};
    if (++n == 1)
      return HttpTestResponse{429,
                              {{"Retry-After", "1"}},
                              R"({"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]})"};
    return HttpTestResponse{200, {}, blob};
  });
  RegistryOptions o = fast_options();
  o.backoff_max_ms = 3000;  // the cap must not hide the Retry-After
  RegistryClient client(ref_at(srv.authority()), o);
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(client.fetch_blob_bytes(desc, 1000), blob);
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_GE(elapsed, std::chrono::milliseconds(950));
  EXPECT_LT(elapsed, std::chrono::milliseconds(2500));
  EXPECT_EQ(n, 2);
}

TEST(RegistryRetry, RetryAfterIsCappedByBackoffMax) {
  std::atomic<int> n{0};
  const std::string blob = make_content(100);
  HttpTestServer srv([&](const HttpTestRequest& r) {
    if (r.path == "/v2/") return HttpTestResponse{200, {}, "{}"};
    if (++n == 1) return HttpTestResponse{429, {{"Retry-After", "3600"}}, ""};
    return HttpTestResponse{200, {}, blob};
  });
  RegistryClient client(ref_at(srv.authority()), fast_options());  // backoff_max_ms = 20
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(client.fetch_blob_bytes(descriptor_of(blob), 1000), blob);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

TEST(RegistryRetry, NotFoundIsNotRetried) {
  const Descriptor desc = descriptor_of("abc");
  HttpTestServer srv([&](const HttpTestRequest& r) {
    if (r.path == "/v2/") return HttpTestResponse{200, {}, "{}"};
    return HttpTestResponse{
        404,
        {{"Content-Type", "application/json"}},
        R"({"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]})"};
  });
  RegistryClient client(ref_at(srv.authority()), fast_options());
  try {
    client.fetch_blob_bytes(desc, 100);
    FAIL() << "expected RegistryError";
  } catch (const RegistryError& e) {
    EXPECT_EQ(e.http_status(), 404);
    EXPECT_NE(std::string(e.what()).find("BLOB_UNKNOWN: blob unknown to registry"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(srv.count(blob_path(desc)), 1u);
}

TEST(RegistryRetry, ConnectionRefusedIsRetriedThenReported) {
  std::string authority;
  {
    HttpTestServer gone([](const HttpTestRequest&) { return HttpTestResponse{}; });
    authority = gone.authority();
  }  // closed: connecting is refused now
  RegistryOptions o = fast_options();
  o.max_attempts = 2;
  RegistryClient client(ref_at(authority), o);
  try {
    client.get_manifest("latest");
    FAIL() << "expected RegistryError";
  } catch (const RegistryError& e) {
    EXPECT_EQ(e.http_status(), 0);
    const std::string msg = e.what();
    EXPECT_NE(msg.find("GET 'http://" + authority + "/v2/'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("(after 2 attempts)"), std::string::npos) << msg;
  }
}

}  // namespace
