// transport.hpp: how a channel's fd is obtained: a Unix socket (QEMU's virtio-serial chardev),
// a virtio-serial port inside the guest, AF_VSOCK, or Firecracker/Cloud Hypervisor's vsock over a
// Unix socket ("CONNECT <port>\n" -> "OK <assigned>\n"). The protocol is the same over all.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "benchrun/common/unique_fd.hpp"

namespace benchrun::proto {

using Deadline = std::chrono::steady_clock::time_point;

inline constexpr char kVirtioPortName[] = "benchrun.0";  // virtserialport name=
inline constexpr uint32_t kVsockPort = 1024;             // the guest dials the host CID on it
inline constexpr uint32_t kVsockHostCid = 2;             // VMADDR_CID_HOST

// Host side. A listening Unix stream socket at path (removed first if it is a stale socket: one
// nobody accepts on; a live one is EADDRINUSE). Listening sockets are O_NONBLOCK for accept_one.
UniqueFd listen_unix(const std::string& path, int backlog = 1);
// Accepts one connection; DeadlineExceeded if none arrives in time. The result is CLOEXEC.
UniqueFd accept_one(int listen_fd, Deadline deadline);
UniqueFd connect_unix(const std::string& path);

// Hybrid vsock (Firecracker docs/vsock.md, host-initiated): connect to the VMM's Unix socket, send
// "CONNECT <port>\n", expect "OK <number>\n" (ProtocolError with the reply otherwise; the VMM
// closing the socket, which it does when nothing listens on port, is a refusal too).
UniqueFd hybrid_vsock_connect(const std::string& uds_path, uint32_t port, Deadline deadline);

// AF_VSOCK. connect: to (cid, port); listen: on VMADDR_CID_ANY:port. SysError if the family is
// unavailable (no vsock transport loaded).
UniqueFd vsock_connect(uint32_t cid, uint32_t port, Deadline deadline);
UniqueFd vsock_listen(uint32_t port, int backlog = 1);

// Guest side: the virtio-serial port named name (/sys/class/virtio-ports/*/name), opened
// read-write from dev_dir. SysError naming what is missing (ENOENT if no port has that name yet:
// the name arrives from the device after the driver binds, so the guest init retries).
UniqueFd open_virtio_port(const std::string& name, const std::string& sysfs = "/sys",
                          const std::string& dev_dir = "/dev");

}  // namespace benchrun::proto
