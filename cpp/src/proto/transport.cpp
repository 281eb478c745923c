// transport.cpp: obtaining the channel's stream fd: Unix sockets, AF_VSOCK, hybrid vsock, and the
// guest's virtio-serial port.
//
// Design: every fd is CLOEXEC. Listening sockets are non-blocking so accept_one can honour its
// deadline with poll(); connected fds are returned blocking (Channel makes its fd non-blocking).
// Hybrid vsock follows Firecracker's docs/vsock.md ("Host-Initiated Connections"); the reply is
// read one byte at a time so that no byte of the stream that follows it is consumed here.
// virtio-serial ports are found the way udev names them: /sys/class/virtio-ports/vportNpM/name
// holds the name given with `-device virtserialport,name=...`, and /dev/vportNpM is the device.
#include "benchrun/proto/transport.hpp"

#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string_view>
#include <vector>

#include "benchrun/common/dir.hpp"
#include "benchrun/common/eintr.hpp"
#include "benchrun/common/error.hpp"
#include "benchrun/common/fs.hpp"
#include "benchrun/common/text.hpp"
#include "proto/poll_deadline.hpp"

namespace benchrun::proto {

namespace {

constexpr size_t kMaxHybridReply = 64;

sockaddr_un unix_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) throw_errno(ENAMETOOLONG, "bind", path);
  std::memcpy(addr.sun_path, path.data(), path.size());
  return addr;
}

UniqueFd new_socket(int family, int flags, std::string_view what) {
  int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC | flags, 0);
  if (fd < 0) throw_errno("socket", what);
  return UniqueFd(fd);
}

void set_blocking(int fd, std::string_view what) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0)
    throw_errno("fcntl ~O_NONBLOCK", what);
}

// Completes a non-blocking connect() by the deadline; the fd is left blocking.
void finish_connect(int fd, int rc, Deadline deadline, std::string_view what) {
  if (rc != 0) {
    if (errno != EINPROGRESS && errno != EINTR) throw_errno("connect", what);
    if (detail::poll_until(fd, POLLOUT, deadline, what) == 0)
      throw DeadlineExceeded("connect '" + std::string(what) + "': not connected by the deadline");
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) throw_errno("getsockopt", what);
    if (err != 0) throw_errno(err, "connect", what);
  }
  set_blocking(fd, what);
}

// A socket file nobody accepts on is left over from an earlier run: connecting to it is refused.
void remove_stale_socket(const std::string& path, const sockaddr_un& addr) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) return;
  UniqueFd probe = new_socket(AF_UNIX, 0, path);
  if (::connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0)
    throw_errno(EADDRINUSE, "listen", path);
  if (errno != ECONNREFUSED) return;  // let bind() report whatever is wrong
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) throw_errno("unlink stale socket", path);
}

void write_all(int fd, std::string_view data, Deadline deadline, std::string_view what) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      done += static_cast<size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (detail::poll_until(fd, POLLOUT, deadline, what) == 0)
        throw DeadlineExceeded("send '" + std::string(what) + "': deadline passed");
    } else if (n < 0 && errno != EINTR) {
      throw_errno("send", what);
    }
  }
}

bool is_ok_reply(std::string_view line) {
  if (line.size() < 4 || line.substr(0, 3) != "OK ") return false;
  return std::all_of(line.begin() + 3, line.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

UniqueFd listen_unix(const std::string& path, int backlog) {
  sockaddr_un addr = unix_address(path);
  remove_stale_socket(path, addr);
  UniqueFd fd = new_socket(AF_UNIX, SOCK_NONBLOCK, path);
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
    throw_errno("bind", path);
  if (::listen(fd.get(), backlog) != 0) throw_errno("listen", path);
  return fd;
}

UniqueFd accept_one(int listen_fd, Deadline deadline) {
  const std::string what = "listening socket fd " + std::to_string(listen_fd);
  for (;;) {
    if (detail::poll_until(listen_fd, POLLIN, deadline, what) == 0)
      throw DeadlineExceeded("accept on " + what + ": no connection before the deadline");
    int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0) return UniqueFd(fd);
    // The connection may be gone again between poll and accept; wait for the next one.
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED)
      continue;
    throw_errno("accept", what);
  }
}

UniqueFd connect_unix(const std::string& path) {
  sockaddr_un addr = unix_address(path);
  UniqueFd fd = new_socket(AF_UNIX, 0, path);
  int rc = retry_eintr(
      [&] { return ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr); });
  if (rc != 0) throw_errno("connect", path);
  return fd;
}

UniqueFd hybrid_vsock_connect(const std::string& uds_path, uint32_t port, Deadline deadline) {
  const std::string what = uds_path + " port " + std::to_string(port);
  UniqueFd fd = connect_unix(uds_path);
  write_all(fd.get(), "CONNECT " + std::to_string(port) + "\n", deadline, uds_path);
  std::string line;
  for (;;) {
    if (detail::poll_until(fd.get(), POLLIN, deadline, uds_path) == 0)
      throw DeadlineExceeded("hybrid vsock connect '" + what + "': no reply before the deadline");
    char c;
    ssize_t n = ::recv(fd.get(), &c, 1, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      throw_errno("hybrid vsock connect", what);
    }
    if (n == 0)
      throw ProtocolError("hybrid vsock connect '" + what + "': the VMM closed the connection" +
                          (line.empty() ? "" : " after '" + printable(line) + "'") +
                          " (no listener on that port in the guest?)");
    if (c == '\n') break;
    line += c;
    if (line.size() >= kMaxHybridReply)
      throw ProtocolError("hybrid vsock connect '" + what + "': reply longer than " +
                          std::to_string(kMaxHybridReply) + " bytes: '" + printable(line) + "'");
  }
  if (!is_ok_reply(line))
    throw ProtocolError("hybrid vsock connect '" + what + "': refused, the VMM replied '" +
                        printable(line) + "' (expected 'OK <port>')");
  return fd;
}

UniqueFd vsock_connect(uint32_t cid, uint32_t port, Deadline deadline) {
  const std::string what = "vsock " + std::to_string(cid) + ":" + std::to_string(port);
  UniqueFd fd = new_socket(AF_VSOCK, SOCK_NONBLOCK, what);
  sockaddr_vm addr{};
  addr.svm_family = AF_VSOCK;
  addr.svm_cid = cid;
  addr.svm_port = port;
  int rc = ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  finish_connect(fd.get(), rc, deadline, what);
  return fd;
}

UniqueFd vsock_listen(uint32_t port, int backlog) {
  const std::string what = "vsock *:" + std::to_string(port);
  UniqueFd fd = new_socket(AF_VSOCK, SOCK_NONBLOCK, what);
  sockaddr_vm addr{};
  addr.svm_family = AF_VSOCK;
  addr.svm_cid = VMADDR_CID_ANY;
  addr.svm_port = port;
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
    throw_errno("bind", what);
  if (::listen(fd.get(), backlog) != 0) throw_errno("listen", what);
  return fd;
}

UniqueFd open_virtio_port(const std::string& name, const std::string& sysfs,
                          const std::string& dev_dir) {
  const std::string ports = sysfs + "/class/virtio-ports";
  std::vector<std::string> entries = list_dir(ports);
  std::sort(entries.begin(), entries.end());  // deterministic if two ports share a name
  for (const auto& entry : entries) {
    std::string port_name;
    try {
      port_name = read_file(ports + "/" + entry + "/name", 4096);
    } catch (const Error&) {
      continue;  // a port without a readable name is not the one we look for
    }
    while (!port_name.empty() && (port_name.back() == '\n' || port_name.back() == '\0'))
      port_name.pop_back();
    if (port_name != name) continue;
    const std::string dev = dev_dir + "/" + entry;
    int fd = ::open(dev.c_str(), O_RDWR | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) throw_errno("open virtio-serial port '" + name + "'", dev);
    return UniqueFd(fd);
  }
  throw_errno(ENOENT, "find virtio-serial port '" + name + "' in", ports);
}

}  // namespace benchrun::proto
