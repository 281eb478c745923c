// channel.cpp: frames over a non-blocking stream fd, with deadlines and a total-bytes cap.
//
// Design: one poll() per wait, non-blocking reads of at most kChunk bytes and a Decoder that takes
// bytes only up to the end of the current frame; the unread rest of the last read waits in
// pending_. Memory is therefore bounded by kChunk + one frame whatever the peer sends, and the
// max_total cap is checked on every read, so a flooding peer is cut off early. The fd may be a
// socket or a character device (virtio-serial port in the guest, which has no send()), so writes
// use send(MSG_NOSIGNAL) on sockets and plain write() otherwise.
#include "benchrun/proto/channel.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "benchrun/common/error.hpp"
#include "proto/codec.hpp"
#include "proto/poll_deadline.hpp"

namespace benchrun::proto {

namespace {

constexpr size_t kChunk = 64 * 1024;

// The type named in a frame's header, for messages about a frame being sent.
std::string frame_name(std::string_view frame) {
  if (frame.size() < kHeaderSize) return "frame";
  return frame_type_name(static_cast<uint16_t>(codec::get_le(frame.data() + 6, 2))) + " frame";
}

}  // namespace

Channel::Channel(UniqueFd fd, uint64_t max_total, std::string peer)
    : fd_(std::move(fd)), max_total_(max_total), peer_(std::move(peer)) {
  struct stat st;
  if (::fstat(fd_.get(), &st) != 0) throw_errno("fstat", "channel to " + peer_);
  is_socket_ = S_ISSOCK(st.st_mode);
  int flags = ::fcntl(fd_.get(), F_GETFL);
  if (flags < 0 || ::fcntl(fd_.get(), F_SETFL, flags | O_NONBLOCK) != 0)
    throw_errno("fcntl O_NONBLOCK", "channel to " + peer_);
}

void Channel::send(std::string_view frame, Clock::time_point deadline) {
  const std::string what = "channel to " + peer_;
  if (send_broken_)
    throw ProtocolError(what +
                        ": an earlier send stopped inside a frame, the stream is out of sync");
  size_t done = 0;
  while (done < frame.size()) {
    const char* p = frame.data() + done;
    size_t left = frame.size() - done;
    ssize_t n = is_socket_ ? ::send(fd_.get(), p, left, MSG_NOSIGNAL) : ::write(fd_.get(), p, left);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    int err = n == 0 ? EPIPE : errno;  // a write of 0 bytes to a stream means it can take no more
    if (err == EINTR) continue;
    if (err == EPIPE || err == ECONNRESET)
      throw ProtocolError(what + ": " + peer_ + " closed the channel while we sent the " +
                          frame_name(frame));
    if (err != EAGAIN && err != EWOULDBLOCK) throw_errno(err, "write", what);
    short revents = detail::poll_until(fd_.get(), POLLOUT, deadline, what);
    if (revents == 0) {
      send_broken_ = done > 0;
      throw DeadlineExceeded(what + ": deadline passed while sending the " + frame_name(frame) +
                             " (" + std::to_string(done) + " of " + std::to_string(frame.size()) +
                             " bytes written)");
    }
    // A virtio-serial port whose host side is gone reports POLLHUP and refuses writes with
    // EAGAIN forever; without this the loop would spin until the deadline. Before the first
    // frame the host side may not be connected *yet* (QEMU's "port open" reaches the guest
    // after init opened the port, seen on a loaded host): wait for it until the deadline.
    if ((revents & POLLHUP) && !(revents & POLLOUT)) {
      if (!is_socket_ && !sent_any_ && Clock::now() < deadline) {
        ::usleep(10'000);
        continue;
      }
      throw ProtocolError(what + ": " + peer_ + " closed the channel while we sent the " +
                          frame_name(frame));
    }
  }
  sent_any_ = true;
}

Frame Channel::recv(Clock::time_point deadline, std::string_view expecting) {
  const std::string what = "channel to " + peer_;
  for (;;) {
    if (pending_pos_ < pending_.size())
      pending_pos_ += decoder_.feed(pending_.data() + pending_pos_, pending_.size() - pending_pos_);
    if (auto frame = decoder_.next()) return std::move(*frame);
    // The decoder took all of pending_ without completing a frame: read more.
    if (detail::poll_until(fd_.get(), POLLIN, deadline, what) == 0)
      throw DeadlineExceeded(what + ": deadline passed while waiting for " +
                             std::string(expecting) + " (" + std::to_string(received_) +
                             " bytes received)");
    // Read at most one byte past the cap, so exceeding it is noticed without reading more.
    size_t want = kChunk;
    if (max_total_ - received_ < kChunk) want = static_cast<size_t>(max_total_ - received_) + 1;
    pending_.resize(want);
    pending_pos_ = 0;
    ssize_t n = ::read(fd_.get(), pending_.data(), want);
    pending_.resize(n > 0 ? static_cast<size_t>(n) : 0);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      if (errno == ECONNRESET)
        throw ProtocolError(what + ": " + peer_ + " reset the connection before " +
                            std::string(expecting));
      throw_errno("read", what);
    }
    if (n == 0) {
      if (decoder_.buffered() == 0)
        throw ProtocolError(what + ": " + peer_ + " closed the channel before " +
                            std::string(expecting) + " (" + std::to_string(received_) +
                            " bytes received)");
      throw ProtocolError(what + ": " + peer_ + " closed the channel in the middle of a frame (" +
                          std::to_string(decoder_.buffered()) + " bytes of it received) while " +
                          "we waited for " + std::string(expecting));
    }
    received_ += static_cast<uint64_t>(n);
    if (received_ > max_total_)
      throw ProtocolError(what + ": " + peer_ + " sent more than the " +
                          std::to_string(max_total_) + " bytes allowed over the channel");
  }
}

}  // namespace benchrun::proto
