// pull.hpp: get an image into the store: resolve, download (parallel), verify, unpack.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include "benchrun/oci/layer_unpack.hpp"
#include "benchrun/oci/manifest.hpp"
#include "benchrun/oci/reference.hpp"
#include "benchrun/oci/registry_client.hpp"
#include "benchrun/oci/store.hpp"

namespace benchrun::oci {

struct PullEvent {
  enum class Kind {
    kResolved,
    kLayerStart,
    kLayerProgress,
    kLayerDone,
    kUnpackStart,
    kUnpackDone,
    kDone
  };
  Kind kind;
  std::string digest;  // layer digest for layer events, manifest digest otherwise
  uint64_t done = 0;
  uint64_t total = 0;
};

struct PullOptions {
  RegistryOptions registry;
  std::optional<Platform> platform;  // default: Platform::host()
  UnpackOptions unpack;
  int max_parallel_downloads = 4;
  bool unpack_rootfs = true;
  // Called from the pulling threads (serialised by the puller).
  std::function<void(const PullEvent&)> on_event;
};

// A pulled image as the rest of the pipeline sees it.
struct Image {
  std::string reference;  // the name it was pulled by
  ImageRecord record;
  Manifest manifest;
  ImageConfig config;
  std::string manifest_json;
  std::string config_json;
  std::filesystem::path rootfs;  // empty when not unpacked
  struct Timings {
    double resolve_s = 0, download_s = 0, unpack_s = 0, total_s = 0;
  } timings;
};

// Pulls from the source into the store (cached by digest: nothing is downloaded twice, a cached
// unpacked rootfs is reused) and records the reference.
Image pull(const ImageSource& source, Store& store, const PullOptions& options);

// Loads an image already in the store by reference or digest; throws ImageNotFound.
Image load_image(const Store& store, const std::string& reference_or_digest);

// The store key of a source: its canonical reference text.
std::string source_key(const ImageSource& source);

}  // namespace benchrun::oci
