// layer_apply_fuzz.cpp: libFuzzer target for layer application (oci/layer_unpack.cpp): a tar
// stream chosen by the image's author, unpacked as root into a temporary directory.
//
// The input is the layer blob: gzip or zstd when it starts with their magic, else a plain tar.
// Acceptable failures are benchrun::Error (UnsafeLayerError, ImageError, SysError). After every
// input the fuzzer also checks containment, and aborts when anything reached outside the root:
//  - the root sits three levels below a private base directory that is also the process's working
//    directory (so a resolver bug with "..", or a relative path taken from the cwd, lands in it);
//    the base must still hold exactly its sentinel file (same bytes) and the path to the root;
//  - no new entry appeared in "/" (an absolute path or symlink followed on the host);
//  - every hard link in the root has all its links inside the root (a hardlink to a host file).
// The root is emptied between inputs.
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>

#include "benchrun/common/error.hpp"
#include "benchrun/common/unique_fd.hpp"
#include "benchrun/oci/layer_unpack.hpp"

namespace fs = std::filesystem;
namespace oci = benchrun::oci;

namespace {

constexpr const char* kSentinelText = "sentinel: nothing may write here\n";

struct State {
  fs::path base;  // /dev/shm/benchrun-layer-fuzz-XXXXXX
  fs::path root;  // base/a/b/root
  std::set<std::string> slash;
};
State* g = nullptr;

std::set<std::string> list(const fs::path& dir) {
  std::set<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) out.insert(e.path().filename());
  return out;
}

[[noreturn]] void escaped(const std::string& what) {
  std::fprintf(stderr, "layer_apply_fuzz: CONTAINMENT BROKEN: %s\n", what.c_str());
  std::abort();
}

void check_containment() {
  // The base holds the sentinel and the path to the root, nothing else, unchanged.
  if (list(g->base) != std::set<std::string>{"a", "sentinel"}) escaped("new entry in the base");
  if (list(g->base / "a") != std::set<std::string>{"b"}) escaped("new entry in base/a");
  if (list(g->base / "a" / "b") != std::set<std::string>{"root"}) escaped("new entry in base/a/b");
  std::ifstream in(g->base / "sentinel", std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (text != kSentinelText) escaped("sentinel modified");
  struct stat st {};
  if (::lstat(g->root.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) escaped("root replaced");
  for (const auto& name : list("/"))
    if (!g->slash.count(name)) escaped("new entry in /: " + name);
  // Hard links: every link of a file in the root must be in the root.
  std::map<std::pair<dev_t, ino_t>, nlink_t> seen;
  std::map<std::pair<dev_t, ino_t>, nlink_t> nlink;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(g->root, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (::lstat(it->path().c_str(), &st) != 0 || S_ISDIR(st.st_mode)) continue;
    auto key = std::make_pair(st.st_dev, st.st_ino);
    ++seen[key];
    nlink[key] = st.st_nlink;
  }
  for (const auto& [key, n] : nlink)
    if (seen[key] != n) escaped("hard link to a file outside the root");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g = new State;
  // On tmpfs when there is one: the disk-backed /tmp costs ~10 ms of I/O per input.
  char tmpl[] = "/dev/shm/benchrun-layer-fuzz-XXXXXX";
  if (::access("/dev/shm", W_OK) != 0) std::strcpy(tmpl, "/tmp/benchrun-layer-fuzz-XXXXXX");
  if (!::mkdtemp(tmpl)) std::abort();
  g->base = tmpl;
  g->root = g->base / "a" / "b" / "root";
  fs::create_directories(g->root);
  std::ofstream(g->base / "sentinel", std::ios::binary) << kSentinelText;
  if (::chdir(g->base.c_str()) != 0) std::abort();
  g->slash = list("/");
  std::atexit([] {
    std::error_code ec;
    fs::remove_all(g->base, ec);
  });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  oci::Compression c = oci::Compression::kNone;
  if (size >= 2 && data[0] == 0x1f && data[1] == 0x8b) c = oci::Compression::kGzip;
  if (size >= 4 && data[0] == 0x28 && data[1] == 0xb5 && data[2] == 0x2f && data[3] == 0xfd)
    c = oci::Compression::kZstd;

  benchrun::UniqueFd blob(::memfd_create("layer", MFD_CLOEXEC));
  if (!blob) std::abort();
  for (size_t done = 0; done < size;) {
    ssize_t n = ::write(blob.get(), data + done, size - done);
    if (n <= 0) std::abort();
    done += static_cast<size_t>(n);
  }
  ::lseek(blob.get(), 0, SEEK_SET);

  fs::create_directories(g->root);
  {
    benchrun::UniqueFd rootfd(::open(g->root.c_str(), O_DIRECTORY | O_RDONLY | O_CLOEXEC));
    if (!rootfd) std::abort();
    oci::UnpackOptions options;
    options.preserve_ownership = ::geteuid() == 0;
    options.limits.max_entries = 4096;
    options.limits.max_total_bytes = 16 << 20;
    try {
      (void)oci::apply_layer(rootfd.get(), blob.get(), c, oci::DigestAlgorithm::kSha256, options);
    } catch (const benchrun::Error&) {
    }
  }
  check_containment();
  // Empty the root (remove_all never follows symlinks); directories may have been made read-only
  // or unsearchable, which root ignores.
  std::error_code ec;
  fs::remove_all(g->root, ec);
  if (ec) escaped("cannot empty the root: " + ec.message());
  return 0;
}
