// http.cpp: libcurl easy-handle wrapper: transport options, header/body callbacks, URL helpers.
#include "oci/http.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <exception>
#include <mutex>

#include "benchrun/common/error.hpp"

namespace benchrun::oci {

namespace {

constexpr long kReceiveBuffer = 512 << 10;  // large reads: fewer callbacks, fewer write(2)s
constexpr size_t kMaxHeaderBytes = 256 << 10;

void ensure_curl_global() {
  static std::once_flag once;
  static CURLcode rc = CURLE_OK;
  std::call_once(once, [] { rc = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (rc != CURLE_OK) throw Error(std::string("curl_global_init: ") + curl_easy_strerror(rc));
}

struct EasyDeleter {
  void operator()(CURL* h) const noexcept { curl_easy_cleanup(h); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const noexcept { curl_slist_free_all(l); }
};
struct UrlDeleter {
  void operator()(CURLU* u) const noexcept { curl_url_cleanup(u); }
};
struct CurlFree {
  void operator()(char* p) const noexcept { curl_free(p); }
};
using Slist = std::unique_ptr<curl_slist, SlistDeleter>;

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return s;
}

// State shared with the callbacks for one perform().
struct Exchange {
  HttpResponse* response;
  BodySink* sink;
  std::exception_ptr error;
  size_t header_bytes = 0;
  bool is_2xx() const { return response->status >= 200 && response->status < 300; }
};

// Status line "HTTP/1.1 206 Partial Content" starts a new response (after 1xx, all is replaced).
void parse_status_line(std::string_view line, HttpResponse& r) {
  r.headers.clear();
  r.reason.clear();
  r.status = 0;
  size_t sp = line.find(' ');
  if (sp == std::string_view::npos) return;
  std::string_view rest = line.substr(sp + 1);
  long status = 0;
  size_t i = 0;
  for (; i < rest.size() && i < 3 && std::isdigit(static_cast<unsigned char>(rest[i])); ++i)
    status = status * 10 + (rest[i] - '0');
  if (i == 3) r.status = status;
  if (i < rest.size()) r.reason = std::string(trim(rest.substr(i)));
}

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* x = static_cast<Exchange*>(user);
  const size_t len = size * n;
  x->header_bytes += len;
  if (x->header_bytes > kMaxHeaderBytes) return 0;  // abort: CURLE_WRITE_ERROR
  std::string_view line(data, len);
  try {
    if (line.rfind("HTTP/", 0) == 0) {
      parse_status_line(line, *x->response);
    } else if (trim(line).empty()) {
      // End of one response's headers; 1xx interim responses are followed by the real one.
      if (x->is_2xx() && x->sink) x->sink->on_headers(*x->response);
    } else {
      size_t colon = line.find(':');
      if (colon != std::string_view::npos)
        x->response->headers.emplace_back(lower(trim(line.substr(0, colon))),
                                          std::string(trim(line.substr(colon + 1))));
    }
  } catch (...) {
    x->error = std::current_exception();
    return 0;
  }
  return len;
}

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* x = static_cast<Exchange*>(user);
  const size_t len = size * n;
  if (x->is_2xx() && x->sink) {
    try {
      x->sink->on_data(data, len);
    } catch (...) {
      x->error = std::current_exception();
      return 0;
    }
    return len;
  }
  std::string& eb = x->response->error_body;
  if (eb.size() < kMaxErrorBody) eb.append(data, std::min(len, kMaxErrorBody - eb.size()));
  return len;  // the rest of an error body is drained and dropped (keeps the connection usable)
}

TransportFailure classify(CURLcode rc) {
  switch (rc) {
    case CURLE_OK:
      return TransportFailure::kNone;
    case CURLE_COULDNT_CONNECT:
    case CURLE_HTTP2:
    case CURLE_PARTIAL_FILE:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_HTTP2_STREAM:
      return TransportFailure::kTransient;
    case CURLE_SSL_CONNECT_ERROR:
      return TransportFailure::kTlsHandshake;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_INVALIDCERTSTATUS:
      return TransportFailure::kTlsTrust;
    case CURLE_UNSUPPORTED_PROTOCOL:  // "Received HTTP/0.9 when not allowed"
    case CURLE_WEIRD_SERVER_REPLY:
      return TransportFailure::kNotHttp;
    default:
      return TransportFailure::kOther;
  }
}

template <typename T>
void set(CURL* h, CURLoption opt, T value) {
  CURLcode rc = curl_easy_setopt(h, opt, value);
  if (rc != CURLE_OK) throw Error(std::string("curl_easy_setopt: ") + curl_easy_strerror(rc));
}

}  // namespace

const std::string* HttpResponse::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (k == name) return &v;
  return nullptr;
}

struct HttpHandle::Impl {
  std::unique_ptr<CURL, EasyDeleter> easy;
  char errbuf[CURL_ERROR_SIZE];
};

HttpHandle::HttpHandle() : impl_(std::make_unique<Impl>()) {
  ensure_curl_global();
  impl_->easy.reset(curl_easy_init());
  if (!impl_->easy) throw Error("curl_easy_init: out of memory");
}

HttpHandle::~HttpHandle() = default;

HttpResult HttpHandle::perform(const HttpRequest& request, const HttpSettings& settings,
                               BodySink* sink) {
  CURL* h = impl_->easy.get();
  // Reset clears per-request options but keeps the connection, DNS and TLS session caches.
  curl_easy_reset(h);
  impl_->errbuf[0] = '\0';

  HttpResult result;
  Exchange x{&result.response, sink, nullptr};

  set(h, CURLOPT_URL, request.url.c_str());
  set(h, CURLOPT_NOSIGNAL, 1L);
  set(h, CURLOPT_ERRORBUFFER, impl_->errbuf);
  set(h, CURLOPT_FOLLOWLOCATION, 0L);  // redirects are followed by the caller, host by host
#if LIBCURL_VERSION_NUM >= 0x075500
  set(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
  set(h, CURLOPT_PROTOCOLS, static_cast<long>(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  // HTTP/2 over TLS when this libcurl has it, HTTP/1.1 otherwise: failure here is not an error.
  (void)curl_easy_setopt(h, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_2TLS));
  set(h, CURLOPT_CONNECTTIMEOUT, settings.connect_timeout_s);
  set(h, CURLOPT_LOW_SPEED_LIMIT, kLowSpeedLimit);
  set(h, CURLOPT_LOW_SPEED_TIME, settings.low_speed_timeout_s);
  set(h, CURLOPT_TCP_KEEPALIVE, 1L);
  set(h, CURLOPT_BUFFERSIZE, kReceiveBuffer);
  if (!settings.user_agent.empty()) set(h, CURLOPT_USERAGENT, settings.user_agent.c_str());
  // CAINFO replaces libcurl's default bundle file; its default CA path (system certs) stays set.
  if (!settings.ca_file.empty()) set(h, CURLOPT_CAINFO, settings.ca_file.c_str());
  // No CURLOPT_ACCEPT_ENCODING: blob bytes must arrive exactly as stored to hash correctly. No
  // cookie engine either, so no cookie ever travels to a redirect target.

  if (request.method == "HEAD") {
    set(h, CURLOPT_NOBODY, 1L);
  } else if (request.method == "POST") {
    set(h, CURLOPT_POST, 1L);
    set(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
    set(h, CURLOPT_POSTFIELDS, request.body.c_str());
  } else {
    set(h, CURLOPT_HTTPGET, 1L);
  }

  Slist headers;
  auto add = [&](const std::string& line) {
    curl_slist* l = curl_slist_append(headers.get(), line.c_str());
    if (!l) throw Error("curl_slist_append: out of memory");
    (void)headers.release();  // l now owns the previous list
    headers.reset(l);
  };
  for (const auto& line : request.headers) add(line);
  if (request.method == "POST") add("Expect:");  // no 100-continue round trip
  if (headers) set(h, CURLOPT_HTTPHEADER, headers.get());

  set(h, CURLOPT_HEADERFUNCTION, &on_header);
  set(h, CURLOPT_HEADERDATA, &x);
  set(h, CURLOPT_WRITEFUNCTION, &on_body);
  set(h, CURLOPT_WRITEDATA, &x);

  CURLcode rc = curl_easy_perform(h);
  if (x.error) std::rethrow_exception(x.error);
  result.failure = classify(rc);
  if (rc != CURLE_OK) {
    result.curl_error = impl_->errbuf[0] ? impl_->errbuf : curl_easy_strerror(rc);
    if (rc == CURLE_WRITE_ERROR && x.header_bytes > kMaxHeaderBytes)  // our own abort
      result.curl_error = "response headers larger than 256 KiB";
    return result;
  }
  long status = 0;
  if (curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK && status)
    result.response.status = status;
  char* location = nullptr;
  if (curl_easy_getinfo(h, CURLINFO_REDIRECT_URL, &location) == CURLE_OK && location)
    result.response.redirect_url = location;
  curl_off_t retry_after = 0;
  if (curl_easy_getinfo(h, CURLINFO_RETRY_AFTER, &retry_after) == CURLE_OK && retry_after > 0)
    result.response.retry_after = std::chrono::seconds(retry_after);
  return result;
}

std::optional<std::string> url_origin(const std::string& url) {
  std::unique_ptr<CURLU, UrlDeleter> u(curl_url());
  if (!u || curl_url_set(u.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK) return std::nullopt;
  auto part = [&](CURLUPart p, unsigned flags) -> std::optional<std::string> {
    char* raw = nullptr;
    if (curl_url_get(u.get(), p, &raw, flags) != CURLUE_OK || !raw) return std::nullopt;
    std::unique_ptr<char, CurlFree> owned(raw);
    return lower(raw);
  };
  auto scheme = part(CURLUPART_SCHEME, 0);
  auto host = part(CURLUPART_HOST, 0);
  auto port = part(CURLUPART_PORT, CURLU_DEFAULT_PORT);
  if (!scheme || !host || !port) return std::nullopt;
  return *scheme + "://" + *host + ":" + *port;
}

std::string url_authority(const std::string& url) {
  std::unique_ptr<CURLU, UrlDeleter> u(curl_url());
  if (!u || curl_url_set(u.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK) return "";
  char* host = nullptr;
  if (curl_url_get(u.get(), CURLUPART_HOST, &host, 0) != CURLUE_OK || !host) return "";
  std::unique_ptr<char, CurlFree> owned_host(host);
  std::string out = host;
  char* port = nullptr;
  if (curl_url_get(u.get(), CURLUPART_PORT, &port, 0) == CURLUE_OK && port) {
    std::unique_ptr<char, CurlFree> owned_port(port);
    out += ":";
    out += port;
  }
  return out;
}

std::string url_scheme(const std::string& url) {
  size_t colon = url.find("://");
  return colon == std::string::npos ? "" : lower(std::string_view(url).substr(0, colon));
}

std::string url_escape(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string_view http_reason(long status) {
  switch (status) {
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 303:
      return "See Other";
    case 304:
      return "Not Modified";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 406:
      return "Not Acceptable";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 413:
      return "Content Too Large";
    case 415:
      return "Unsupported Media Type";
    case 416:
      return "Range Not Satisfiable";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "";
  }
}

}  // namespace benchrun::oci
