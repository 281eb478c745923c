// codec.hpp: private field encoding of the protocol (docs/protocol.md "Field encoding"): a Writer
// that builds a whole frame in one buffer and a bounds-checked Reader over a payload.
#pragma once

#include <cstddef>
#include <bit>
#include <cstdint>
#include <string>
#include <string_view>

#include "benchrun/common/error.hpp"
#include "benchrun/proto/frame.hpp"

namespace benchrun::proto::codec {

inline void put_le(char* out, uint64_t v, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

inline uint64_t get_le(const char* in, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v |= uint64_t{static_cast<unsigned char>(in[i])} << (8 * i);
  return v;
}

// Fills the 16-byte header at out. The caller has checked length <= kMaxPayload.
inline void put_header(char* out, FrameType type, uint32_t length) {
  put_le(out + 0, kMagic, 4);
  put_le(out + 4, kVersion, 2);
  put_le(out + 6, static_cast<uint16_t>(type), 2);
  put_le(out + 8, 0, 4);
  put_le(out + 12, length, 4);
}

// Appends fields after room for the header, so the finished frame needs no copy.
class Writer {
 public:
  explicit Writer(FrameType type) : type_(type), out_(kHeaderSize, '\0') {}

  void u8(uint8_t v) { put(v, 1); }
  void u16(uint16_t v) { put(v, 2); }
  void u32(uint32_t v) { put(v, 4); }
  void u64(uint64_t v) { put(v, 8); }
  void i32(int32_t v) { put(static_cast<uint32_t>(v), 4); }
  void f64(double v) { u64(std::bit_cast<uint64_t>(v)); }
  void boolean(bool v) { u8(v ? 1 : 0); }
  void bytes(std::string_view s) {
    // A string longer than a frame can never be sent; checking here keeps the u32 cast exact.
    if (s.size() > kMaxPayload) too_large();
    u32(static_cast<uint32_t>(s.size()));
    out_.append(s);
  }
  void count(size_t n) {
    if (n > kMaxPayload) too_large();
    u32(static_cast<uint32_t>(n));
  }

  // The whole frame. ProtocolError if the payload exceeds kMaxPayload.
  std::string finish() && {
    size_t length = out_.size() - kHeaderSize;
    if (length > kMaxPayload) too_large();
    put_header(out_.data(), type_, static_cast<uint32_t>(length));
    return std::move(out_);
  }

 private:
  void put(uint64_t v, size_t n) {
    size_t at = out_.size();
    out_.resize(at + n);
    put_le(out_.data() + at, v, n);
  }
  [[noreturn]] void too_large() const {
    throw ProtocolError("encode " + frame_type_name(static_cast<uint16_t>(type_)) +
                        ": payload exceeds the frame limit of " + std::to_string(kMaxPayload) +
                        " bytes (send the data in chunks)");
  }

  FrameType type_;
  std::string out_;
};

// Reads fields front to back; every read names its field, so errors say what was malformed.
class Reader {
 public:
  Reader(std::string_view payload, std::string_view what) : in_(payload), what_(what) {}

  uint8_t u8(std::string_view field) { return static_cast<uint8_t>(take(field, 1)); }
  uint16_t u16(std::string_view field) { return static_cast<uint16_t>(take(field, 2)); }
  uint32_t u32(std::string_view field) { return static_cast<uint32_t>(take(field, 4)); }
  uint64_t u64(std::string_view field) { return take(field, 8); }
  double f64(std::string_view field) { return std::bit_cast<double>(u64(field)); }
  int32_t i32(std::string_view field) {
    return static_cast<int32_t>(static_cast<uint32_t>(take(field, 4)));
  }
  bool boolean(std::string_view field) {
    uint8_t v = u8(field);
    if (v > 1) fail(field, "bool is " + std::to_string(v) + " (must be 0 or 1)");
    return v == 1;
  }
  std::string bytes(std::string_view field) {
    uint32_t n = u32(field);
    if (n > remaining())
      fail(field, "length " + std::to_string(n) + " exceeds the " + std::to_string(remaining()) +
                      " bytes left in the payload");
    std::string s(in_.substr(pos_, n));
    pos_ += n;
    return s;
  }
  // A list count, checked against the bytes left so a hostile count cannot make us reserve memory
  // the payload could never fill: each item takes at least min_item_size bytes.
  uint32_t count(std::string_view field, size_t min_item_size) {
    uint32_t n = u32(field);
    if (uint64_t{n} * min_item_size > remaining())
      fail(field, "count " + std::to_string(n) + " cannot fit in the " +
                      std::to_string(remaining()) + " bytes left in the payload");
    return n;
  }
  // Called after the last field: leftover bytes mean the peer and we disagree on the layout.
  void finish() const {
    if (remaining() != 0)
      throw ProtocolError("decode " + std::string(what_) + ": " + std::to_string(remaining()) +
                          " trailing bytes after the last field");
  }

  [[noreturn]] void fail(std::string_view field, const std::string& cause) const {
    throw ProtocolError("decode " + std::string(what_) + " field '" + std::string(field) +
                        "': " + cause);
  }

 private:
  size_t remaining() const { return in_.size() - pos_; }
  uint64_t take(std::string_view field, size_t n) {
    if (n > remaining())
      fail(field, "truncated (needs " + std::to_string(n) + " bytes, " +
                      std::to_string(remaining()) + " left in the payload)");
    uint64_t v = get_le(in_.data() + pos_, n);
    pos_ += n;
    return v;
  }

  std::string_view in_;
  std::string_view what_;
  size_t pos_ = 0;
};

}  // namespace benchrun::proto::codec
