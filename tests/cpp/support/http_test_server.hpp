// http_test_server.hpp: a tiny threaded HTTP/1.1 server on a loopback address for client tests.
//
// Header-only because CMakeLists.txt builds tests/cpp/**/*_test.cpp only. One thread accepts; each
// connection gets a thread that serves keep-alive requests until the peer closes or the server
// stops. The handler runs on connection threads, so it must be thread-safe.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "benchrun/common/unique_fd.hpp"

namespace benchrun::test {

struct HttpTestRequest {
  size_t index = 0;  // arrival order on this server, from 0
  std::string method;
  std::string path;                            // with the query string
  std::map<std::string, std::string> headers;  // names lowercased
  std::string body;

  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
  bool has_header(const std::string& name) const { return headers.count(name) != 0; }
};

struct HttpTestResponse {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::optional<size_t> cut_after;  // send only this many body bytes, then close the connection
  bool close_delimited = false;     // no Content-Length: the body ends when the connection closes
};

using HttpTestHandler = std::function<HttpTestResponse(const HttpTestRequest&)>;

class HttpTestServer {
 public:
  explicit HttpTestServer(HttpTestHandler handler, const std::string& address = "127.0.0.1")
      : handler_(std::move(handler)), address_(address) {
    listen_fd_.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!listen_fd_) throw std::runtime_error("socket: " + std::string(std::strerror(errno)));
    int one = 1;
    ::setsockopt(listen_fd_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    if (::inet_pton(AF_INET, address.c_str(), &sa.sin_addr) != 1)
      throw std::runtime_error("bad test server address " + address);
    if (::bind(listen_fd_.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
        ::listen(listen_fd_.get(), 64) != 0)
      throw std::runtime_error("bind/listen " + address + ": " + std::strerror(errno));
    socklen_t len = sizeof sa;
    ::getsockname(listen_fd_.get(), reinterpret_cast<sockaddr*>(&sa), &len);
    port_ = ntohs(sa.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }

  ~HttpTestServer() { stop(); }
  HttpTestServer(const HttpTestServer&) = delete;
  HttpTestServer& operator=(const HttpTestServer&) = delete;

  // Stops accepting, ends every connection and joins all threads. Idempotent.
  void stop() {
    stop_ = true;
    if (acceptor_.joinable()) acceptor_.join();
    std::vector<std::thread> threads;
    {
      std::lock_guard<std::mutex> l(mu_);
      threads.swap(connections_);
    }
    for (auto& t : threads) t.join();
    listen_fd_.reset();
  }

  uint16_t port() const { return port_; }
  std::string authority() const { return address_ + ":" + std::to_string(port_); }
  std::string url() const { return "http://" + authority(); }

  std::vector<HttpTestRequest> requests() const {
    std::lock_guard<std::mutex> l(mu_);
    return log_;
  }
  // Requests whose path starts with prefix.
  size_t count(const std::string& prefix) const {
    std::lock_guard<std::mutex> l(mu_);
    size_t n = 0;
    for (const auto& r : log_) n += r.path.rfind(prefix, 0) == 0;
    return n;
  }

 private:
  static constexpr int kPollMs = 20;
  static constexpr auto kIdleLimit = std::chrono::seconds(20);

  void accept_loop() {
    while (!stop_) {
      pollfd p{listen_fd_.get(), POLLIN, 0};
      if (::poll(&p, 1, kPollMs) <= 0) continue;
      int fd = ::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      std::lock_guard<std::mutex> l(mu_);
      connections_.emplace_back([this, fd] { serve(UniqueFd(fd)); });
    }
  }

  // Waits for data; false on stop, idle timeout, EOF or error.
  bool read_more(int fd, std::string& buf) {
    auto deadline = std::chrono::steady_clock::now() + kIdleLimit;
    while (!stop_ && std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd, POLLIN, 0};
      int rc = ::poll(&p, 1, kPollMs);
      if (rc < 0 && errno != EINTR) return false;
      if (rc <= 0) continue;
      char chunk[16 << 10];
      ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
      if (n <= 0) return false;
      buf.append(chunk, static_cast<size_t>(n));
      return true;
    }
    return false;
  }

  static bool send_all(int fd, const char* data, size_t n) {
    while (n > 0) {
      ssize_t w = ::send(fd, data, n, MSG_NOSIGNAL);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return false;
      data += w;
      n -= static_cast<size_t>(w);
    }
    return true;
  }

  static std::string lower(std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  }

  static std::string trim(const std::string& s) {
    size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t\r");
    return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
  }

  static const char* reason(int status) {
    switch (status) {
      case 200:
        return "OK";
      case 206:
        return "Partial Content";
      case 301:
        return "Moved Permanently";
      case 302:
        return "Found";
      case 307:
        return "Temporary Redirect";
      case 401:
        return "Unauthorized";
      case 403:
        return "Forbidden";
      case 404:
        return "Not Found";
      case 416:
        return "Range Not Satisfiable";
      case 429:
        return "Too Many Requests";
      case 500:
        return "Internal Server Error";
      case 503:
        return "Service Unavailable";
      default:
        return "Status";
    }
  }

  void serve(UniqueFd conn) {
    std::string buf;
    for (;;) {
      size_t end;
      while ((end = buf.find("\r\n\r\n")) == std::string::npos) {
        if (!buf.empty() && !(buf[0] >= 'A' && buf[0] <= 'Z')) {  // not HTTP (e.g. a TLS hello)
          static constexpr char kBad[] = "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n";
          send_all(conn.get(), kBad, sizeof kBad - 1);
          return;
        }
        if (!read_more(conn.get(), buf)) return;
      }
      HttpTestRequest req;
      std::string head = buf.substr(0, end + 2);
      buf.erase(0, end + 4);
      size_t line_end = head.find("\r\n");
      std::string request_line = head.substr(0, line_end);
      size_t sp1 = request_line.find(' '), sp2 = request_line.rfind(' ');
      req.method = request_line.substr(0, sp1);
      req.path = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
      for (size_t pos = line_end + 2; pos < head.size();) {
        size_t next = head.find("\r\n", pos);
        std::string line = head.substr(pos, next - pos);
        pos = next + 2;
        size_t colon = line.find(':');
        if (colon != std::string::npos)
          req.headers[lower(trim(line.substr(0, colon)))] = trim(line.substr(colon + 1));
      }
      size_t body_len =
          req.has_header("content-length") ? std::stoul(req.header("content-length")) : 0;
      while (buf.size() < body_len)
        if (!read_more(conn.get(), buf)) return;
      req.body = buf.substr(0, body_len);
      buf.erase(0, body_len);
      {
        std::lock_guard<std::mutex> l(mu_);
        req.index = log_.size();
        log_.push_back(req);
      }

      HttpTestResponse resp;
      try {
        resp = handler_(req);
      } catch (const std::exception& e) {
        resp = {500, {}, std::string("test handler threw: ") + e.what()};
      }
      std::string out =
          "HTTP/1.1 " + std::to_string(resp.status) + " " + reason(resp.status) + "\r\n";
      for (const auto& [k, v] : resp.headers) out += k + ": " + v + "\r\n";
      const bool closing = resp.close_delimited || resp.cut_after.has_value();
      if (resp.close_delimited)
        out += "Connection: close\r\n";
      else
        out += "Content-Length: " + std::to_string(resp.body.size()) + "\r\n";
      out += "\r\n";
      size_t body_bytes = req.method == "HEAD" ? 0 : resp.body.size();
      if (resp.cut_after) body_bytes = std::min(body_bytes, *resp.cut_after);
      out.append(resp.body, 0, body_bytes);
      if (!send_all(conn.get(), out.data(), out.size()) || closing) {
        ::shutdown(conn.get(), SHUT_WR);
        return;
      }
    }
  }

  HttpTestHandler handler_;
  std::string address_;
  UniqueFd listen_fd_;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  mutable std::mutex mu_;
  std::vector<std::thread> connections_;  // guarded by mu_
  std::vector<HttpTestRequest> log_;      // guarded by mu_
};

}  // namespace benchrun::test
