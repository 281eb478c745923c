// channel.hpp: frames over a stream fd (Unix socket, virtio-serial port, vsock) with deadlines and
// a cap on the total bytes a peer may send.
#pragma once

#include <chrono>
#include <cstdint>
#include <string_view>

#include "benchrun/common/unique_fd.hpp"
#include "benchrun/proto/frame.hpp"

namespace benchrun::proto {

class Channel {
 public:
  using Clock = std::chrono::steady_clock;
  // max_total: bytes the peer may send over the channel's life (ProtocolError beyond).
  explicit Channel(UniqueFd fd, uint64_t max_total = UINT64_MAX);

  // Writes a whole frame (from encode_*). Blocks until written or the deadline passes
  // (DeadlineExceeded). EPIPE/ECONNRESET -> ProtocolError ("peer closed the channel").
  void send(std::string_view frame, Clock::time_point deadline = Clock::time_point::max());
  // The next frame. Deadline -> DeadlineExceeded; EOF -> ProtocolError ("peer closed the channel
  // before ..."); malformed input -> ProtocolError.
  Frame recv(Clock::time_point deadline = Clock::time_point::max());

  int fd() const { return fd_.get(); }
  uint64_t received_bytes() const { return received_; }

 private:
  UniqueFd fd_;
  uint64_t max_total_;
  uint64_t received_ = 0;
  Decoder decoder_;
  std::string pending_;  // read but not yet fed (bytes after a complete frame)
};

}  // namespace benchrun::proto
