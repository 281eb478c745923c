// decompress.cpp: streaming layer decompressors (none, gzip via ISA-L or zlib, zstd) over an fd.
//
// Design note. A layer blob is one stream that must be decoded whole, exactly like `gzip -d` /
// `zstd -d` would: gzip (RFC 1952 §2.2) allows several members back to back, and eStargz layers are
// made of thousands of them, so after a member's trailer (CRC32 + ISIZE, verified by both engines)
// decoding restarts on the bytes that follow; anything after the last member that is not another
// valid member is an error, never silently ignored, because the diff_id must cover every byte the
// tar reader saw (zero padding too: GNU gzip merely warns, Go's compress/gzip in containerd
// rejects it). zstd (RFC 8878 §3) concatenates frames the same way; skippable frames (zstd:chunked
// keeps its manifest in one) are consumed by libzstd without output. A stream that ends inside a
// member/frame is "truncated". Input is read in 256 KiB blocks (fewer syscalls; ISA-L is fastest
// on large buffers) and output goes straight into the caller's buffer.
#include "benchrun/oci/decompress.hpp"

#include <isa-l/igzip_lib.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <memory>
#include <string>

#include "benchrun/common/eintr.hpp"
#include "benchrun/common/error.hpp"

namespace benchrun::oci {

namespace {

constexpr size_t kInputBlock = 256 * 1024;

// The compressed source: a borrowed fd and one big input buffer, refilled when drained.
class FdSource {
 public:
  explicit FdSource(int fd) : fd_(fd), buf_(new uint8_t[kInputBlock]) {}

  // Reads the next block; returns the byte count, 0 at end of file.
  size_t refill() {
    ssize_t n = retry_eintr([&] { return ::read(fd_, buf_.get(), kInputBlock); });
    if (n < 0) throw_errno("read", "compressed layer stream");
    if (n == 0) eof_ = true;
    return static_cast<size_t>(n);
  }
  uint8_t* data() noexcept { return buf_.get(); }
  bool eof() const noexcept { return eof_; }

 private:
  int fd_;
  std::unique_ptr<uint8_t[]> buf_;
  bool eof_ = false;
};

[[noreturn]] void fail(std::string_view format, std::string_view cause) {
  throw ImageError("decompress " + std::string(format) + " layer: " + std::string(cause));
}

// The input ended inside a member. Bytes after a complete member that never produced output are
// more likely trailing garbage (e.g. zero padding) than a cut-off member: say both.
std::string truncated_cause(uint64_t members, bool member_output) {
  if (members > 0 && !member_output)
    return "trailing data after gzip member " + std::to_string(members) +
           " is not a complete gzip member (garbage or truncated)";
  return "stream is truncated (ends inside gzip member " + std::to_string(members + 1) + ")";
}

// ---------------------------------------------------------------------------------------------
class PassthroughDecompressor final : public Decompressor {
 public:
  explicit PassthroughDecompressor(int fd) : fd_(fd) {}
  size_t read(void* buf, size_t len) override {
    ssize_t n = retry_eintr([&] { return ::read(fd_, buf, len); });
    if (n < 0) throw_errno("read", "layer stream");
    return static_cast<size_t>(n);
  }

 private:
  int fd_;
};

// ---------------------------------------------------------------------------------------------
class ZlibGzipDecompressor final : public Decompressor {
 public:
  explicit ZlibGzipDecompressor(int fd) : src_(fd) {
    // 16 + MAX_WBITS: gzip wrapper only (a zlib or raw stream in a gzip layer is an error).
    if (inflateInit2(&z_, 16 + MAX_WBITS) != Z_OK) fail("gzip", "zlib inflateInit2 failed");
  }
  ~ZlibGzipDecompressor() override { inflateEnd(&z_); }

  size_t read(void* buf, size_t len) override {
    if (done_ || len == 0) return 0;
    z_.next_out = static_cast<Bytef*>(buf);
    // zlib counts in uInt; a caller buffer above 4 GiB is simply filled in part.
    z_.avail_out = static_cast<uInt>(std::min<size_t>(len, UINT32_MAX));
    const uInt out_size = z_.avail_out;
    while (z_.avail_out > 0) {
      if (z_.avail_in == 0 && !src_.eof()) {
        z_.avail_in = static_cast<uInt>(src_.refill());
        z_.next_in = src_.data();
      }
      if (!in_member_) {
        if (z_.avail_in == 0) {  // clean end: the last member ended with the input
          if (members_ == 0) fail("gzip", "stream is empty");
          done_ = true;
          break;
        }
        if (inflateReset(&z_) != Z_OK) fail("gzip", "zlib inflateReset failed");
        in_member_ = true;
        member_output_ = false;
      }
      uInt out_before = z_.avail_out;
      int rc = inflate(&z_, Z_NO_FLUSH);
      if (z_.avail_out != out_before) member_output_ = true;
      if (rc == Z_STREAM_END) {  // trailer (CRC32, ISIZE) verified
        in_member_ = false;
        ++members_;
        continue;
      }
      if (rc == Z_OK) continue;
      if (rc == Z_BUF_ERROR) {  // no progress possible: zlib wants input
        if (z_.avail_in == 0 && src_.eof()) fail("gzip", truncated_cause(members_, member_output_));
        continue;
      }
      std::string cause = z_.msg ? z_.msg : ("zlib error " + std::to_string(rc));
      if (members_ > 0 && !member_output_)
        cause = "trailing data after gzip member " + std::to_string(members_) +
                " is not a gzip member (" + cause + ")";
      fail("gzip", cause);
    }
    return out_size - z_.avail_out;
  }

 private:
  FdSource src_;
  z_stream z_{};
  bool in_member_ = false;
  bool member_output_ = false;
  bool done_ = false;
  uint64_t members_ = 0;
};

// ---------------------------------------------------------------------------------------------
const char* isal_error_text(int rc) {
  switch (rc) {
    case ISAL_INVALID_BLOCK:
      return "invalid deflate block";
    case ISAL_INVALID_SYMBOL:
      return "invalid deflate symbol";
    case ISAL_INVALID_LOOKBACK:
      return "invalid deflate back-reference distance";
    case ISAL_INVALID_WRAPPER:
      return "invalid gzip header";
    case ISAL_UNSUPPORTED_METHOD:
      return "unsupported gzip compression method";
    case ISAL_INCORRECT_CHECKSUM:
      return "gzip CRC32/ISIZE mismatch";
    case ISAL_NEED_DICT:
      return "stream needs a preset dictionary";
    default:
      return "ISA-L inflate error";
  }
}

class IsalGzipDecompressor final : public Decompressor {
 public:
  // inflate_state holds a 64 KiB history buffer: keep it on the heap.
  explicit IsalGzipDecompressor(int fd) : src_(fd), st_(new inflate_state) {
    isal_inflate_init(st_.get());
  }

  size_t read(void* buf, size_t len) override {
    if (done_ || len == 0) return 0;
    inflate_state& st = *st_;
    st.next_out = static_cast<uint8_t*>(buf);
    st.avail_out = static_cast<uint32_t>(std::min<size_t>(len, UINT32_MAX));
    const uint32_t out_size = st.avail_out;
    while (st.avail_out > 0) {
      // ISA-L copies input it cannot finish into its own state, so an empty next_in can be
      // refilled at any time.
      if (st.avail_in == 0 && !src_.eof()) {
        st.avail_in = static_cast<uint32_t>(src_.refill());
        st.next_in = src_.data();
      }
      if (!in_member_) {
        if (st.avail_in == 0) {  // clean end: the last member ended with the input
          if (members_ == 0) fail("gzip", "stream is empty");
          done_ = true;
          break;
        }
        start_member();
      }
      uint32_t out_before = st.avail_out;
      uint32_t in_before = st.avail_in;
      int rc = isal_inflate(&st);
      if (rc < 0) {
        std::string cause = isal_error_text(rc);
        if (members_ > 0 && !member_output_)
          cause = "trailing data after gzip member " + std::to_string(members_) +
                  " is not a gzip member (" + cause + ")";
        fail("gzip", cause);
      }
      if (st.avail_out != out_before) member_output_ = true;
      if (st.block_state == ISAL_BLOCK_FINISH) {
        // Member complete, CRC32 and ISIZE verified; ISA-L hands back the bytes it read past
        // the trailer, so next_in/avail_in start the next member.
        in_member_ = false;
        ++members_;
        continue;
      }
      if (st.avail_out == out_before && st.avail_in == in_before) {  // no progress
        if (st.avail_in == 0 && src_.eof()) fail("gzip", truncated_cause(members_, member_output_));
        if (st.avail_in != 0) fail("gzip", "ISA-L inflate made no progress");
      }
    }
    return out_size - st.avail_out;
  }

 private:
  void start_member() {
    inflate_state& st = *st_;
    uint8_t* next_in = st.next_in;
    uint32_t avail_in = st.avail_in;
    isal_inflate_reset(&st);
    st.next_in = next_in;
    st.avail_in = avail_in;
    st.crc_flag = ISAL_GZIP;  // parse the gzip header, verify CRC32 and ISIZE
    in_member_ = true;
    member_output_ = false;
  }

  FdSource src_;
  std::unique_ptr<inflate_state> st_;
  bool in_member_ = false;
  bool member_output_ = false;
  bool done_ = false;
  uint64_t members_ = 0;
};

// ---------------------------------------------------------------------------------------------
class ZstdDecompressor final : public Decompressor {
 public:
  explicit ZstdDecompressor(int fd) : src_(fd), dctx_(ZSTD_createDCtx()) {
    if (!dctx_) fail("zstd", "ZSTD_createDCtx failed");
    // The default window cap (128 MiB, ZSTD_WINDOWLOG_LIMIT_DEFAULT) bounds memory; keep it.
  }

  size_t read(void* buf, size_t len) override {
    if (done_ || len == 0) return 0;
    ZSTD_outBuffer out{buf, len, 0};
    while (out.pos < out.size) {
      if (in_.pos == in_.size && !src_.eof()) {
        size_t n = src_.refill();
        in_ = ZSTD_inBuffer{src_.data(), n, 0};
      }
      bool drained = in_.pos == in_.size && src_.eof();
      if (drained && frame_done_) {
        done_ = true;
        break;
      }
      size_t before = out.pos;
      size_t rc = ZSTD_decompressStream(dctx_.get(), &out, &in_);
      if (ZSTD_isError(rc)) fail("zstd", ZSTD_getErrorName(rc));
      frame_done_ = rc == 0;
      if (drained && !frame_done_ && out.pos == before)
        fail("zstd",
             frames_seen_ ? "stream is truncated (ends inside a zstd frame)" : "stream is empty");
      frames_seen_ = true;
    }
    return out.pos;
  }

 private:
  struct DctxFree {
    void operator()(ZSTD_DCtx* d) const noexcept { ZSTD_freeDCtx(d); }
  };
  FdSource src_;
  std::unique_ptr<ZSTD_DCtx, DctxFree> dctx_;
  ZSTD_inBuffer in_{nullptr, 0, 0};
  bool frame_done_ = false;
  bool frames_seen_ = false;
  bool done_ = false;
};

}  // namespace

std::unique_ptr<Decompressor> make_decompressor(Compression c, int fd, GzipEngine gzip) {
  switch (c) {
    case Compression::kNone:
      return std::make_unique<PassthroughDecompressor>(fd);
    case Compression::kGzip:
      if (gzip == GzipEngine::kZlib) return std::make_unique<ZlibGzipDecompressor>(fd);
      return std::make_unique<IsalGzipDecompressor>(fd);
    case Compression::kZstd:
      return std::make_unique<ZstdDecompressor>(fd);
  }
  throw ImageError("decompress layer: unknown compression");
}

}  // namespace benchrun::oci
