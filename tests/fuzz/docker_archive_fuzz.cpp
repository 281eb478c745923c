// docker_archive_fuzz.cpp: libFuzzer target for `docker save` tarballs (oci/
// source_docker_archive.cpp): the tar scan, manifest.json (which names the config and layers by
// member name, and RepoTags), symlinked members and the synthesised manifest.
//
// The input is written to a file and opened as docker-archive:FILE, then resolved; the store is a
// private temporary directory. Acceptable failures are benchrun::Error (ImageError for a bad
// archive, ConfigError for a bad :@N). Members are never extracted, so the store may hold only
// blobs afterwards: the fuzzer checks that nothing but the store's layout appeared in its base.
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>

#include "benchrun/common/error.hpp"
#include "benchrun/oci/manifest.hpp"
#include "oci/source.hpp"

namespace fs = std::filesystem;
namespace oci = benchrun::oci;

namespace {

struct State {
  fs::path base;  // holds archive.tar and store/
  std::unique_ptr<oci::Store> store;
};
State* g = nullptr;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g = new State;
  char tmpl[] = "/dev/shm/benchrun-archive-fuzz-XXXXXX";  // tmpfs: the store fsyncs each blob
  if (::access("/dev/shm", W_OK) != 0) std::strcpy(tmpl, "/tmp/benchrun-archive-fuzz-XXXXXX");
  if (!::mkdtemp(tmpl)) std::abort();
  g->base = tmpl;
  g->store = std::make_unique<oci::Store>(g->base / "store");
  std::atexit([] {
    std::error_code ec;
    fs::remove_all(g->base, ec);
  });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const fs::path tarball = g->base / "archive.tar";
  {
    std::ofstream out(tarball, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  // The tag form follows the input's last byte: the only image, a reference, or an index.
  static const char* const kTags[] = {"", "docker.io/library/busybox:latest", "@0", "@1"};
  const std::string tag = size ? kTags[data[size - 1] % 4] : "";
  try {
    auto source = oci::open_docker_archive_source(tarball, tag, *g->store);
    oci::ResolvedManifest m = source->resolve(oci::Platform::host());
    (void)m.digest.str();
  } catch (const benchrun::Error&) {
  }
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(g->base)) names.insert(e.path().filename());
  if (names != std::set<std::string>{"archive.tar", "store"}) {
    std::fprintf(stderr, "docker_archive_fuzz: something was extracted beside the store\n");
    std::abort();
  }
  return 0;
}
