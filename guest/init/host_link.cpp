// host_link.cpp: kernel command line options and opening the guest's end of the host channel.
#include "init/host_link.hpp"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <exception>
#include <thread>

#include "benchrun/common/error.hpp"
#include "benchrun/common/fs.hpp"
#include "benchrun/common/text.hpp"

namespace benchrun::guest {

namespace {

constexpr auto kRetryInterval = std::chrono::milliseconds(5);

}  // namespace

LinkOptions parse_link_options(const std::string& cmdline) {
  LinkOptions o;
  size_t pos = 0;
  while (pos < cmdline.size()) {
    size_t end = cmdline.find_first_of(" \t\n", pos);
    if (end == std::string::npos) end = cmdline.size();
    const std::string word = cmdline.substr(pos, end - pos);
    pos = end + 1;
    const size_t eq = word.find('=');
    if (eq == std::string::npos) continue;
    const std::string key = word.substr(0, eq), value = word.substr(eq + 1);
    if (key == "benchrun.transport") {
      if (value == "vsock") {
        o.transport = Transport::kVsock;
      } else if (value == "virtio-serial" || value == "virtio_serial") {
        o.transport = Transport::kVirtioSerial;
      } else {
        throw ConfigError("kernel command line: benchrun.transport='" + printable(value) +
                          "': expected virtio-serial or vsock");
      }
    } else if (key == "benchrun.port") {
      uint32_t port = 0;
      auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), port);
      if (ec != std::errc() || p != value.data() + value.size())
        throw ConfigError("kernel command line: benchrun.port='" + printable(value) +
                          "': not a port number");
      o.vsock_port = port;
    } else if (key == "benchrun.port_name") {
      if (value.empty() || value.find('/') != std::string::npos)
        throw ConfigError("kernel command line: benchrun.port_name='" + printable(value) +
                          "': not a port name");
      o.port_name = value;
    }
  }
  return o;
}

LinkOptions read_link_options(const std::string& cmdline_path) {
  return parse_link_options(read_file(cmdline_path, 64 << 10));
}

UniqueFd connect_host(const LinkOptions& options, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    try {
      if (options.transport == Transport::kVsock)
        return proto::vsock_connect(proto::kVsockHostCid, options.vsock_port, deadline);
      return proto::open_virtio_port(options.port_name);
    } catch (const Error&) {
      if (std::chrono::steady_clock::now() >= deadline) throw;
    }
    std::this_thread::sleep_for(kRetryInterval);
  }
}

void wait_for_hangup(int fd, std::chrono::milliseconds timeout) noexcept {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[4096];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return;
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return;
    // virtio-serial reports the host's disconnect as POLLHUP; a socket as EOF (or POLLHUP).
    if (p.revents & (POLLHUP | POLLERR | POLLNVAL)) return;
    ssize_t n = ::read(fd, buf, sizeof buf);  // the host sends nothing after run_config
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) return;
  }
}

}  // namespace benchrun::guest
