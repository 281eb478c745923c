// auth.cpp: credentials from docker's config.json and credential helpers, and WWW-Authenticate
// parsing (RFC 9110 §11.6.1 challenges; docker-credential-helpers protocol; oci-notes §1.4).
#include "benchrun/oci/auth.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>

#include "benchrun/common/eintr.hpp"
#include "benchrun/common/error.hpp"
#include "benchrun/common/text.hpp"
#include "benchrun/common/subprocess.hpp"
#include "benchrun/common/unique_fd.hpp"

namespace benchrun::oci {

using nlohmann::json;

namespace {

constexpr std::string_view kHubAuthKey = "https://index.docker.io/v1/";
constexpr size_t kMaxConfigFile = 4 << 20;
constexpr size_t kMaxChallenge = 16 << 10;
constexpr std::chrono::seconds kHelperTimeout{30};
constexpr std::string_view kHelperNotFound = "credentials not found in native keychain";

// ---- WWW-Authenticate -------------------------------------------------------------------------

bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != '\0';
}

bool is_space(char c) { return c == ' ' || c == '\t'; }

struct Cursor {
  std::string_view s;
  size_t i = 0;
  bool done() const { return i >= s.size(); }
  char peek() const { return s[i]; }
  void skip_space() {
    while (!done() && is_space(s[i])) ++i;
  }
  std::string_view token() {
    size_t start = i;
    while (!done() && is_tchar(s[i])) ++i;
    return s.substr(start, i - start);
  }
};

// ---- config.json ------------------------------------------------------------------------------

bool is_hub(std::string_view host) {
  return host == "docker.io" || host == "index.docker.io" || host == "registry-1.docker.io";
}

// "https://host/v1/" -> "host"; "host" -> "host" (lowercased): docker's ConvertToHostname.
std::string key_host(std::string_view key) {
  std::string k = lower(key);
  std::string_view v = k;
  if (v.starts_with("https://"))
    v.remove_prefix(8);
  else if (v.starts_with("http://"))
    v.remove_prefix(7);
  return std::string(v.substr(0, v.find('/')));
}

// The member of obj whose key names registry. Docker Hub: docker's own key
// "https://index.docker.io/v1/" first (what `docker login` writes), then the other aliases.
// Otherwise the exact key first, then any key with the same host (docker's ConvertToHostname).
const json* find_for_registry(const json& obj, const std::string& registry) {
  if (!obj.is_object()) return nullptr;
  std::string host = lower(registry);
  bool hub = is_hub(host);
  if (hub) {
    if (auto it = obj.find(std::string(kHubAuthKey)); it != obj.end()) return &*it;
  }
  if (auto it = obj.find(registry); it != obj.end()) return &*it;
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    std::string kh = key_host(it.key());
    if (kh == host || (hub && is_hub(kh))) return &*it;
  }
  return nullptr;
}

class ConfigFile {
 public:
  explicit ConfigFile(std::string path) : path_(std::move(path)) {}
  const std::string& path() const { return path_; }

  [[noreturn]] void fail(const std::string& cause) const {
    throw AuthError("read docker config '" + printable(path_) + "': " + cause);
  }

  // The file's contents, or nullopt when it does not exist.
  std::optional<std::string> read() const {
    int raw = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (raw < 0) {
      if (errno == ENOENT || errno == ENOTDIR) return std::nullopt;
      fail(std::strerror(errno));
    }
    UniqueFd fd(raw);
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) fail(std::strerror(errno));
    if (!S_ISREG(st.st_mode)) fail("not a regular file");
    if (static_cast<uint64_t>(st.st_size) > kMaxConfigFile)
      fail("file is larger than " + std::to_string(kMaxConfigFile) + " bytes");
    std::string data;
    char buf[16384];
    for (;;) {
      ssize_t n = retry_eintr([&] { return ::read(fd.get(), buf, sizeof buf); });
      if (n < 0) fail(std::strerror(errno));
      if (n == 0) break;
      data.append(buf, static_cast<size_t>(n));
      if (data.size() > kMaxConfigFile)
        fail("file is larger than " + std::to_string(kMaxConfigFile) + " bytes");
    }
    return data;
  }

  std::string str(const json& obj, const char* key, const std::string& field) const {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return {};
    if (!it->is_string()) fail(field + ": expected a string, got " + it->type_name());
    return it->get<std::string>();
  }

 private:
  std::string path_;
};

std::optional<std::string> base64_decode(std::string_view in) {
  auto val = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  while (!in.empty() && in.back() == '=') in.remove_suffix(1);
  if (in.size() % 4 == 1) return std::nullopt;
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    int v = val(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

bool valid_helper_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '.' || c == '-'))
      return false;
  return true;
}

// First line of a helper's diagnostics, bounded and printable.
std::string diagnostic(const SubprocessResult& r) {
  std::string_view text = r.stderr_data.empty() ? r.stdout_data : r.stderr_data;
  size_t b = text.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return "no output";
  text.remove_prefix(b);
  text = text.substr(0, text.find_first_of("\r\n"));
  return printable(text, 200);
}

// Runs docker-credential-<name> get for server_url. `origin` says where the helper name came from
// ("credHelpers", "credsStore") for error messages.
std::optional<Credentials> run_helper(const std::string& name, const std::string& server_url,
                                      const std::string& helper_dir, const ConfigFile& file,
                                      const std::string& origin) {
  if (!valid_helper_name(name))
    file.fail(origin + ": invalid credential helper name '" + printable(name) +
              "' (allowed: letters, digits, '_', '.', '-')");
  std::string program = "docker-credential-" + name;
  if (!helper_dir.empty()) {
    std::string candidate = helper_dir + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) program = candidate;
  }

  SubprocessOptions opts;
  opts.stdin_data = server_url;
  opts.timeout = kHelperTimeout;
  opts.max_output = 1 << 20;
  std::string what = "credential helper '" + printable(program) + "' (" + origin + " in '" +
                     printable(file.path()) + "')";
  SubprocessResult r;
  try {
    r = run_subprocess({program, "get"}, opts);
  } catch (const SysError& e) {
    if (e.code() == ENOENT)
      throw AuthError("run " + what + ": not found in " +
                      (helper_dir.empty() ? "" : "'" + printable(helper_dir) + "' or ") +
                      "PATH (hint: install it or remove " + origin + " from the config)");
    throw AuthError("run " + what + ": " + e.what());
  }
  if (r.timed_out)
    throw AuthError("run " + what + ": no answer within " + std::to_string(kHelperTimeout.count()) +
                    " s (killed)");
  if (r.stdout_data.find(kHelperNotFound) != std::string::npos ||
      r.stderr_data.find(kHelperNotFound) != std::string::npos)
    return std::nullopt;
  if (r.signal != 0)
    throw AuthError("run " + what + ": killed by signal " + std::to_string(r.signal) + ": " +
                    diagnostic(r));
  if (r.exit_code != 0)
    throw AuthError("run " + what + ": exit status " + std::to_string(r.exit_code) + ": " +
                    diagnostic(r));

  json j = json::parse(r.stdout_data, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    throw AuthError("run " + what + ": output is not a JSON object");
  auto field = [&](const char* key) -> std::string {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return {};
    if (!it->is_string()) throw AuthError("run " + what + ": " + key + " is not a string");
    return it->get<std::string>();
  };
  std::string user = field("Username");
  std::string secret = field("Secret");
  Credentials c;
  if (user == "<token>") {
    c.identity_token = secret;
  } else {
    c.username = user;
    c.password = secret;
  }
  if (c.empty()) return std::nullopt;
  return c;
}

}  // namespace

std::optional<Challenge> parse_www_authenticate(std::string_view header) {
  if (header.size() > kMaxChallenge) return std::nullopt;
  Cursor cur{header};
  cur.skip_space();
  std::string_view scheme = cur.token();
  if (scheme.empty()) return std::nullopt;
  Challenge ch;
  ch.scheme = lower(scheme);
  cur.skip_space();
  if (cur.done()) return ch;
  if (!is_space(header[cur.i - 1])) return std::nullopt;  // "Bearer,..." or "Bearer\"x\""

  // auth-param *( OWS "," OWS auth-param ); a token without '=' starts the next challenge, which
  // we do not need (the first one is what registries mean).
  bool expect_param = true;
  while (!cur.done()) {
    cur.skip_space();
    if (cur.done()) break;
    if (cur.peek() == ',') {
      ++cur.i;
      expect_param = true;
      continue;
    }
    if (!expect_param) return std::nullopt;  // two params without a comma between them
    std::string_view key = cur.token();
    if (key.empty()) return std::nullopt;
    cur.skip_space();
    if (cur.done() || cur.peek() != '=') {
      // Not a parameter: a token68 credential ("Negotiate abc==") or the scheme of a second
      // challenge. Either way the first challenge is complete.
      break;
    }
    ++cur.i;  // '='
    cur.skip_space();
    std::string value;
    if (!cur.done() && cur.peek() == '"') {
      ++cur.i;
      bool closed = false;
      while (!cur.done()) {
        char c = cur.s[cur.i++];
        if (c == '"') {
          closed = true;
          break;
        }
        if (c == '\\') {
          if (cur.done()) return std::nullopt;
          c = cur.s[cur.i++];
        }
        value.push_back(c);
      }
      if (!closed) return std::nullopt;
    } else {
      // Lenient token: registries send unquoted values containing ':' and '/'.
      size_t start = cur.i;
      while (!cur.done() && cur.peek() != ',' && !is_space(cur.peek())) {
        if (cur.peek() == '"') return std::nullopt;
        ++cur.i;
      }
      value = std::string(cur.s.substr(start, cur.i - start));
    }
    ch.params.emplace(lower(key), std::move(value));  // a repeated name keeps its first value
    expect_param = false;
  }
  return ch;
}

std::optional<Credentials> lookup_credentials(const std::string& registry,
                                              const std::string& docker_config_path,
                                              const std::string& helper_dir) {
  if (docker_config_path.empty()) return std::nullopt;
  ConfigFile file(docker_config_path);
  std::optional<std::string> text = file.read();
  if (!text) return std::nullopt;
  json cfg = json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (cfg.is_discarded()) file.fail("not valid JSON");
  if (!cfg.is_object()) file.fail(std::string("expected a JSON object, got ") + cfg.type_name());

  const bool hub = is_hub(lower(registry));
  const std::string server_url = hub ? std::string(kHubAuthKey) : registry;

  // 1. A helper configured for this registry.
  if (auto it = cfg.find("credHelpers"); it != cfg.end() && !it->is_null()) {
    if (!it->is_object())
      file.fail("credHelpers: expected an object, got " + std::string(it->type_name()));
    if (const json* h = find_for_registry(*it, registry)) {
      if (!h->is_string())
        file.fail("credHelpers: helper name for '" + printable(registry) + "' is not a string");
      return run_helper(h->get<std::string>(), server_url, helper_dir, file, "credHelpers");
    }
  }

  // 2. Inline credentials. Entries written next to a credsStore are empty and fall through.
  if (auto it = cfg.find("auths"); it != cfg.end() && !it->is_null()) {
    if (!it->is_object())
      file.fail("auths: expected an object, got " + std::string(it->type_name()));
    if (const json* e = find_for_registry(*it, registry)) {
      std::string field = "auths['" + printable(registry) + "']";
      if (!e->is_object()) file.fail(field + ": expected an object, got " + e->type_name());
      Credentials c;
      std::string auth = file.str(*e, "auth", field + ".auth");
      c.username = file.str(*e, "username", field + ".username");
      c.password = file.str(*e, "password", field + ".password");
      c.identity_token = file.str(*e, "identitytoken", field + ".identitytoken");
      c.registry_token = file.str(*e, "registrytoken", field + ".registrytoken");
      if (!auth.empty()) {
        auto decoded = base64_decode(auth);
        if (!decoded) file.fail(field + ".auth: not valid base64");
        size_t colon = decoded->find(':');
        if (colon == std::string::npos)
          file.fail(field + ".auth: decoded value is not 'user:password'");
        c.username = decoded->substr(0, colon);
        c.password = decoded->substr(colon + 1);
      }
      if (!c.empty()) return c;
    }
  }

  // 3. The default credential store.
  std::string store = file.str(cfg, "credsStore", "credsStore");
  if (!store.empty()) return run_helper(store, server_url, helper_dir, file, "credsStore");
  return std::nullopt;
}

}  // namespace benchrun::oci
