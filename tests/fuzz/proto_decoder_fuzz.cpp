// proto_decoder_fuzz.cpp: libFuzzer target for the host<->guest protocol decoder
// (docs/protocol.md).
//
// The input is treated as bytes from a hostile peer: the first byte picks how they are split into
// feed() calls (so partial headers and payloads are exercised), the second picks a frame type for
// the direct path, the rest is the stream. Every complete frame goes through its decode_*
// function, and what decodes must encode back to the same payload (the codec is canonical). The
// same bytes are also decoded directly as the payload of the picked type, so payload parsing is
// reached before the fuzzer has learnt the header. The only acceptable failure is ProtocolError;
// anything else (another exception, a crash, a sanitizer report, a decoder holding more than one
// frame) is a finding.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "benchrun/common/error.hpp"
#include "benchrun/proto/frame.hpp"
#include "benchrun/proto/messages.hpp"

namespace proto = benchrun::proto;

namespace {

// Decodes a frame and checks that re-encoding reproduces it exactly (the codec is canonical).
void decode_and_reencode(const proto::Frame& f) {
  std::string again;
  switch (f.type) {
    case proto::FrameType::kHello:
      again = proto::encode_hello(proto::decode_hello(f));
      break;
    case proto::FrameType::kRunConfig:
      again = proto::encode_run_config(proto::decode_run_config(f));
      break;
    case proto::FrameType::kFile:
      again = proto::encode_file(proto::decode_file(f));
      break;
    case proto::FrameType::kFileMissing:
      again = proto::encode_file_missing(proto::decode_file_missing(f));
      break;
    case proto::FrameType::kExit:
      again = proto::encode_exit(proto::decode_exit(f));
      break;
    case proto::FrameType::kMetrics:
      again = proto::encode_metrics(proto::decode_metrics(f));
      break;
    case proto::FrameType::kError:
      again = proto::encode_error(proto::decode_error(f));
      break;
    case proto::FrameType::kStdout:
      again = proto::encode_stdout(f.payload);
      break;
    case proto::FrameType::kStderr:
      again = proto::encode_stderr(f.payload);
      break;
    case proto::FrameType::kEnd:
      if (!f.payload.empty()) return;  // only from the direct path: Decoder refuses these
      again = proto::encode_end();
      break;
  }
  if (again.substr(proto::kHeaderSize) != f.payload) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const size_t step = size_t{data[0]} + 1;  // 1..256 bytes per feed() call
  const auto direct_type = static_cast<proto::FrameType>(data[1] % 10 + 1);
  const char* bytes = reinterpret_cast<const char*>(data + 2);
  size = size - 2;

  // One frame type per input for the direct path: exceptions are this target's main cost.
  try {
    decode_and_reencode({direct_type, std::string(bytes, size)});
  } catch (const benchrun::ProtocolError&) {
  }

  proto::Decoder decoder;
  try {
    size_t pos = 0;
    while (pos < size) {
      size_t end = pos + std::min(step, size - pos);
      while (pos < end) {
        pos += decoder.feed(bytes + pos, end - pos);
        if (decoder.buffered() > proto::kHeaderSize + proto::kMaxPayload) std::abort();
        while (auto frame = decoder.next()) {
          try {
            decode_and_reencode(*frame);
          } catch (const benchrun::ProtocolError&) {
            // A well-framed but invalid payload: rejected, and the stream may go on.
          }
        }
      }
    }
  } catch (const benchrun::ProtocolError&) {
    // A rejected header: the stream is out of sync, nothing more to do.
  }
  return 0;
}
