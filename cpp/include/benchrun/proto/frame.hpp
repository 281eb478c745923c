// frame.hpp: the host<->guest wire format (docs/protocol.md): a fixed 16-byte little-endian header
// {magic, version, type, flags, length} and a bounded payload. One codec for host, guest and
// fuzzer.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace benchrun::proto {

inline constexpr uint32_t kMagic = 0x31505242;  // bytes "BRP1" on the wire
inline constexpr uint16_t kVersion = 2;
inline constexpr size_t kHeaderSize = 16;
inline constexpr uint32_t kMaxPayload = 1u << 20;  // hard cap of one frame's payload

enum class FrameType : uint16_t {
  kHello = 1,        // guest -> host, first frame
  kRunConfig = 2,    // host -> guest, answer to hello
  kStdout = 3,       // guest -> host, a chunk of the workload's stdout as produced
  kStderr = 4,       // guest -> host, a chunk of its stderr
  kFile = 5,         // guest -> host, a chunk of a collected output file
  kFileMissing = 6,  // guest -> host, an output file that could not be collected and why
  kExit = 7,         // guest -> host, the workload's exit status (after its metrics)
  kError = 8,        // guest -> host, a fatal error of the guest init (then end)
  kEnd = 9,          // guest -> host, end of results: collection is complete
  kMetrics = 10,     // guest -> host, what the guest measured: name -> value + unit
};

// Name of a frame type for messages ("stdout", "exit", ...); "type N" for unknown values.
std::string frame_type_name(uint16_t type);

struct Frame {
  FrameType type{};
  std::string payload;
};

// The full frame (header + payload). Throws ProtocolError if the payload exceeds kMaxPayload.
std::string encode_frame(FrameType type, std::string_view payload);

// Incremental decoder: feed bytes as they arrive, take whole frames out. A header is validated as
// soon as its 16 bytes are in (magic, version, flags == 0, known type, length <= max_payload, empty
// end), so hostile input is refused before its payload is buffered: memory stays below
// kHeaderSize + max_payload whatever the peer sends. Throws ProtocolError; the stream is out of
// sync after that, and every later feed() throws too.
class Decoder {
 public:
  // max_payload is clamped to kMaxPayload: a receiver may be stricter than the protocol, not laxer.
  explicit Decoder(uint32_t max_payload = kMaxPayload)
      : max_payload_(std::min(max_payload, kMaxPayload)) {}
  // Appends at most what completes the current frame; returns how many bytes of data were taken
  // (0 while a complete frame waits in next(); callers feed the rest after taking it out).
  size_t feed(const char* data, size_t size);
  // The next complete frame, if any.
  std::optional<Frame> next();
  // Bytes held for an incomplete frame (0 at a frame boundary).
  size_t buffered() const { return header_size_ + payload_.size(); }

 private:
  void check_header();

  uint32_t max_payload_;
  char header_[kHeaderSize] = {};
  size_t header_size_ = 0;  // bytes of header_ filled; kHeaderSize once it has been validated
  FrameType type_{};        // of the frame being read, valid once the header is
  uint32_t length_ = 0;     // its payload length
  std::string payload_;     // grows as bytes arrive, capacity at most length_
  std::optional<Frame> ready_;
  bool failed_ = false;
};

}  // namespace benchrun::proto
