// frame_test.cpp: the frame header layout and the incremental Decoder (splits, limits, rejects).
#include "benchrun/proto/frame.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "benchrun/common/error.hpp"

using benchrun::ProtocolError;
using benchrun::proto::Decoder;
using benchrun::proto::encode_frame;
using benchrun::proto::Frame;
using benchrun::proto::frame_type_name;
using benchrun::proto::FrameType;
using benchrun::proto::kHeaderSize;
using benchrun::proto::kMaxPayload;
using benchrun::proto::kVersion;

namespace {

std::string le32(uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i) s[i] = static_cast<char>(v >> (8 * i));
  return s;
}

std::string le16(uint16_t v) {
  return std::string{static_cast<char>(v), static_cast<char>(v >> 8)};
}

std::string header(uint32_t magic, uint16_t version, uint16_t type, uint32_t flags,
                   uint32_t length) {
  return le32(magic) + le16(version) + le16(type) + le32(flags) + le32(length);
}

// Feeds everything, taking frames out as they complete.
std::vector<Frame> feed_all(Decoder& d, const std::string& bytes, size_t step) {
  std::vector<Frame> out;
  size_t pos = 0;
  while (pos < bytes.size()) {
    size_t n = std::min(step, bytes.size() - pos);
    size_t taken = d.feed(bytes.data() + pos, n);
    pos += taken;
    while (auto f = d.next()) out.push_back(std::move(*f));
    EXPECT_LE(d.buffered(), kHeaderSize + kMaxPayload);
  }
  return out;
}

// Feeds a header byte by byte and returns the ProtocolError's message, which must come on the
// 16th byte, before any payload.
std::string header_error(const std::string& hdr, uint32_t max_payload = kMaxPayload) {
  Decoder d(max_payload);
  for (size_t i = 0; i + 1 < hdr.size(); ++i) EXPECT_EQ(d.feed(&hdr[i], 1), 1u);
  try {
    d.feed(&hdr.back(), 1);
  } catch (const ProtocolError& e) {
    return e.what();
  }
  ADD_FAILURE() << "header accepted";
  return "";
}

const std::vector<std::pair<FrameType, std::string>>& sample_frames() {
  static const std::vector<std::pair<FrameType, std::string>> frames = {
      {FrameType::kHello, "h"},
      {FrameType::kRunConfig, std::string(3000, 'r')},
      {FrameType::kStdout, ""},
      {FrameType::kStdout, std::string("a\0b\xff", 4)},
      {FrameType::kStderr, std::string(70000, 'e')},
      {FrameType::kFile, "file"},
      {FrameType::kFileMissing, "missing"},
      {FrameType::kExit, std::string(50, '\x01')},
      {FrameType::kError, "err"},
      {FrameType::kEnd, ""},
  };
  return frames;
}

std::string sample_stream() {
  std::string s;
  for (const auto& [type, payload] : sample_frames()) s += encode_frame(type, payload);
  return s;
}

void expect_samples(const std::vector<Frame>& got) {
  const auto& want = sample_frames();
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i].type, want[i].first) << i;
    EXPECT_EQ(got[i].payload, want[i].second) << i;
  }
}

}  // namespace

TEST(ProtoFrame, HeaderLayoutIsLittleEndianBrp1) {
  std::string f = encode_frame(FrameType::kStderr, "xyz");
  std::string want("BRP1\x02\x00\x04\x00\x00\x00\x00\x00\x03\x00\x00\x00xyz", 19);
  EXPECT_EQ(f, want);
  EXPECT_EQ(encode_frame(FrameType::kEnd, {}).size(), kHeaderSize);
}

TEST(ProtoFrame, TypeNames) {
  EXPECT_EQ(frame_type_name(1), "hello");
  EXPECT_EQ(frame_type_name(2), "run_config");
  EXPECT_EQ(frame_type_name(6), "file_missing");
  EXPECT_EQ(frame_type_name(9), "end");
  EXPECT_EQ(frame_type_name(0), "type 0");
  EXPECT_EQ(frame_type_name(4242), "type 4242");
}

TEST(ProtoFrame, RoundTripsEveryTypeInOneFeed) {
  Decoder d;
  expect_samples(feed_all(d, sample_stream(), SIZE_MAX));
  EXPECT_EQ(d.buffered(), 0u);
}

TEST(ProtoFrame, RoundTripsByteByByte) {
  Decoder d;
  expect_samples(feed_all(d, sample_stream(), 1));
  EXPECT_EQ(d.buffered(), 0u);
}

TEST(ProtoFrame, RoundTripsInRandomSplits) {
  const std::string stream = sample_stream();
  std::mt19937 rng(12345);
  for (int round = 0; round < 200; ++round) {
    Decoder d;
    std::vector<Frame> got;
    size_t pos = 0;
    while (pos < stream.size()) {
      size_t n = std::uniform_int_distribution<size_t>(0, 40000)(rng);
      n = std::min(n, stream.size() - pos);
      // Feed the chunk until the decoder has taken all of it, as Channel does.
      size_t end = pos + n;
      while (pos < end) {
        pos += d.feed(stream.data() + pos, end - pos);
        while (auto f = d.next()) got.push_back(std::move(*f));
      }
    }
    expect_samples(got);
    EXPECT_EQ(d.buffered(), 0u);
  }
}

TEST(ProtoFrame, FeedTakesOnlyUpToTheEndOfTheFrame) {
  std::string two = encode_frame(FrameType::kStdout, "abc") + encode_frame(FrameType::kEnd, {});
  Decoder d;
  EXPECT_EQ(d.feed(two.data(), two.size()), kHeaderSize + 3);
  // A frame waits: nothing more is taken until it is out.
  EXPECT_EQ(d.feed(two.data() + kHeaderSize + 3, kHeaderSize), 0u);
  auto f = d.next();
  ASSERT_TRUE(f);
  EXPECT_EQ(f->payload, "abc");
  EXPECT_FALSE(d.next());
  EXPECT_EQ(d.feed(two.data() + kHeaderSize + 3, kHeaderSize), kHeaderSize);
  ASSERT_TRUE(d.next());
  EXPECT_EQ(d.feed(nullptr, 0), 0u);
}

TEST(ProtoFrame, TruncatedFrameStaysBuffered) {
  std::string f = encode_frame(FrameType::kStdout, "hello");
  for (size_t cut = 1; cut < f.size(); ++cut) {
    Decoder d;
    EXPECT_EQ(d.feed(f.data(), cut), cut);
    EXPECT_FALSE(d.next());
    EXPECT_EQ(d.buffered(), cut);
  }
}

TEST(ProtoFrame, MaxPayloadFrameRoundTrips) {
  std::string payload(kMaxPayload, 'm');
  std::string f = encode_frame(FrameType::kFile, payload);
  Decoder d;
  auto got = feed_all(d, f, 65536);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].payload, payload);
}

TEST(ProtoFrame, EncodeRefusesOversizedPayload) {
  std::string payload(kMaxPayload + 1, 'x');
  EXPECT_THROW(encode_frame(FrameType::kStdout, payload), ProtocolError);
}

TEST(ProtoFrame, RejectsOversizedLengthBeforeThePayload) {
  auto msg = header_error(header(0x31505242, kVersion, 3, 0, kMaxPayload + 1));
  EXPECT_NE(msg.find("stdout payload of 1048577 bytes exceeds the limit of 1048576"),
            std::string::npos)
      << msg;
  msg = header_error(header(0x31505242, kVersion, 3, 0, 0xffffffff));
  EXPECT_NE(msg.find("exceeds"), std::string::npos) << msg;
  // A receiver's own, stricter limit.
  msg = header_error(header(0x31505242, kVersion, 3, 0, 101), 100);
  EXPECT_NE(msg.find("limit of 100"), std::string::npos) << msg;
}

TEST(ProtoFrame, MaxPayloadIsClampedToTheProtocolLimit) {
  auto msg = header_error(header(0x31505242, kVersion, 3, 0, kMaxPayload + 1), UINT32_MAX);
  EXPECT_NE(msg.find("limit of 1048576"), std::string::npos) << msg;
}

TEST(ProtoFrame, RejectsBadMagic) {
  auto msg = header_error(header(0x31505243, 1, 3, 0, 0));
  EXPECT_NE(msg.find("bad magic 0x31505243"), std::string::npos) << msg;
  EXPECT_NE(header_error(std::string(16, '\0')).find("bad magic"), std::string::npos);
}

TEST(ProtoFrame, RejectsBadVersion) {
  auto msg = header_error(header(0x31505242, 3, 3, 0, 0));
  EXPECT_NE(msg.find("unsupported protocol version 3"), std::string::npos) << msg;
  EXPECT_NE(header_error(header(0x31505242, 1, 3, 0, 0)).find("version 1"), std::string::npos);
  EXPECT_NE(header_error(header(0x31505242, 0, 3, 0, 0)).find("version 0"), std::string::npos);
}

TEST(ProtoFrame, RejectsNonzeroFlags) {
  auto msg = header_error(header(0x31505242, kVersion, 7, 0x80000000, 0));
  EXPECT_NE(msg.find("nonzero flags 0x80000000 on frame type exit"), std::string::npos) << msg;
}

TEST(ProtoFrame, RejectsUnknownType) {
  EXPECT_NE(header_error(header(0x31505242, kVersion, 0, 0, 0)).find("unknown frame type 0"),
            std::string::npos);
  EXPECT_NE(header_error(header(0x31505242, kVersion, 11, 0, 0)).find("unknown frame type 11"),
            std::string::npos);
  EXPECT_NE(
      header_error(header(0x31505242, kVersion, 0xffff, 0, 0)).find("unknown frame type 65535"),
      std::string::npos);
}

TEST(ProtoFrame, RejectsEndWithPayload) {
  auto msg = header_error(header(0x31505242, kVersion, 9, 0, 1));
  EXPECT_NE(msg.find("end frame with a 1-byte payload"), std::string::npos) << msg;
}

TEST(ProtoFrame, StaysFailedAfterAnError) {
  Decoder d;
  std::string bad = header(0, 1, 3, 0, 0);
  EXPECT_THROW(d.feed(bad.data(), bad.size()), ProtocolError);
  std::string good = encode_frame(FrameType::kEnd, {});
  EXPECT_THROW(d.feed(good.data(), good.size()), ProtocolError);
}

TEST(ProtoFrame, FloodOfFramesKeepsMemoryBounded) {
  // 200k small frames and some maximal ones in 64 KiB reads, as a flooding guest would send them:
  // the decoder never holds more than one frame.
  std::string stream;
  for (int i = 0; i < 200000; ++i) stream += encode_frame(FrameType::kStdout, std::to_string(i));
  for (int i = 0; i < 3; ++i)
    stream += encode_frame(FrameType::kStderr, std::string(kMaxPayload, 'z'));
  Decoder d;
  size_t frames = 0, max_buffered = 0, pos = 0;
  while (pos < stream.size()) {
    size_t end = std::min(stream.size(), pos + 65536);
    while (pos < end) {
      pos += d.feed(stream.data() + pos, end - pos);
      max_buffered = std::max(max_buffered, d.buffered());
      while (auto f = d.next()) ++frames;
    }
  }
  EXPECT_EQ(frames, 200003u);
  EXPECT_LE(max_buffered, kHeaderSize + kMaxPayload);
  EXPECT_EQ(d.buffered(), 0u);
}
