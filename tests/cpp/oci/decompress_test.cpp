// decompress_test.cpp: gzip (ISA-L and zlib), zstd and passthrough layer decompression.
#include "benchrun/oci/decompress.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>

#include "benchrun/common/error.hpp"
#include "benchrun/common/unique_fd.hpp"

using benchrun::ImageError;
using benchrun::UniqueFd;
using benchrun::oci::Compression;
using benchrun::oci::GzipEngine;
using benchrun::oci::make_decompressor;

namespace {

// Deterministic, moderately compressible bytes (words from a small vocabulary plus noise).
std::string sample_data(size_t size, uint32_t seed = 1) {
  static const char* kWords[] = {"layer ", "tar ",  "usr/lib/",   "benchmark ", "\x01\x02\x03",
                                 "gzip ",  "zstd ", "0123456789", "\n"};
  std::string out;
  out.reserve(size + 16);
  uint32_t x = seed;
  while (out.size() < size) {
    x = x * 1664525u + 1013904223u;
    if ((x >> 28) == 0) {
      out += static_cast<char>(x >> 8);
    } else {
      out += kWords[(x >> 16) % (sizeof kWords / sizeof kWords[0])];
    }
  }
  out.resize(size);
  return out;
}

std::string gzip_member(std::string_view data, int level = 6) {
  z_stream z{};
  EXPECT_EQ(deflateInit2(&z, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out(deflateBound(&z, data.size()) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

// One zstd frame; with_checksum adds the XXH64 content checksum (the zstd CLI default).
std::string zstd_frame(std::string_view data, int level = 3, bool with_checksum = true) {
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, with_checksum ? 1 : 0);
  std::string out(ZSTD_compressBound(data.size()), '\0');
  size_t n = ZSTD_compress2(cctx, out.data(), out.size(), data.data(), data.size());
  ZSTD_freeCCtx(cctx);
  EXPECT_FALSE(ZSTD_isError(n));
  out.resize(n);
  return out;
}

std::string zstd_skippable_frame(std::string_view payload) {
  std::string out;
  auto le32 = [&](uint32_t v) {
    for (int i = 0; i < 4; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
  };
  le32(0x184D2A50u);
  le32(static_cast<uint32_t>(payload.size()));
  out += payload;
  return out;
}

UniqueFd memfd_with(std::string_view bytes) {
  UniqueFd fd(memfd_create("blob", MFD_CLOEXEC));
  EXPECT_TRUE(fd);
  EXPECT_EQ(write(fd.get(), bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  lseek(fd.get(), 0, SEEK_SET);
  return fd;
}

std::string read_all(benchrun::oci::Decompressor& d, size_t chunk = 1 << 20) {
  std::string out;
  std::string buf(chunk, '\0');
  for (;;) {
    size_t n = d.read(buf.data(), buf.size());
    if (n == 0) break;
    out.append(buf.data(), n);
  }
  return out;
}

std::string decompress(Compression c, std::string_view blob, GzipEngine e = GzipEngine::kIsal,
                       size_t chunk = 1 << 20) {
  UniqueFd fd = memfd_with(blob);
  auto d = make_decompressor(c, fd.get(), e);
  return read_all(*d, chunk);
}

// Feeds blob through a pipe in tiny writes, so the decoder sees short reads at every boundary.
std::string decompress_trickle(Compression c, const std::string& blob, GzipEngine e, size_t piece) {
  int p[2];
  EXPECT_EQ(pipe2(p, O_CLOEXEC), 0);
  UniqueFd rd(p[0]);
  UniqueFd wr(p[1]);
  std::thread writer([&] {
    for (size_t off = 0; off < blob.size(); off += piece) {
      size_t n = std::min(piece, blob.size() - off);
      if (write(wr.get(), blob.data() + off, n) != static_cast<ssize_t>(n)) break;
    }
    wr.reset();
  });
  std::string out;
  try {
    auto d = make_decompressor(c, rd.get(), e);
    out = read_all(*d, 4096);
  } catch (...) {
    rd.reset();
    writer.join();
    throw;
  }
  writer.join();
  return out;
}

void expect_image_error(const std::function<void()>& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "expected ImageError containing '" << needle << "'";
  } catch (const ImageError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

// Runs stmt expecting an ImageError whose message contains needle; failures name the statement.
#define EXPECT_IMAGE_ERROR(stmt, needle)         \
  do {                                           \
    SCOPED_TRACE(#stmt);                         \
    expect_image_error([&] { stmt; }, (needle)); \
  } while (0)

class DecompressGzip : public ::testing::TestWithParam<GzipEngine> {};

INSTANTIATE_TEST_SUITE_P(, DecompressGzip, ::testing::Values(GzipEngine::kIsal, GzipEngine::kZlib),
                         [](const auto& info) {
                           return info.param == GzipEngine::kIsal ? "isal" : "zlib";
                         });

}  // namespace

TEST_P(DecompressGzip, SingleMember) {
  std::string data = sample_data(3 << 20);
  EXPECT_EQ(decompress(Compression::kGzip, gzip_member(data), GetParam()), data);
}

TEST_P(DecompressGzip, SmallCallerBuffers) {
  std::string data = sample_data(200000, 7);
  EXPECT_EQ(decompress(Compression::kGzip, gzip_member(data), GetParam(), 3), data);
}

TEST_P(DecompressGzip, MultiMember) {
  std::string a = sample_data(700000, 2), b = sample_data(10, 3), c = sample_data(1 << 20, 4);
  std::string blob = gzip_member(a, 1) + gzip_member("", 6) + gzip_member(b, 9) + gzip_member(c);
  EXPECT_EQ(decompress(Compression::kGzip, blob, GetParam()), a + b + c);
}

TEST_P(DecompressGzip, MultiMemberTrickledThroughPipe) {
  std::string a = sample_data(50000, 5), b = sample_data(30000, 6);
  std::string blob = gzip_member(a) + gzip_member(b) + gzip_member("x");
  for (size_t piece : {1u, 7u, 4093u})
    EXPECT_EQ(decompress_trickle(Compression::kGzip, blob, GetParam(), piece), a + b + "x")
        << "piece " << piece;
}

TEST_P(DecompressGzip, CorruptDeflateDataFails) {
  std::string blob = gzip_member(sample_data(1 << 20));
  for (size_t i = blob.size() / 2; i < blob.size() / 2 + 64; ++i) blob[i] ^= 0x5a;
  EXPECT_IMAGE_ERROR(decompress(Compression::kGzip, blob, GetParam()), "decompress gzip layer: ");
}

TEST_P(DecompressGzip, WrongCrcFails) {
  std::string blob = gzip_member(sample_data(100000));
  blob[blob.size() - 8] ^= 1;  // CRC32 in the trailer
  EXPECT_IMAGE_ERROR(decompress(Compression::kGzip, blob, GetParam()), "decompress gzip layer: ");
}

TEST_P(DecompressGzip, TruncatedFails) {
  std::string blob = gzip_member(sample_data(100000));
  for (size_t keep : {blob.size() - 1, blob.size() - 5, blob.size() / 2, size_t{5}}) {
    EXPECT_IMAGE_ERROR(decompress(Compression::kGzip, blob.substr(0, keep), GetParam()),
                       "truncated");
  }
  // A second member cut short is as bad as the first.
  std::string two = blob + gzip_member("second member");
  EXPECT_IMAGE_ERROR(decompress(Compression::kGzip, two.substr(0, two.size() - 3), GetParam()),
                     "truncated");
}

TEST_P(DecompressGzip, TrailingGarbageFails) {
  std::string blob = gzip_member(sample_data(1000));
  EXPECT_IMAGE_ERROR(decompress(Compression::kGzip, blob + "this is not a gzip member", GetParam()),
                     "trailing data after gzip member 1");
  EXPECT_IMAGE_ERROR(decompress(Compression::kGzip, blob + std::string(512, '\0'), GetParam()),
                     "decompress gzip layer: ");
  // Too short to be a header: reported as a truncated member, still an error.
  EXPECT_IMAGE_ERROR(decompress(Compression::kGzip, blob + "ab", GetParam()),
                     "decompress gzip layer: ");
}

TEST_P(DecompressGzip, EmptyOrNotGzipFails) {
  EXPECT_IMAGE_ERROR(decompress(Compression::kGzip, "", GetParam()), "empty");
  EXPECT_IMAGE_ERROR(decompress(Compression::kGzip, std::string(4096, 'x'), GetParam()),
                     "decompress gzip layer: ");
}

TEST(DecompressZstd, MultiFrameWithSkippableFrames) {
  std::string a = sample_data(2 << 20, 8), b = sample_data(123, 9);
  std::string blob = zstd_skippable_frame("manifest") + zstd_frame(a) + zstd_frame("") +
                     zstd_skippable_frame(std::string(1000, 'm')) + zstd_frame(b, 19) +
                     zstd_skippable_frame("");
  EXPECT_EQ(decompress(Compression::kZstd, blob), a + b);
  EXPECT_EQ(decompress(Compression::kZstd, blob, GzipEngine::kIsal, 5), a + b);
  EXPECT_EQ(decompress_trickle(Compression::kZstd, blob, GzipEngine::kIsal, 997), a + b);
}

TEST(DecompressZstd, CorruptTruncatedAndTrailingFail) {
  std::string blob = zstd_frame(sample_data(1 << 20, 10));
  EXPECT_IMAGE_ERROR(decompress(Compression::kZstd, blob.substr(0, blob.size() - 4)),
                     "decompress zstd layer: ");
  EXPECT_IMAGE_ERROR(decompress(Compression::kZstd, blob + "garbage after the frame"),
                     "decompress zstd layer: ");
  std::string corrupt = blob;
  for (size_t i = corrupt.size() / 2; i < corrupt.size() / 2 + 32; ++i) corrupt[i] ^= 0x33;
  EXPECT_IMAGE_ERROR(decompress(Compression::kZstd, corrupt), "decompress zstd layer: ");
  EXPECT_IMAGE_ERROR(decompress(Compression::kZstd, ""), "empty");
}

TEST(DecompressNone, PassesBytesThrough) {
  std::string data = sample_data(3 << 20, 11);
  EXPECT_EQ(decompress(Compression::kNone, data), data);
  EXPECT_EQ(decompress(Compression::kNone, ""), "");
}
