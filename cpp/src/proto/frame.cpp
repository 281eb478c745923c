// frame.cpp: frame header encoding and the incremental, memory-bounded decoder.
//
// Design: the decoder is the first code to touch bytes from the guest, which is untrusted, so it
// checks the fixed header before it buffers anything of the payload, and grows the payload buffer
// with what arrives, never beyond the declared length (itself bounded by max_payload). It takes
// bytes only up to the end of the current frame, so the caller keeps the rest and the decoder
// never holds more than one frame.
#include "benchrun/proto/frame.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "benchrun/common/error.hpp"
#include "proto/codec.hpp"

namespace benchrun::proto {

namespace {

bool known_type(uint16_t type) {
  return type >= static_cast<uint16_t>(FrameType::kHello) &&
         type <= static_cast<uint16_t>(FrameType::kMetrics);
}

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

}  // namespace

std::string frame_type_name(uint16_t type) {
  switch (static_cast<FrameType>(type)) {
    case FrameType::kHello:
      return "hello";
    case FrameType::kRunConfig:
      return "run_config";
    case FrameType::kStdout:
      return "stdout";
    case FrameType::kStderr:
      return "stderr";
    case FrameType::kFile:
      return "file";
    case FrameType::kFileMissing:
      return "file_missing";
    case FrameType::kExit:
      return "exit";
    case FrameType::kError:
      return "error";
    case FrameType::kEnd:
      return "end";
    case FrameType::kMetrics:
      return "metrics";
  }
  return "type " + std::to_string(type);
}

std::string encode_frame(FrameType type, std::string_view payload) {
  if (payload.size() > kMaxPayload)
    throw ProtocolError("encode " + frame_type_name(static_cast<uint16_t>(type)) + ": payload of " +
                        std::to_string(payload.size()) + " bytes exceeds the frame limit of " +
                        std::to_string(kMaxPayload) + " (send the data in chunks)");
  std::string out(kHeaderSize + payload.size(), '\0');
  codec::put_header(out.data(), type, static_cast<uint32_t>(payload.size()));
  if (!payload.empty()) std::memcpy(out.data() + kHeaderSize, payload.data(), payload.size());
  return out;
}

void Decoder::check_header() {
  uint32_t magic = static_cast<uint32_t>(codec::get_le(header_ + 0, 4));
  uint16_t version = static_cast<uint16_t>(codec::get_le(header_ + 4, 2));
  uint16_t type = static_cast<uint16_t>(codec::get_le(header_ + 6, 2));
  uint32_t flags = static_cast<uint32_t>(codec::get_le(header_ + 8, 4));
  uint32_t length = static_cast<uint32_t>(codec::get_le(header_ + 12, 4));
  auto fail = [](const std::string& cause) -> void {
    throw ProtocolError("decode frame header: " + cause);
  };
  if (magic != kMagic)
    fail("bad magic " + hex32(magic) + " (expected " + hex32(kMagic) +
         " 'BRP1': the peer does not speak this protocol or the stream is out of sync)");
  if (version != kVersion)
    fail("unsupported protocol version " + std::to_string(version) + " (this build speaks " +
         std::to_string(kVersion) + ")");
  if (!known_type(type)) fail("unknown frame type " + std::to_string(type));
  std::string name = frame_type_name(type);
  if (flags != 0) fail("nonzero flags " + hex32(flags) + " on frame type " + name);
  if (length > max_payload_)
    fail(name + " payload of " + std::to_string(length) + " bytes exceeds the limit of " +
         std::to_string(max_payload_));
  if (type == static_cast<uint16_t>(FrameType::kEnd) && length != 0)
    fail("end frame with a " + std::to_string(length) + "-byte payload (must be empty)");
  type_ = static_cast<FrameType>(type);
  length_ = length;
  payload_.clear();
}

size_t Decoder::feed(const char* data, size_t size) {
  if (failed_)
    throw ProtocolError("decode frame: the stream is out of sync after an earlier error");
  if (ready_ || size == 0) return 0;
  size_t taken = 0;
  if (header_size_ < kHeaderSize) {
    size_t n = std::min(size, kHeaderSize - header_size_);
    std::memcpy(header_ + header_size_, data, n);
    header_size_ += n;
    taken += n;
    if (header_size_ < kHeaderSize) return taken;
    try {
      check_header();
    } catch (...) {
      failed_ = true;
      throw;
    }
  }
  size_t n = std::min(size - taken, size_t{length_} - payload_.size());
  // Grow by doubling but never past the declared length: memory follows the bytes that actually
  // arrived (16 bytes claiming 1 MiB cost nothing) and never exceeds one frame.
  // (reserve() on a non-empty string may round up to twice its capacity; a fresh one is exact.)
  size_t need = payload_.size() + n;
  if (need > payload_.capacity()) {
    std::string grown;
    grown.reserve(std::min(size_t{length_}, std::max(need, 2 * payload_.capacity())));
    grown.append(payload_);
    payload_.swap(grown);
  }
  payload_.append(data + taken, n);
  taken += n;
  if (payload_.size() == length_) {
    ready_ = Frame{type_, std::move(payload_)};
    payload_ = std::string();  // a moved-from string is valid but unspecified: make it empty
    header_size_ = 0;
    length_ = 0;
  }
  return taken;
}

std::optional<Frame> Decoder::next() {
  std::optional<Frame> out = std::move(ready_);
  ready_.reset();
  return out;
}

}  // namespace benchrun::proto
