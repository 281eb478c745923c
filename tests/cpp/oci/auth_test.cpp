// auth_test.cpp: WWW-Authenticate parsing and docker config.json / credential helper lookup.
#include "benchrun/oci/auth.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "benchrun/common/error.hpp"
#include "benchrun/common/fs.hpp"

using benchrun::AuthError;
using benchrun::oci::Challenge;
using benchrun::oci::Credentials;
using benchrun::oci::lookup_credentials;
using benchrun::oci::parse_www_authenticate;

namespace {

std::map<std::string, std::string> params_of(const std::string& header) {
  auto c = parse_www_authenticate(header);
  EXPECT_TRUE(c) << header;
  return c ? c->params : std::map<std::string, std::string>{};
}

// A temp dir holding config.json files and fake docker-credential-* helpers.
class AuthConfig : public ::testing::Test {
 protected:
  benchrun::TempDir dir_{std::filesystem::temp_directory_path(), "benchrun-auth-test-"};

  std::string write_config(const std::string& json) {
    std::string path = (dir_.path() / "config.json").string();
    std::ofstream(path) << json;
    return path;
  }

  void write_helper(const std::string& name, const std::string& body) {
    auto path = dir_.path() / ("docker-credential-" + name);
    std::ofstream(path) << "#!/bin/sh\n" << body;
    ::chmod(path.c_str(), 0755);
  }

  std::string helpers() const { return dir_.path().string(); }

  // A helper like docker-credential-pass: answers for two server URLs, "not found" otherwise.
  void write_fake_store() {
    write_helper("fake", R"([ "$1" = get ] || { echo "unsupported: $1" >&2; exit 1; }
read -r url
fmt='{"ServerURL":"%s","Username":"%s","Secret":"%s"}'
case "$url" in
  https://index.docker.io/v1/) printf "$fmt" "$url" hubuser hubpass ;;
  token.example.com) printf "$fmt" "$url" "<token>" refresh-123 ;;
  *) echo "credentials not found in native keychain"; exit 1 ;;
esac
)");
  }

  std::string auth_error(const std::string& registry, const std::string& config) {
    try {
      lookup_credentials(registry, config, helpers());
    } catch (const AuthError& e) {
      return e.what();
    }
    return "";
  }
};

}  // namespace

TEST(Challenge, ParsesDockerHubBearer) {
  auto c = parse_www_authenticate(
      R"(Bearer realm="https://auth.docker.io/token",service="registry.docker.io",)"
      R"(scope="repository:library/alpine:pull")");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->scheme, "bearer");
  EXPECT_EQ(c->params.size(), 3u);
  EXPECT_EQ(c->params.at("realm"), "https://auth.docker.io/token");
  EXPECT_EQ(c->params.at("service"), "registry.docker.io");
  EXPECT_EQ(c->params.at("scope"), "repository:library/alpine:pull");
}

TEST(Challenge, QuotedCommasHostPortScopesAndEscapes) {
  auto p = params_of(R"(Bearer realm="https://r.example/token",scope="repository:a/b:pull,push")");
  EXPECT_EQ(p.at("scope"), "repository:a/b:pull,push");
  p = params_of(R"(Bearer realm="http://localhost:5000/auth",)"
                R"(scope="repository:localhost:5000/foo/bar:pull",error="insufficient_scope")");
  EXPECT_EQ(p.at("scope"), "repository:localhost:5000/foo/bar:pull");
  EXPECT_EQ(p.at("realm"), "http://localhost:5000/auth");
  EXPECT_EQ(p.at("error"), "insufficient_scope");
  p = params_of(R"(Bearer realm="a\"b\\c",scope="repository:x:pull repository:y:pull")");
  EXPECT_EQ(p.at("realm"), "a\"b\\c");
  EXPECT_EQ(p.at("scope"), "repository:x:pull repository:y:pull");
}

TEST(Challenge, ToleratesSpacingCaseAndUnquotedValues) {
  auto c = parse_www_authenticate("  BEARER   Realm = \"x\" ,\tservice=reg.example ,  ");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->scheme, "bearer");
  EXPECT_EQ(c->params.at("realm"), "x");
  EXPECT_EQ(c->params.at("service"), "reg.example");
  auto p = params_of("Bearer realm=https://auth.example/token,service=auth.example");
  EXPECT_EQ(p.at("realm"), "https://auth.example/token");
  c = parse_www_authenticate(R"(Basic realm="Registry Realm")");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->scheme, "basic");
  EXPECT_EQ(c->params.at("realm"), "Registry Realm");
  c = parse_www_authenticate("Basic");
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->params.empty());
  // Several challenges: the first one is returned.
  c = parse_www_authenticate(R"(Bearer realm="a",service="s", Basic realm="b")");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->scheme, "bearer");
  EXPECT_EQ(c->params.at("realm"), "a");
  EXPECT_EQ(c->params.count("basic"), 0u);
  // Empty quoted value.
  EXPECT_EQ(params_of(R"(Bearer realm="",service="x")").at("realm"), "");
}

TEST(Challenge, RejectsGarbage) {
  for (const char* bad : {"", "   ", "\"Bearer\"", R"(Bearer realm="unterminated)",
                          R"(Bearer realm="a" service="b")", "=x", R"(Bearer,realm="x")",
                          R"(Bearer realm=a"b")", R"(Bearer realm="x\)", R"(Bearer ="x")"})
    EXPECT_FALSE(parse_www_authenticate(bad)) << bad;
  EXPECT_FALSE(parse_www_authenticate("Bearer realm=\"" + std::string(20000, 'a') + "\""));
}

TEST_F(AuthConfig, MissingFileMeansNoCredentials) {
  EXPECT_FALSE(lookup_credentials("docker.io", (dir_.path() / "nope.json").string()));
  EXPECT_FALSE(lookup_credentials("docker.io", (dir_.path() / "nodir" / "config.json").string()));
  EXPECT_FALSE(lookup_credentials("docker.io", ""));
}

TEST_F(AuthConfig, BrokenJsonNamesTheFile) {
  std::string path = write_config("{\"auths\": {");
  std::string msg = auth_error("docker.io", path);
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("not valid JSON"), std::string::npos) << msg;
  EXPECT_NE(auth_error("docker.io", write_config("[]")).find("expected a JSON object"),
            std::string::npos);
  EXPECT_NE(auth_error("docker.io", write_config(R"({"auths": []})")).find("auths"),
            std::string::npos);
}

TEST_F(AuthConfig, AuthsWithBase64AndUrlKeys) {
  std::string path = write_config(R"({
    "auths": {
      "localhost:5000": {"auth": "dXNlcjpwYTpzcw=="},
      "https://ghcr.io/v1/": {"auth": "YWxpY2U6d29uZGVy"},
      "http://plain.example.com": {"username": "bob", "password": "pw"},
      "id.example.com": {"identitytoken": "refresh"},
      "tok.example.com": {"registrytoken": "bearer-xyz", "email": "ignored@example.com"}
    }})");
  auto c = lookup_credentials("localhost:5000", path);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->username, "user");
  EXPECT_EQ(c->password, "pa:ss");  // only the first ':' separates
  c = lookup_credentials("ghcr.io", path);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->username, "alice");  // unpadded base64
  EXPECT_EQ(c->password, "wonder");
  c = lookup_credentials("plain.example.com", path);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->username, "bob");
  EXPECT_EQ(c->password, "pw");
  c = lookup_credentials("id.example.com", path);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->identity_token, "refresh");
  c = lookup_credentials("tok.example.com", path);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->registry_token, "bearer-xyz");
  for (const char* other :
       {"docker.io", "localhost:5001", "notghcr.io", "ghcr.io.evil.example", "localhost"})
    EXPECT_FALSE(lookup_credentials(other, path)) << other;
}

TEST_F(AuthConfig, DockerHubKeys) {
  for (const char* key : {"https://index.docker.io/v1/", "index.docker.io", "docker.io",
                          "registry-1.docker.io", "https://registry-1.docker.io/v2/"}) {
    std::string path =
        write_config(std::string(R"({"auths":{")") + key + R"(":{"auth":"aHViOnNlY3JldA=="}}})");
    auto c = lookup_credentials("docker.io", path);
    ASSERT_TRUE(c) << key;
    EXPECT_EQ(c->username, "hub") << key;
    EXPECT_EQ(c->password, "secret") << key;
    EXPECT_FALSE(lookup_credentials("quay.io", path)) << key;
  }
  // docker's own key wins over aliases (podman writes "docker.io").
  std::string path = write_config(R"({"auths":{
      "docker.io": {"username": "old", "password": "x"},
      "https://index.docker.io/v1/": {"username": "new", "password": "y"}}})");
  EXPECT_EQ(lookup_credentials("docker.io", path)->username, "new");
}

TEST_F(AuthConfig, MalformedAuthEntries) {
  std::string msg =
      auth_error("r.example", write_config(R"({"auths":{"r.example":{"auth":"%%%"}}})"));
  EXPECT_NE(msg.find("not valid base64"), std::string::npos) << msg;
  EXPECT_NE(msg.find("config.json"), std::string::npos) << msg;
  msg = auth_error("r.example", write_config(R"({"auths":{"r.example":{"auth":"bm9jb2xvbg=="}}})"));
  EXPECT_NE(msg.find("user:password"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("nocolon"), std::string::npos) << "the secret must not be echoed: " << msg;
  msg = auth_error("r.example", write_config(R"({"auths":{"r.example":{"auth":5}}})"));
  EXPECT_NE(msg.find(".auth: expected a string"), std::string::npos) << msg;
  msg = auth_error("r.example", write_config(R"({"auths":{"r.example":"x"}})"));
  EXPECT_NE(msg.find("expected an object"), std::string::npos) << msg;
}

TEST_F(AuthConfig, CredHelpersComeFirstAndGetTheHubServerUrl) {
  write_fake_store();
  std::string path = write_config(R"({
    "credHelpers": {"docker.io": "fake"},
    "auths": {"https://index.docker.io/v1/": {"username": "inline", "password": "x"}}})");
  auto c = lookup_credentials("docker.io", path, helpers());
  ASSERT_TRUE(c);
  EXPECT_EQ(c->username, "hubuser");  // the fake only answers for https://index.docker.io/v1/
  EXPECT_EQ(c->password, "hubpass");
}

TEST_F(AuthConfig, CredsStoreAfterEmptyAuthsAndIdentityTokens) {
  write_fake_store();
  std::string path = write_config(R"({
    "auths": {"token.example.com": {}, "inline.example.com": {"auth": "aHViOnNlY3JldA=="}},
    "credsStore": "fake"})");
  auto c = lookup_credentials("token.example.com", path, helpers());
  ASSERT_TRUE(c);
  EXPECT_EQ(c->identity_token, "refresh-123");
  EXPECT_TRUE(c->username.empty());
  EXPECT_TRUE(c->password.empty());
  c = lookup_credentials("inline.example.com", path, helpers());  // inline beats the store
  ASSERT_TRUE(c);
  EXPECT_EQ(c->username, "hub");
  // The store does not know this one: "credentials not found" is not an error.
  EXPECT_FALSE(lookup_credentials("unknown.example.com", path, helpers()));
}

TEST_F(AuthConfig, HelperFailures) {
  write_helper("broken", "echo 'boom: keychain is locked' >&2\nexit 2\n");
  std::string msg = auth_error("r.example", write_config(R"({"credsStore":"broken"})"));
  EXPECT_NE(msg.find("docker-credential-broken"), std::string::npos) << msg;
  EXPECT_NE(msg.find("boom: keychain is locked"), std::string::npos) << msg;
  EXPECT_NE(msg.find("exit status 2"), std::string::npos) << msg;

  write_helper("noisy", "head -c 100000 /dev/zero | tr '\\0' 'x' >&2\nexit 1\n");
  msg = auth_error("r.example", write_config(R"({"credsStore":"noisy"})"));
  EXPECT_LT(msg.size(), 600u) << "helper stderr must be bounded";

  write_helper("badjson", "cat >/dev/null; echo 'this is not json'\n");
  msg = auth_error("r.example", write_config(R"({"credHelpers":{"r.example":"badjson"}})"));
  EXPECT_NE(msg.find("not a JSON object"), std::string::npos) << msg;

  msg = auth_error("r.example", write_config(R"({"credsStore":"benchrun-missing-helper"})"));
  EXPECT_NE(msg.find("not found"), std::string::npos) << msg;
  EXPECT_NE(msg.find("credsStore"), std::string::npos) << msg;

  for (const char* evil : {"../../bin/sh", "x/y", "a b", ""}) {
    std::string cfg = std::string(R"({"credHelpers":{"r.example":")") + evil + "\"}}";
    msg = auth_error("r.example", write_config(cfg));
    EXPECT_NE(msg.find("invalid credential helper name"), std::string::npos) << evil << ": " << msg;
  }
}
