// auth.hpp: registry credentials (docker config.json, credential helpers) and WWW-Authenticate
// parsing.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace benchrun::oci {

struct Credentials {
  std::string username;
  std::string password;
  std::string identity_token;  // OAuth2 refresh token ("<token>" username from a helper)
  std::string registry_token;  // a bearer token to send as-is
  bool empty() const {
    return username.empty() && password.empty() && identity_token.empty() && registry_token.empty();
  }
};

// Looks up credentials for registry (e.g. "docker.io", "localhost:5000") in a docker config.json:
// credHelpers[registry] first, then auths (keys may be bare hosts or URLs; docker.io also matches
// "https://index.docker.io/v1/"), then credsStore. Helpers are run as docker-credential-<name> get
// (helper_dir, if non-empty, is searched before PATH). A missing file means no credentials; a
// broken file or helper failure throws AuthError naming the file or helper.
std::optional<Credentials> lookup_credentials(const std::string& registry,
                                              const std::string& docker_config_path,
                                              const std::string& helper_dir = "");

// Default docker config path: $DOCKER_CONFIG/config.json or ~/.docker/config.json. This is computed
// by the Python layer (the core reads no environment) and passed in.

// A parsed WWW-Authenticate challenge: scheme ("bearer"/"basic", lowercased) and its parameters
// (realm, service, scope, error ...). Quoted values may contain commas.
struct Challenge {
  std::string scheme;
  std::map<std::string, std::string> params;
};
std::optional<Challenge> parse_www_authenticate(std::string_view header);

}  // namespace benchrun::oci
