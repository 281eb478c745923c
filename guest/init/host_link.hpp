// host_link.hpp: how init reaches the host: the transport named on the kernel command line, and
// the connection itself (the protocol on top is the same over each).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "benchrun/common/unique_fd.hpp"
#include "benchrun/proto/transport.hpp"

namespace benchrun::guest {

enum class Transport { kVirtioSerial, kVsock };

struct LinkOptions {
  Transport transport = Transport::kVirtioSerial;
  std::string port_name = proto::kVirtioPortName;  // QEMU virtserialport name=
  uint32_t vsock_port = proto::kVsockPort;         // AF_VSOCK port on the host
};

// From the kernel command line: benchrun.transport=virtio-serial|vsock, benchrun.port=<n> (vsock),
// benchrun.port_name=<name> (virtio-serial). Unknown values: ConfigError.
LinkOptions parse_link_options(const std::string& cmdline);
LinkOptions read_link_options(const std::string& cmdline_path = "/proc/cmdline");

// Opens the link, retrying until timeout: the virtio-serial port appears in sysfs and /dev a
// little after virtio_console is loaded, and the vsock transport may not be ready at once. Throws
// the last error seen (SysError / ProtocolError) once the time is up.
UniqueFd connect_host(const LinkOptions& options, std::chrono::milliseconds timeout);

// After end: waits (bounded) until the host hangs up. A write to the channel returns once the
// bytes are queued to the device (the channel's fd is non-blocking), not once QEMU has passed them
// on: powering off before the host has read everything could lose the last frames, so the host
// closes its end when it has read end, and only then do we power off. Never throws.
void wait_for_hangup(int fd, std::chrono::milliseconds timeout) noexcept;

}  // namespace benchrun::guest
