// registry_client.cpp: distribution-spec pull client (ping, auth, retries, redirects, blobs).
#include "benchrun/oci/registry_client.hpp"

#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "benchrun/common/clock.hpp"
#include "benchrun/common/error.hpp"
#include "benchrun/common/fs.hpp"
#include "benchrun/common/text.hpp"
#include "oci/http.hpp"

namespace benchrun::oci {

namespace {

using Json = nlohmann::json;

constexpr int kMaxRedirects = 10;
constexpr size_t kMaxTokenResponse = 1 << 20;
constexpr size_t kMaxShown = 300;              // registry messages quoted in errors
constexpr uint64_t kProgressStep = 256 << 10;  // report progress at most every 256 KiB
constexpr std::chrono::seconds kDefaultTokenLifetime{60};
constexpr std::chrono::seconds kMaxTokenMargin{30};
constexpr size_t kMaxIdleHandles = 16;

// Printable, bounded rendering of text that came from the network.
std::string base64(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()),
                          static_cast<int>(in.size()));
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return out;
}

bool is_redirect(long s) { return s == 301 || s == 302 || s == 303 || s == 307 || s == 308; }
bool retryable_status(long s) { return s == 429 || s == 500 || s == 502 || s == 503 || s == 504; }

std::string field(const Json& o, const char* key) {
  auto it = o.find(key);
  return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// The message of a distribution-spec error body {"errors":[{code,message,detail}]}, or of a token
// server's {"details": ...} / OAuth2 {"error", "error_description"}; "" when there is none.
std::string registry_message(const HttpResponse& r) {
  Json j = Json::parse(r.error_body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return "";
  std::string out;
  auto errors = j.find("errors");
  if (errors != j.end() && errors->is_array()) {
    for (const Json& e : *errors) {
      if (!e.is_object()) continue;
      std::string code = field(e, "code"), message = field(e, "message");
      std::string piece = code.empty() ? message : message.empty() ? code : code + ": " + message;
      if (piece.empty()) continue;
      if (!out.empty()) out += "; ";
      out += piece;
    }
  } else if (std::string details = field(j, "details"); !details.empty()) {
    out = details;
  } else if (std::string error = field(j, "error"); !error.empty()) {
    std::string description = field(j, "error_description");
    out = description.empty() ? error : error + ": " + description;
  } else {
    out = field(j, "message");
  }
  return printable(out, kMaxShown);
}

// "503 Service Unavailable: TOOMANYREQUESTS: slow down"
std::string status_text(const HttpResponse& r) {
  std::string s = std::to_string(r.status);
  std::string_view reason = http_reason(r.status);
  if (reason.empty() && !r.reason.empty()) reason = r.reason;
  if (!reason.empty()) s += " " + printable(reason, 80);
  std::string msg = registry_message(r);
  if (!msg.empty()) s += ": " + msg;
  return s;
}

bool is_loopback_authority(const std::string& authority) {
  Reference r;
  r.registry = authority;
  return r.is_loopback();
}

// Refuses to put a long-lived secret on the wire without TLS, except to this machine.
void refuse_plain_http(const std::string& url, const std::string& registry, std::string_view what) {
  if (url_scheme(url) == "https") return;
  std::string authority = url_authority(url);
  if (is_loopback_authority(authority)) return;
  throw AuthError("refusing to send " + std::string(what) + " for " + registry +
                  " over plain HTTP to '" + printable(authority, kMaxShown) +
                  "' (only loopback hosts receive credentials without TLS)");
}

// A WWW-Authenticate challenge of a 401 response, preferring Bearer over Basic.
std::optional<Challenge> challenge_of(const HttpResponse& r) {
  std::optional<Challenge> found;
  for (const auto& [name, value] : r.headers) {
    if (name != "www-authenticate") continue;
    auto ch = parse_www_authenticate(value);
    if (!ch) continue;
    if (ch->scheme == "bearer") return ch;
    if (!found && ch->scheme == "basic") found = std::move(ch);
  }
  return found;
}

std::string param(const Challenge& ch, const char* key) {
  auto it = ch.params.find(key);
  return it == ch.params.end() ? std::string() : it->second;
}

void validate_tag(const std::string& tag) {
  auto ok = [](char c, bool first) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           (!first && (c == '.' || c == '-'));
  };
  bool valid = !tag.empty() && tag.size() <= 128;
  for (size_t i = 0; valid && i < tag.size(); ++i) valid = ok(tag[i], i == 0);
  if (!valid)
    throw ConfigError("invalid tag '" + printable(tag, 160) +
                      "': expected [A-Za-z0-9_][A-Za-z0-9._-]{0,127} or a digest");
}

std::string strip_params(std::string_view content_type) {
  content_type = content_type.substr(0, content_type.find(';'));
  while (!content_type.empty() && content_type.back() == ' ') content_type.remove_suffix(1);
  while (!content_type.empty() && content_type.front() == ' ') content_type.remove_prefix(1);
  return std::string(content_type);
}

std::optional<uint64_t> content_length(const HttpResponse& r) {
  const std::string* v = r.header("content-length");
  if (!v || v->empty() || v->size() > 19) return std::nullopt;
  uint64_t n = 0;
  for (char c : *v) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  return n;
}

// A 206 whose Content-Range does not start where we asked: the transfer restarts from byte 0.
class RangeMismatch : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A body sink that survives retries: told when an attempt starts, so it can reset or resume.
class AttemptSink : public BodySink {
 public:
  // Adds headers for this attempt (Range) and forgets whatever a failed attempt left behind.
  virtual void begin_attempt(std::vector<std::string>& headers) = 0;
  // A 416 answered our Range: start over from byte 0. Returns whether a Range had been sent.
  virtual bool range_not_satisfiable() { return false; }
};

// Collects a small body in memory; aborts the transfer as soon as it would exceed limit.
class StringSink final : public AttemptSink {
 public:
  enum class Overflow { kImage, kRegistry };
  StringSink(size_t limit, std::string what, Overflow kind)
      : limit_(limit), what_(std::move(what)), kind_(kind) {}
  void begin_attempt(std::vector<std::string>&) override { body.clear(); }
  void on_headers(const HttpResponse& r) override {
    if (auto n = content_length(r); n && *n > limit_) overflow();
  }
  void on_data(const char* data, size_t n) override {
    if (n > limit_ - body.size()) overflow();
    body.append(data, n);
  }
  std::string body;

 private:
  [[noreturn]] void overflow() const {
    std::string msg = what_ + ": larger than the limit of " + std::to_string(limit_) + " bytes";
    if (kind_ == Overflow::kImage) throw ImageError(msg);
    throw RegistryError(msg);
  }
  size_t limit_;
  std::string what_;
  Overflow kind_;
};

// Where blob bytes land: a file descriptor or memory; either can be rewound to empty.
class BlobTarget {
 public:
  virtual ~BlobTarget() = default;
  virtual void append(const char* data, size_t n) = 0;
  virtual void clear() = 0;
};

class FdTarget final : public BlobTarget {
 public:
  FdTarget(int fd, std::string what) : fd_(fd), what_(std::move(what)) {}
  void append(const char* data, size_t n) override {
    write_all(fd_, std::string_view(data, n), what_);
  }
  void clear() override {
    if (::ftruncate(fd_, 0) != 0) throw_errno("ftruncate", what_);
    if (::lseek(fd_, 0, SEEK_SET) != 0) throw_errno("lseek", what_);
  }

 private:
  int fd_;
  std::string what_;
};

class StringTarget final : public BlobTarget {
 public:
  void append(const char* data, size_t n) override { data_.append(data, n); }
  void clear() override { data_.clear(); }
  std::string take() { return std::move(data_); }

 private:
  std::string data_;
};

// Streams a blob into a target while hashing and counting. Keeps its state across attempts: an
// interrupted transfer resumes with Range at the bytes already written (and already hashed).
class BlobSink final : public AttemptSink {
 public:
  BlobSink(const Descriptor& blob, BlobTarget& target, const ProgressFn& progress)
      : blob_(blob),
        size_(static_cast<uint64_t>(blob.size)),
        target_(target),
        progress_(progress),
        hasher_(blob.digest.algorithm()) {}

  void begin_attempt(std::vector<std::string>& headers) override {
    requested_ = written_;
    if (written_ > 0) headers.push_back("Range: bytes=" + std::to_string(written_) + "-");
  }

  bool range_not_satisfiable() override {
    if (requested_ == 0) return false;
    restart();
    return true;
  }

  void on_headers(const HttpResponse& r) override {
    if (r.status == 206) {
      const std::string* range = r.header("content-range");
      std::string want = "bytes " + std::to_string(requested_) + "-";
      if (!range || range->compare(0, want.size(), want) != 0) {
        restart();
        throw RangeMismatch("server answered 'Range: bytes=" + std::to_string(requested_) +
                            "-' with 206 and Content-Range '" + printable(range ? *range : "", 80) +
                            "'");
      }
    } else if (written_ > 0) {
      restart();  // the Range was ignored: the whole blob follows
    }
    if (auto n = content_length(r); n && *n > size_ - written_) too_large(written_ + *n);
  }

  void on_data(const char* data, size_t n) override {
    if (n > size_ - written_) too_large(written_ + n);
    hasher_.update(data, n);
    target_.append(data, n);
    written_ += n;
    report();
  }

  // After a complete 2xx response: size and digest must be exactly what the descriptor says.
  void finish() {
    if (written_ != size_)
      throw DigestMismatch("blob " + blob_.digest.str() + ": got " + std::to_string(written_) +
                           " bytes, descriptor says " + std::to_string(size_));
    Digest got = hasher_.finish();
    if (got != blob_.digest)
      throw DigestMismatch("blob " + blob_.digest.str() + ": content hashes to " + got.str() +
                           ", expected " + blob_.digest.str());
  }

 private:
  [[noreturn]] void too_large(uint64_t n) const {
    throw DigestMismatch("blob " + blob_.digest.str() + ": server sends at least " +
                         std::to_string(n) + " bytes, descriptor says " + std::to_string(size_));
  }
  void restart() {
    target_.clear();
    hasher_.reset();
    written_ = 0;
    report();
  }
  void report() {
    if (!progress_) return;
    if (written_ == size_ || written_ < reported_ || written_ - reported_ >= kProgressStep) {
      reported_ = written_;
      progress_(written_, size_);
    }
  }

  const Descriptor& blob_;
  const uint64_t size_;
  BlobTarget& target_;
  const ProgressFn& progress_;
  Hasher hasher_;
  uint64_t written_ = 0;    // bytes written and hashed
  uint64_t requested_ = 0;  // the offset this attempt asked for
  uint64_t reported_ = 0;
};

// One logical request: retried, redirected and authenticated by RegistryClient::Impl::execute.
struct Call {
  std::string method = "GET";
  std::string url;
  std::vector<std::string> headers;
  std::string body;
  bool registry_auth = false;  // send the registry's Authorization (to the registry's origin only)
  std::string authorization;   // otherwise this Authorization, sent only to url's own origin
  AttemptSink* sink = nullptr;
  std::string what() const { return method + " '" + url + "'"; }
};

struct CallResult {
  HttpResponse response;
  int attempts = 1;
  std::string final_url;    // after redirects
  bool authorized = false;  // the last hop carried an Authorization header
};

struct CachedToken {
  std::string value;
  Clock::time_point refresh_at;
};

}  // namespace

struct RegistryClient::Impl {
  Impl(Reference r, RegistryOptions o);

  // A pooled easy handle: connections and TLS sessions are reused across calls; each concurrent
  // call holds its own handle.
  class Lease {
   public:
    explicit Lease(Impl& impl) : impl_(impl), handle_(impl.take_handle()) {}
    ~Lease() { impl_.give_handle(std::move(handle_)); }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    HttpHandle& operator*() const { return *handle_; }

   private:
    Impl& impl_;
    std::unique_ptr<HttpHandle> handle_;
  };

  std::unique_ptr<HttpHandle> take_handle();
  void give_handle(std::unique_ptr<HttpHandle> h) noexcept;

  CallResult execute(HttpHandle& h, Call& c);
  [[noreturn]] void fail(const Call& c, const CallResult& r, const std::string& prefix = "") const;
  std::string transport_message(const Call& c, const std::string& url, const HttpResult& r,
                                int attempts) const;

  std::string registry_authorization(HttpHandle& h);
  bool reauthenticate(const HttpResponse& r, const std::string& sent);
  void ping_locked(HttpHandle& h);
  const Credentials* credentials_locked();
  std::string bearer_token_locked(HttpHandle& h, const Challenge& ch, const Credentials* cr);
  CachedToken fetch_token(HttpHandle& h, const std::string& realm, const std::string& service,
                          const std::string& scope, const Credentials* cr);

  void download(const Descriptor& blob, BlobTarget& target, const ProgressFn& progress);
  bool at_registry(const std::string& url) const {
    auto o = url_origin(url);
    return o && !origin.empty() && *o == origin;
  }

  const Reference ref;
  const RegistryOptions options;
  HttpSettings http;
  std::string base_url;  // "https://host[:port]"
  std::string origin;    // url_origin(base_url): where registry credentials may go

  std::mutex pool_mu;
  std::vector<std::unique_ptr<HttpHandle>> idle;  // guarded by pool_mu

  // Held while pinging and fetching tokens, so concurrent calls wait for one token request.
  std::mutex auth_mu;
  bool pinged = false;
  std::optional<Challenge> challenge;  // the registry's latest challenge
  bool credentials_loaded = false;
  std::optional<Credentials> credentials;
  std::map<std::string, CachedToken> tokens;  // key: realm '\n' service '\n' scope
};

RegistryClient::Impl::Impl(Reference r, RegistryOptions o)
    : ref(std::move(r)), options(std::move(o)) {
  if (ref.repository.empty()) throw ConfigError("registry client: empty repository name");
  http.user_agent = options.user_agent;
  http.ca_file = options.ca_file;
  http.connect_timeout_s = options.connect_timeout_s;
  http.low_speed_timeout_s = options.low_speed_timeout_s;
  const std::string host = ref.api_host();
  auto listed = [&](const std::string& h) {
    return std::find(options.insecure_registries.begin(), options.insecure_registries.end(), h) !=
           options.insecure_registries.end();
  };
  const bool plain = ref.is_loopback() || listed(ref.registry) || listed(host);
  base_url = (plain ? "http://" : "https://") + host;
  origin = url_origin(base_url).value_or("");
}

std::unique_ptr<HttpHandle> RegistryClient::Impl::take_handle() {
  {
    std::lock_guard<std::mutex> l(pool_mu);
    if (!idle.empty()) {
      auto h = std::move(idle.back());
      idle.pop_back();
      return h;
    }
  }
  return std::make_unique<HttpHandle>();
}

void RegistryClient::Impl::give_handle(std::unique_ptr<HttpHandle> h) noexcept {
  std::lock_guard<std::mutex> l(pool_mu);
  if (idle.size() >= kMaxIdleHandles) return;
  try {
    idle.push_back(std::move(h));
  } catch (...) {  // out of memory: drop the handle
  }
}

CallResult RegistryClient::Impl::execute(HttpHandle& h, Call& c) {
  const int max_attempts = std::max(1, options.max_attempts);
  const std::string fixed_origin = url_origin(c.url).value_or("");
  bool reauthenticated = false;
  std::optional<std::minstd_rand> rng;

  for (int attempt = 1;; ++attempt) {
    std::vector<std::string> headers = c.headers;
    if (c.sink) c.sink->begin_attempt(headers);
    const std::string auth = c.registry_auth ? registry_authorization(h) : c.authorization;
    const std::string& auth_origin = c.registry_auth ? origin : fixed_origin;

    std::string url = c.url, method = c.method, body = c.body;
    HttpResult r;
    std::string failure;  // why this attempt will be retried
    long failed_status = 0;
    bool sent_auth = false;
    try {
      for (int hops = 0;; ++hops) {
        HttpRequest req{method, url, headers, body};
        auto o = url_origin(url);
        // Credentials go only to the origin they belong to; a redirect elsewhere gets none.
        sent_auth = !auth.empty() && o && !auth_origin.empty() && *o == auth_origin;
        if (sent_auth) req.headers.push_back("Authorization: " + auth);
        r = h.perform(req, http, c.sink);
        const long s = r.response.status;
        if (!r.ok() || !is_redirect(s) || r.response.redirect_url.empty()) break;
        if (hops + 1 > kMaxRedirects)
          throw RegistryError(
              c.what() + ": more than " + std::to_string(kMaxRedirects) + " redirects", s);
        std::string next = r.response.redirect_url;
        std::string scheme = url_scheme(next);
        if (scheme != "http" && scheme != "https")
          throw RegistryError(
              c.what() + ": redirected to unsupported URL '" + printable(next, kMaxShown) + "'", s);
        if (s == 303 || ((s == 301 || s == 302) && method == "POST")) {
          method = "GET";
          body.clear();
        }
        url = std::move(next);
      }
    } catch (const RangeMismatch& e) {
      failure = e.what();
    }

    if (failure.empty()) {
      const long s = r.response.status;
      if (!r.ok()) {
        if (r.failure != TransportFailure::kTransient)
          throw RegistryError(transport_message(c, url, r, attempt));
        failure = r.curl_error;
      } else if (s == 401 && c.registry_auth && !reauthenticated && at_registry(url) &&
                 reauthenticate(r.response, auth)) {
        // A new challenge (other scope) or an expired token: authenticate once more, for free.
        reauthenticated = true;
        --attempt;
        continue;
      } else if (s == 416 && c.sink && c.sink->range_not_satisfiable()) {
        failure = status_text(r.response);
        failed_status = s;
      } else if (retryable_status(s) ||
                 ((s == 401 || s == 403) && c.registry_auth && !at_registry(url))) {
        // Includes a redirect target refusing its (expired) pre-signed URL: ask the registry again.
        failure = status_text(r.response);
        failed_status = s;
      } else {
        return {std::move(r.response), attempt, url, sent_auth};
      }
      if (!at_registry(url) && c.registry_auth && !url_origin(url).value_or("").empty())
        failure += " (from " + *url_origin(url) + ")";
    }

    if (attempt >= max_attempts)
      throw RegistryError(
          c.what() + ": " + failure +
              (attempt > 1 ? " (after " + std::to_string(attempt) + " attempts)" : ""),
          failed_status);

    // Exponential backoff with jitter; Retry-After (capped) wins when longer.
    const double cap = std::max(0, options.backoff_max_ms);
    double base = std::max(0, options.backoff_initial_ms);
    for (int i = 1; i < attempt && base < cap; ++i) base *= 2;
    base = std::min(base, cap);
    if (!rng) rng.emplace(std::random_device{}());
    std::uniform_real_distribution<double> jitter(0.0, base / 2);
    double delay = base + jitter(*rng);
    double retry_after = std::min<double>(
        std::chrono::duration<double, std::milli>(r.response.retry_after).count(), cap);
    delay = std::max(delay, retry_after);
    std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(delay));
  }
}

std::string RegistryClient::Impl::transport_message(const Call& c, const std::string& url,
                                                    const HttpResult& r, int attempts) const {
  std::string msg = c.what() + ": " + printable(r.curl_error, kMaxShown);
  if (url != c.url) {
    if (auto o = url_origin(url)) msg += " (from " + *o + ")";
  }
  if (attempts > 1) msg += " (after " + std::to_string(attempts) + " attempts)";
  if (at_registry(url) || url == c.url) {
    const std::string scheme = url_scheme(url);
    if (scheme == "https" && r.failure == TransportFailure::kTlsHandshake)
      msg += " (hint: plain-HTTP registries need --insecure-registry " + ref.registry + ")";
    else if (scheme == "https" && r.failure == TransportFailure::kTlsTrust)
      msg +=
          " (hint: if the registry uses a private CA, pass its bundle as the CA file; "
          "plain-HTTP registries need --insecure-registry " +
          ref.registry + ")";
    else if (scheme == "http" && r.failure == TransportFailure::kNotHttp)
      msg += " (hint: the server may speak only HTTPS)";
  }
  return msg;
}

void RegistryClient::Impl::fail(const Call& c, const CallResult& r,
                                const std::string& prefix) const {
  const long s = r.response.status;
  std::string msg = prefix + c.what() + ": " + status_text(r.response);
  if (r.final_url != c.url) {
    if (auto o = url_origin(r.final_url); o && *o != origin) msg += " (from " + *o + ")";
  }
  if (r.attempts > 1) msg += " (after " + std::to_string(r.attempts) + " attempts)";
  if (s == 401 || s == 403) {
    if (c.registry_auth && !r.authorized) msg += " (no credentials for " + ref.registry + ")";
    throw AuthError(msg, static_cast<int>(s));
  }
  throw RegistryError(msg, static_cast<int>(s));
}

std::string RegistryClient::Impl::registry_authorization(HttpHandle& h) {
  std::lock_guard<std::mutex> l(auth_mu);
  ping_locked(h);
  if (!challenge) {
    // The registry let us in anonymously; only an explicit registry token is sent regardless.
    if (options.credentials && !options.credentials->registry_token.empty()) {
      refuse_plain_http(base_url, ref.registry, "a registry token");
      return "Bearer " + options.credentials->registry_token;
    }
    return "";
  }
  const Credentials* cr = credentials_locked();
  if (cr && !cr->registry_token.empty()) {
    refuse_plain_http(base_url, ref.registry, "a registry token");
    return "Bearer " + cr->registry_token;
  }
  if (challenge->scheme == "basic") {
    if (!cr || (cr->username.empty() && cr->password.empty())) return "";
    refuse_plain_http(base_url, ref.registry, "credentials");
    return "Basic " + base64(cr->username + ":" + cr->password);
  }
  if (challenge->scheme == "bearer") return "Bearer " + bearer_token_locked(h, *challenge, cr);
  return "";  // an unknown scheme: try anonymously
}

bool RegistryClient::Impl::reauthenticate(const HttpResponse& r, const std::string& sent) {
  std::lock_guard<std::mutex> l(auth_mu);
  std::optional<Challenge> ch = challenge_of(r);
  if (!ch) return false;
  const Credentials* cr = credentials_locked();
  if (cr && !cr->registry_token.empty()) return false;  // a fixed token was refused
  challenge = ch;
  if (ch->scheme == "bearer") {
    // Forget the token that was refused (another thread may have replaced it already).
    for (auto it = tokens.begin(); it != tokens.end();)
      it = ("Bearer " + it->second.value == sent) ? tokens.erase(it) : std::next(it);
    return true;
  }
  return ch->scheme == "basic" && sent.empty() && cr &&
         (!cr->username.empty() || !cr->password.empty());
}

void RegistryClient::Impl::ping_locked(HttpHandle& h) {
  if (pinged) return;
  Call c;
  c.url = base_url + "/v2/";
  StringSink sink(kMaxTokenResponse, "GET '" + c.url + "'", StringSink::Overflow::kRegistry);
  c.sink = &sink;
  CallResult r = execute(h, c);
  const long s = r.response.status;
  if (s == 404)
    throw RegistryError(c.what() + ": 404 Not Found: not an OCI registry (no /v2/ API)", 404);
  if (s == 401) {
    challenge = challenge_of(r.response);
    // A /v2/ challenge is about no repository (ghcr.io names a dummy one): build our own.
    if (challenge) challenge->params.erase("scope");
  } else if (s < 200 || s >= 300) {
    fail(c, r);
  }
  pinged = true;
}

const Credentials* RegistryClient::Impl::credentials_locked() {
  if (!credentials_loaded) {
    if (options.credentials && !options.credentials->empty())
      credentials = options.credentials;
    else if (!options.docker_config.empty())
      credentials =
          lookup_credentials(ref.registry, options.docker_config, options.credential_helper_dir);
    if (credentials && credentials->empty()) credentials.reset();
    credentials_loaded = true;
  }
  return credentials ? &*credentials : nullptr;
}

std::string RegistryClient::Impl::bearer_token_locked(HttpHandle& h, const Challenge& ch,
                                                      const Credentials* cr) {
  const std::string realm = param(ch, "realm");
  const std::string service = param(ch, "service");
  std::string scope = param(ch, "scope");
  if (scope.empty()) scope = "repository:" + ref.repository + ":pull";
  const std::string key = realm + '\n' + service + '\n' + scope;
  auto it = tokens.find(key);
  if (it != tokens.end() && Clock::now() < it->second.refresh_at) return it->second.value;
  CachedToken t = fetch_token(h, realm, service, scope, cr);
  tokens[key] = t;
  return t.value;
}

CachedToken RegistryClient::Impl::fetch_token(HttpHandle& h, const std::string& realm,
                                              const std::string& service, const std::string& scope,
                                              const Credentials* cr) {
  const std::string scheme = url_scheme(realm);
  if (scheme != "http" && scheme != "https")
    throw AuthError("token request for " + ref.registry + ": bearer challenge has realm '" +
                    printable(realm, kMaxShown) + "', expected an http(s) URL");
  Call c;
  StringSink sink(kMaxTokenResponse, "token response from '" + printable(realm, kMaxShown) + "'",
                  StringSink::Overflow::kRegistry);
  c.sink = &sink;
  if (cr && !cr->identity_token.empty()) {
    // OAuth2 (distribution auth/oauth.md): exchange the refresh token docker login stored.
    refuse_plain_http(realm, ref.registry, "an identity token");
    c.method = "POST";
    c.url = realm;
    c.headers.push_back("Content-Type: application/x-www-form-urlencoded");
    c.body = "grant_type=refresh_token&client_id=benchrun&refresh_token=" +
             url_escape(cr->identity_token) + "&scope=" + url_escape(scope);
    if (!service.empty()) c.body += "&service=" + url_escape(service);
  } else {
    c.url = realm + (realm.find('?') == std::string::npos ? "?" : "&");
    if (!service.empty()) c.url += "service=" + url_escape(service) + "&";
    c.url += "scope=" + url_escape(scope);
    if (cr && (!cr->username.empty() || !cr->password.empty())) {
      refuse_plain_http(realm, ref.registry, "credentials");
      c.authorization = "Basic " + base64(cr->username + ":" + cr->password);
    }
  }
  CallResult r = execute(h, c);
  const long s = r.response.status;
  if (s == 401 || s == 403) {
    std::string msg = c.what() + ": " + status_text(r.response);
    if (!cr) msg += " (no credentials for " + ref.registry + ")";
    throw AuthError(msg, static_cast<int>(s));
  }
  if (s < 200 || s >= 300) fail(c, r);

  Json j = Json::parse(sink.body, nullptr, false);
  std::string token;
  if (j.is_object()) {
    token = field(j, "token");
    if (token.empty()) token = field(j, "access_token");
  }
  if (token.empty())
    throw AuthError(c.what() + ": token response has no token or access_token",
                    static_cast<int>(s));
  for (char ch : token)
    if (static_cast<unsigned char>(ch) < 0x21 || ch == 0x7f)
      throw AuthError(c.what() + ": token contains whitespace or control characters",
                      static_cast<int>(s));
  std::chrono::seconds lifetime = kDefaultTokenLifetime;
  if (auto e = j.find("expires_in"); e != j.end() && e->is_number() && e->get<double>() > 0)
    lifetime = std::chrono::seconds(static_cast<int64_t>(std::min(e->get<double>(), 1e9)));
  const std::chrono::seconds margin = std::min(kMaxTokenMargin, lifetime / 2);
  return {std::move(token), Clock::now() + lifetime - margin};
}

void RegistryClient::Impl::download(const Descriptor& blob, BlobTarget& target,
                                    const ProgressFn& progress) {
  if (blob.size < 0)
    throw ImageError("blob " + blob.digest.str() + ": negative size " + std::to_string(blob.size));
  Lease h(*this);
  BlobSink sink(blob, target, progress);
  Call c;
  c.url = base_url + "/v2/" + ref.repository + "/blobs/" + blob.digest.str();
  c.registry_auth = true;
  c.sink = &sink;
  CallResult r = execute(*h, c);
  const long s = r.response.status;
  if (s == 404) fail(c, r, "blob unknown: " + ref.repository + "@" + blob.digest.str() + ": ");
  if (s != 200 && s != 206) fail(c, r);
  sink.finish();
}

RegistryClient::RegistryClient(Reference ref, RegistryOptions options)
    : impl_(std::make_unique<Impl>(std::move(ref), std::move(options))) {}

RegistryClient::~RegistryClient() = default;

const std::string& RegistryClient::base_url() const { return impl_->base_url; }

ManifestResponse RegistryClient::get_manifest(const std::string& ref_or_digest) {
  std::optional<Digest> want;
  if (ref_or_digest.find(':') != std::string::npos)
    want = Digest::parse(ref_or_digest);
  else
    validate_tag(ref_or_digest);
  const std::string what = impl_->ref.repository + (want ? "@" : ":") + ref_or_digest;

  Impl::Lease h(*impl_);
  StringSink sink(kMaxManifestSize, "manifest " + what, StringSink::Overflow::kImage);
  Call c;
  c.url = impl_->base_url + "/v2/" + impl_->ref.repository + "/manifests/" + ref_or_digest;
  c.headers.push_back("Accept: " + media_type::accept_header());
  c.registry_auth = true;
  c.sink = &sink;
  CallResult r = impl_->execute(*h, c);
  const long s = r.response.status;
  if (s == 404) impl_->fail(c, r, "manifest unknown: " + what + ": ");
  if (s != 200) impl_->fail(c, r);

  ManifestResponse out;
  out.body = std::move(sink.body);
  const std::string* ct = r.response.header("content-type");
  out.content_type = ct ? strip_params(*ct) : "";
  out.digest = digest_of(out.body, want ? want->algorithm() : DigestAlgorithm::kSha256);
  if (want && out.digest != *want)
    throw DigestMismatch("manifest " + what + ": content hashes to " + out.digest.str() +
                         ", expected " + want->str());
  out.parsed = parse_manifest(out.body, out.content_type);
  return out;
}

void RegistryClient::head_manifest(const Digest& digest) {
  const std::string what = impl_->ref.repository + "@" + digest.str();
  Impl::Lease h(*impl_);
  Call c;
  c.method = "HEAD";
  c.url = impl_->base_url + "/v2/" + impl_->ref.repository + "/manifests/" + digest.str();
  c.headers.push_back("Accept: " + media_type::accept_header());
  c.registry_auth = true;
  CallResult r = impl_->execute(*h, c);
  const long s = r.response.status;
  if (s == 404) impl_->fail(c, r, "manifest unknown: " + what + ": ");
  if (s != 200) impl_->fail(c, r);
  // A registry that names another digest for this one is not serving what we have cached.
  const std::string* got = r.response.header("docker-content-digest");
  if (got && !got->empty() && *got != digest.str())
    throw DigestMismatch("manifest " + what + ": the registry answers with digest " +
                         printable(*got, 100));
}

void RegistryClient::fetch_blob(const Descriptor& blob, int fd, const ProgressFn& progress) {
  FdTarget target(fd, "blob " + blob.digest.str());
  impl_->download(blob, target, progress);
}

std::string RegistryClient::fetch_blob_bytes(const Descriptor& blob, size_t max_bytes) {
  if (blob.size < 0 || static_cast<uint64_t>(blob.size) > max_bytes)
    throw ImageError("blob " + blob.digest.str() + ": size " + std::to_string(blob.size) +
                     " exceeds the limit of " + std::to_string(max_bytes) + " bytes");
  StringTarget target;
  impl_->download(blob, target, {});
  return target.take();
}

}  // namespace benchrun::oci
