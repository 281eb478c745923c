// gzip_engines.cpp: peer benchmark of the two gzip engines (zlib vs ISA-L) behind
// make_decompressor.
//
// Usage: bench_gzip_engines [layer.tar.gz] [iterations=5]
// Without a file it generates ~200 MiB of layer-like data (text, binary-ish, zero runs, random),
// gzips it with zlib level 6. The compressed bytes are held in a memfd so disk speed does not
// enter the figures. Engines run interleaved, alternating which goes first, and the throughput
// reported is uncompressed MB/s (1 MB = 10^6 bytes) through Decompressor::read with 1 MiB reads,
// i.e. exactly what apply_layer sees.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "benchrun/common/unique_fd.hpp"
#include "benchrun/oci/decompress.hpp"

using benchrun::UniqueFd;
using benchrun::oci::Compression;
using benchrun::oci::GzipEngine;

namespace {

constexpr size_t kGeneratedSize = 200u << 20;

void write_all(int fd, const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::write(fd, p, size);
    if (n < 0) {
      std::perror("write");
      std::exit(1);
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
}

// Fills one 64 KiB chunk; the mix gives roughly the 3:1 gzip ratio typical of image layers.
void layer_like_chunk(std::string& chunk, uint64_t& state) {
  static const char* kWords[] = {"usr/lib/x86_64-linux-gnu/",
                                 "python3.11/site-packages/",
                                 "#include <",
                                 "return ",
                                 "static ",
                                 "\n",
                                 "    ",
                                 "0x",
                                 "def ",
                                 "import ",
                                 "libc.so.6",
                                 "GLIBC_2.34",
                                 "(",
                                 ");"};
  auto next = [&] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  const uint64_t kind = next() % 20;
  chunk.clear();
  while (chunk.size() < 65536) {
    uint64_t r = next();
    if (kind < 10) {  // source text / scripts
      chunk += kWords[r % (sizeof kWords / sizeof kWords[0])];
    } else if (kind < 15) {  // machine code: skewed byte distribution
      for (int i = 0; i < 8; ++i) chunk += static_cast<char>((r >> (8 * i)) & 0x3f);
    } else if (kind < 17) {  // zero-filled sections
      chunk.append(4096, '\0');
    } else {  // already-compressed data
      for (int i = 0; i < 8; ++i) chunk += static_cast<char>(r >> (8 * i));
    }
  }
  chunk.resize(65536);
}

UniqueFd generate(size_t size) {
  UniqueFd fd(memfd_create("bench.tar.gz", MFD_CLOEXEC));
  z_stream z{};
  if (deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK) std::exit(1);
  std::string chunk;
  std::vector<unsigned char> out(1 << 20);
  uint64_t state = 0x9e3779b97f4a7c15ull;
  for (size_t done = 0; done < size; done += chunk.size()) {
    layer_like_chunk(chunk, state);
    z.next_in = reinterpret_cast<Bytef*>(chunk.data());
    z.avail_in = static_cast<uInt>(chunk.size());
    const int flush = done + chunk.size() >= size ? Z_FINISH : Z_NO_FLUSH;
    do {
      z.next_out = out.data();
      z.avail_out = static_cast<uInt>(out.size());
      deflate(&z, flush);
      write_all(fd.get(), out.data(), out.size() - z.avail_out);
    } while (z.avail_out == 0);
  }
  deflateEnd(&z);
  return fd;
}

UniqueFd load(const char* path) {
  UniqueFd in(::open(path, O_RDONLY | O_CLOEXEC));
  if (!in) {
    std::perror(path);
    std::exit(1);
  }
  UniqueFd fd(memfd_create("bench.tar.gz", MFD_CLOEXEC));
  std::vector<char> buf(1 << 20);
  for (;;) {
    ssize_t n = ::read(in.get(), buf.data(), buf.size());
    if (n < 0) {
      std::perror("read");
      std::exit(1);
    }
    if (n == 0) break;
    write_all(fd.get(), buf.data(), static_cast<size_t>(n));
  }
  return fd;
}

// One full decompression; returns the seconds taken and sets bytes to the uncompressed size.
double run_once(int fd, GzipEngine engine, std::vector<char>& buf, uint64_t& bytes) {
  ::lseek(fd, 0, SEEK_SET);
  auto start = std::chrono::steady_clock::now();
  auto d = benchrun::oci::make_decompressor(Compression::kGzip, fd, engine);
  bytes = 0;
  while (size_t n = d->read(buf.data(), buf.size())) bytes += n;
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

}  // namespace

int main(int argc, char** argv) try {
  const char* path = argc > 1 ? argv[1] : nullptr;
  const int iterations = argc > 2 ? std::max(1, std::atoi(argv[2])) : 5;
  UniqueFd fd = path ? load(path) : generate(kGeneratedSize);
  const off_t compressed = ::lseek(fd.get(), 0, SEEK_END);

  std::vector<char> buf(1 << 20);
  const GzipEngine engines[] = {GzipEngine::kZlib, GzipEngine::kIsal};
  const char* names[] = {"zlib", "isal"};
  std::vector<double> mbps[2];
  uint64_t sizes[2] = {0, 0};
  for (int i = 0; i < iterations; ++i) {
    for (int k = 0; k < 2; ++k) {
      const int e = (i % 2 == 0) ? k : 1 - k;  // alternate which engine goes first
      uint64_t bytes = 0;
      double secs = run_once(fd.get(), engines[e], buf, bytes);
      sizes[e] = bytes;
      mbps[e].push_back(static_cast<double>(bytes) / 1e6 / secs);
    }
  }
  if (sizes[0] != sizes[1]) {
    std::fprintf(stderr, "engines disagree: zlib %llu bytes, isal %llu bytes\n",
                 static_cast<unsigned long long>(sizes[0]),
                 static_cast<unsigned long long>(sizes[1]));
    return 1;
  }
  std::printf(
      "input: %s, %.1f MiB uncompressed, %.1f MiB gzip (ratio %.2f), %d iterations, "
      "interleaved\n",
      path ? path : "generated layer-like data", static_cast<double>(sizes[0]) / (1 << 20),
      static_cast<double>(compressed) / (1 << 20),
      static_cast<double>(sizes[0]) / static_cast<double>(compressed), iterations);
  for (int e = 0; e < 2; ++e) {
    std::printf("%s: median %7.1f MB/s  best %7.1f MB/s  (uncompressed output)\n", names[e],
                median(mbps[e]), *std::max_element(mbps[e].begin(), mbps[e].end()));
  }
  std::printf("isal/zlib (median): %.2fx\n", median(mbps[1]) / median(mbps[0]));
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "bench_gzip_engines: error: %s\n", e.what());
  return 1;
}
