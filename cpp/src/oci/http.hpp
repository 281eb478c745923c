// http.hpp: one libcurl easy handle as an RAII object performing single HTTP exchanges
// (no redirects, no retries, no auth: the registry client decides those).
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace benchrun::oci {

// Transport settings shared by every request of one client.
struct HttpSettings {
  std::string user_agent;
  std::string ca_file;  // empty = libcurl's default CA bundle and path
  long connect_timeout_s = 30;
  long low_speed_timeout_s = 60;  // abort when slower than kLowSpeedLimit B/s for this long
};

struct HttpRequest {
  std::string method = "GET";  // GET, HEAD or POST
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  std::string body;                  // POST body
};

struct HttpResponse {
  long status = 0;
  std::string reason;  // reason phrase (may be empty on HTTP/2)
  std::vector<std::pair<std::string, std::string>>
      headers;               // names lowercased; final response only
  std::string redirect_url;  // for 3xx: the Location target resolved against the request URL
  std::string error_body;    // the first kMaxErrorBody bytes of a non-2xx body
  std::chrono::seconds retry_after{0};  // Retry-After (seconds or HTTP date), 0 when absent

  // The first header called name (lowercase), or nullptr.
  const std::string* header(std::string_view name) const;
};

// Receives the body of a 2xx response. Either hook may throw to abort the transfer: the exception
// is carried across libcurl and rethrown by HttpHandle::perform.
class BodySink {
 public:
  virtual ~BodySink() = default;
  // Called once the headers of a 2xx response are complete, before any body byte.
  virtual void on_headers(const HttpResponse&) {}
  virtual void on_data(const char* data, size_t n) = 0;
};

// What kind of transport failure an exchange ended with.
enum class TransportFailure {
  kNone,
  kTransient,     // refused or reset connection, timeout, transfer cut short: worth retrying
  kTlsHandshake,  // TLS handshake failed (e.g. "wrong version number": the peer speaks plain HTTP)
  kTlsTrust,      // the peer's certificate is not trusted (or a CA file is unusable)
  kNotHttp,       // the reply was not HTTP (e.g. a TLS peer answering a plain-HTTP request)
  kOther,
};

// The outcome of one exchange: a transport failure or a response.
struct HttpResult {
  TransportFailure failure = TransportFailure::kNone;
  std::string curl_error;  // libcurl's message when failure != kNone
  HttpResponse response;
  bool ok() const noexcept { return failure == TransportFailure::kNone; }
};

inline constexpr size_t kMaxErrorBody = 64 << 10;
inline constexpr long kLowSpeedLimit = 1024;

class HttpHandle {
 public:
  HttpHandle();  // initialises libcurl once per process
  ~HttpHandle();
  HttpHandle(const HttpHandle&) = delete;
  HttpHandle& operator=(const HttpHandle&) = delete;

  // One request/response. Sink gets the body of 2xx responses; other bodies go to error_body.
  // Returns transport errors in the result; rethrows whatever the sink threw. The handle keeps its
  // connection cache between calls, so reusing it reuses connections and TLS sessions.
  HttpResult perform(const HttpRequest& request, const HttpSettings& settings, BodySink* sink);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// "scheme://host:port" with the scheme and host lowercased and the default port made explicit;
// nullopt for a URL libcurl cannot parse. Two URLs may share credentials only if these are equal.
std::optional<std::string> url_origin(const std::string& url);
// The host[:port] of a URL as written ("[::1]:5000"), or "" when unparsable.
std::string url_authority(const std::string& url);
// The scheme of a URL, lowercased ("https"), or "" when unparsable.
std::string url_scheme(const std::string& url);
// Percent-encodes a query/form value.
std::string url_escape(std::string_view s);
// Standard reason phrase for a status code ("Service Unavailable"), "" when unknown.
std::string_view http_reason(long status);

}  // namespace benchrun::oci
