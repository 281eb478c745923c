// channel.hpp: frames over a stream fd (Unix socket, virtio-serial port, vsock) with deadlines and
// a cap on the total bytes a peer may send.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "benchrun/common/unique_fd.hpp"
#include "benchrun/proto/frame.hpp"

namespace benchrun::proto {

// The fd is switched to O_NONBLOCK (the channel owns it) so that no read or write can outlast a
// deadline. Writes use send(MSG_NOSIGNAL) on sockets and write() otherwise (a virtio-serial char
// device in the guest): a process giving the channel a pipe must ignore SIGPIPE.
class Channel {
 public:
  using Clock = std::chrono::steady_clock;
  // max_total: bytes the peer may send over the channel's life (ProtocolError beyond).
  // peer: how messages name the other side ("guest", "host").
  explicit Channel(UniqueFd fd, uint64_t max_total = UINT64_MAX, std::string peer = "peer");

  // Writes a whole frame (from encode_*). Blocks until written or the deadline passes
  // (DeadlineExceeded). EPIPE/ECONNRESET -> ProtocolError ("peer closed the channel"). A deadline
  // that passes part-way through a frame leaves the stream out of sync: later sends throw
  // ProtocolError.
  void send(std::string_view frame, Clock::time_point deadline = Clock::time_point::max());
  // The next frame. Deadline -> DeadlineExceeded; EOF -> ProtocolError ("guest closed the channel
  // before <expecting>"); malformed input -> ProtocolError. expecting names what the caller waits
  // for (e.g. "end-of-results") so that those messages say what was missing. DeadlineExceeded
  // loses nothing (a partial frame stays buffered): callers may wait in short slices and retry.
  Frame recv(Clock::time_point deadline = Clock::time_point::max(),
             std::string_view expecting = "the next frame");

  int fd() const { return fd_.get(); }
  uint64_t received_bytes() const { return received_; }

 private:
  UniqueFd fd_;
  uint64_t max_total_;
  std::string peer_;
  bool is_socket_ = false;
  bool send_broken_ = false;  // a send stopped inside a frame
  bool sent_any_ = false;     // a whole frame went out: the peer was there
  uint64_t received_ = 0;
  Decoder decoder_;
  std::string pending_;  // the last read; bytes from pending_pos_ on are not yet fed
  size_t pending_pos_ = 0;
};

}  // namespace benchrun::proto
