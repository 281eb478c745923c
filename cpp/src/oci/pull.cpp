// pull.cpp: the pull pipeline, in order: resolve -> config -> parallel layer download -> in-order
// unpack (overlapping the downloads) -> diff_id check -> publish rootfs -> record and tag.
#include "benchrun/oci/pull.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <exception>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "benchrun/common/clock.hpp"
#include "benchrun/common/error.hpp"
#include "benchrun/common/free_space.hpp"
#include "oci/source.hpp"

namespace benchrun::oci {

namespace fs = std::filesystem;

namespace {

// Serialises event delivery so callers' callbacks need no locking.
class Events {
 public:
  explicit Events(const std::function<void(const PullEvent&)>& fn) : fn_(fn) {}
  void emit(PullEvent::Kind kind, const std::string& digest, uint64_t done = 0,
            uint64_t total = 0) {
    if (!fn_) return;
    std::lock_guard<std::mutex> l(mu_);
    fn_(PullEvent{kind, digest, done, total});
  }

 private:
  const std::function<void(const PullEvent&)>& fn_;
  std::mutex mu_;
};

// Downloads layers on a few worker threads; wait(i) blocks until layer i is in the store and
// rethrows its error. The destructor cancels what has not started and joins every worker.
class LayerDownloads {
 public:
  LayerDownloads(Source& source, Store& store, const std::vector<Descriptor>& layers, int parallel,
                 Events& events)
      : source_(source), store_(store), layers_(layers), events_(events), state_(layers.size()) {
    int n = std::max(1, std::min<int>(parallel, static_cast<int>(layers.size())));
    for (int i = 0; i < n; ++i) workers_.emplace_back([this] { work(); });
  }
  LayerDownloads(const LayerDownloads&) = delete;
  LayerDownloads& operator=(const LayerDownloads&) = delete;
  ~LayerDownloads() {
    cancel_ = true;
    for (auto& t : workers_) t.join();
  }

  void wait(size_t i) {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [&] { return state_[i].done; });
    if (state_[i].error) std::rethrow_exception(state_[i].error);
  }

 private:
  struct State {
    bool done = false;
    std::exception_ptr error;
  };

  void work() {
    for (;;) {
      size_t i = next_++;
      if (i >= layers_.size()) return;
      std::exception_ptr err;
      if (cancel_) {
        err = std::make_exception_ptr(Error("pull cancelled"));
      } else {
        try {
          fetch(layers_[i]);
        } catch (...) {
          err = std::current_exception();
          cancel_ = true;  // one failure ends the pull: do not start more downloads
        }
      }
      {
        std::lock_guard<std::mutex> l(mu_);
        state_[i].done = true;
        state_[i].error = err;
      }
      cv_.notify_all();
    }
  }

  void fetch(const Descriptor& layer) {
    const std::string d = layer.digest.str();
    // Per-blob lock: two processes pulling the same layer download it once.
    FileLock lock = store_.lock("blob-" + key_of(layer.digest));
    // A cached blob counts only with the size the manifest declares (its digest is checked as it
    // is unpacked: the diff_id covers every byte); a wrong one is fetched again.
    if (store_.has_blob(layer.digest)) {
      if (store_.blob_size_ok(layer)) {
        events_.emit(PullEvent::Kind::kLayerDone, d, layer.size, layer.size);
        return;
      }
      store_.remove_blob(layer.digest);
    }
    events_.emit(PullEvent::Kind::kLayerStart, d, 0, layer.size);
    Store::BlobWriter w = store_.begin_blob(layer.digest);
    source_.fetch_blob(layer, w.fd(), [&](uint64_t done, uint64_t total) {
      events_.emit(PullEvent::Kind::kLayerProgress, d, done, total);
    });
    w.commit();
    events_.emit(PullEvent::Kind::kLayerDone, d, layer.size, layer.size);
  }

  Source& source_;
  Store& store_;
  const std::vector<Descriptor>& layers_;
  Events& events_;
  std::vector<State> state_;
  std::atomic<size_t> next_{0};
  std::atomic<bool> cancel_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::thread> workers_;
};

std::unique_ptr<Source> open_source(const ImageSource& src, Store& store, const PullOptions& opts) {
  switch (src.transport) {
    case Transport::kDocker:
      return open_registry_source(src.reference, opts.registry);
    case Transport::kOciLayout:
      return open_oci_layout_source(src.path, src.tag);
    case Transport::kDockerArchive:
      return open_docker_archive_source(src.path, src.tag, store);
  }
  throw ConfigError("unknown image transport");
}

// Applies every layer, in manifest order, into a fresh tmp dir; publishes it under the ChainID.
void unpack_rootfs(Store& store, LayerDownloads& downloads, const Manifest& manifest,
                   const ImageConfig& config, const Digest& chain, const PullOptions& opts,
                   Events& events) {
  FileLock lock = store.lock("rootfs-" + key_of(chain));
  if (store.has_rootfs(chain)) return;
  const UnpackLimits& lim = opts.unpack.limits;
  uint64_t compressed = 0;
  for (const auto& l : manifest.layers) compressed += static_cast<uint64_t>(l.size);
  const uint64_t budget =
      std::min(lim.max_image_bytes,
               std::max(lim.min_image_bytes,
                        compressed > UINT64_MAX / std::max<uint64_t>(lim.max_image_ratio, 1)
                            ? UINT64_MAX
                            : compressed * lim.max_image_ratio));
  const std::string tmp_root = (store.root() / "tmp").string();
  require_free_space(tmp_root, 0, lim.min_free_bytes, "unpack image");
  TempDir dir = store.begin_rootfs();
  UniqueFd rootfd = open_file(dir.path(), O_RDONLY | O_DIRECTORY);
  // The tree is unpacked as it will be seen: the root directory itself is 0755.
  if (::fchmod(rootfd.get(), 0755) != 0) throw_errno("chmod", dir.path().string());
  uint64_t image_bytes = 0;
  for (size_t i = 0; i < manifest.layers.size(); ++i) {
    const Descriptor& layer = manifest.layers[i];
    downloads.wait(i);
    events.emit(PullEvent::Kind::kUnpackStart, layer.digest.str(), i, manifest.layers.size());
    UniqueFd blob = open_file(store.blob_path(layer.digest), O_RDONLY);
    struct stat bst {};
    if (::fstat(blob.get(), &bst) != 0) throw_errno("stat", store.blob_path(layer.digest).string());
    if (bst.st_size != layer.size)
      throw DigestMismatch(
          "layer " + layer.digest.str() + " in the store: " + std::to_string(bst.st_size) +
          " bytes, the manifest says " + std::to_string(layer.size) + " (hint: pull it again)");
    const Digest& want = config.diff_ids[i];
    UnpackOptions unpack = opts.unpack;
    // Per-image budget and free space, checked as the stream grows and before each file.
    unpack.check_bytes = [&, i](uint64_t layer_bytes, uint64_t to_write) {
      if (image_bytes + layer_bytes > budget)
        throw ImageTooLarge(
            "image layer " + std::to_string(i + 1) + " (" + layer.digest.str() + "): the image " +
            "unpacks to more than " + std::to_string(budget) + " bytes, its limit (" +
            std::to_string(lim.max_image_ratio) + "x its " + std::to_string(compressed) +
            " compressed bytes, at least " + std::to_string(lim.min_image_bytes) + ", at most " +
            std::to_string(lim.max_image_bytes) +
            "); refusing a decompression bomb (hint: raise max_image_ratio / max_image_bytes, "
            "BENCHRUN_MAX_IMAGE_RATIO / BENCHRUN_MAX_IMAGE_BYTES, for an image you trust)");
      require_free_space(tmp_root, to_write, lim.min_free_bytes,
                         "unpack layer " + std::to_string(i + 1) + " (" + layer.digest.str() + ")");
    };
    LayerStats stats = apply_layer(rootfd.get(), blob.get(), compression_for(layer.media_type),
                                   want.algorithm(), unpack);
    image_bytes += stats.bytes;
    if (stats.diff_id != want)
      throw DigestMismatch("layer " + std::to_string(i + 1) + " (" + layer.digest.str() +
                           "): uncompressed content hashes to " + stats.diff_id.str() +
                           ", the image config's diff_id is " + want.str());
    events.emit(PullEvent::Kind::kUnpackDone, layer.digest.str(), i + 1, manifest.layers.size());
  }
  store.commit_rootfs(std::move(dir), chain);
}

Image make_image(const Store& store, std::string reference, ImageRecord record) {
  Image img;
  img.reference = std::move(reference);
  img.manifest_json = store.read_verified_blob(record.manifest_digest, kMaxManifestSize);
  img.config_json = store.read_verified_blob(record.config_digest, kMaxConfigSize);
  ParsedManifest parsed = parse_manifest(img.manifest_json, record.manifest_media_type);
  if (!parsed.manifest)
    throw ImageError("stored manifest " + record.manifest_digest.str() + " is an index");
  img.manifest = std::move(*parsed.manifest);
  img.config = parse_config(img.config_json);
  if (record.chain_id && store.has_rootfs(*record.chain_id))
    img.rootfs = store.rootfs_path(*record.chain_id);
  img.record = std::move(record);
  return img;
}

}  // namespace

std::string source_key(const ImageSource& source) {
  switch (source.transport) {
    case Transport::kDocker:
      return source.reference.str();
    case Transport::kOciLayout:
    case Transport::kDockerArchive: {
      ImageSource abs = source;
      std::error_code ec;
      fs::path p = fs::absolute(source.path, ec);
      if (!ec) abs.path = p.lexically_normal().string();
      return abs.str();
    }
  }
  return source.str();
}

namespace {

// The repository a cache hit is bound to: registry + name for registry images; none otherwise
// (a layout or archive path is its own key, recorded by tag()).
std::optional<std::string> repository_of(const ImageSource& source) {
  if (source.transport != Transport::kDocker) return std::nullopt;
  return source.reference.name();
}

bool platform_matches(const Platform& have, const Platform& want) {
  return have.os == want.os && have.architecture == want.architecture &&
         (want.variant.empty() || have.variant == want.variant);
}

// Whether the record's blobs (and tree, if wanted) are all in the store, with their declared sizes.
bool complete(const Store& store, const ImageRecord& rec, bool want_rootfs) {
  if (!store.has_blob(rec.config_digest) || !store.has_blob(rec.manifest_digest)) return false;
  if (want_rootfs) return rec.chain_id && store.has_rootfs(*rec.chain_id);
  for (const auto& l : rec.layers)
    if (!store.blob_size_ok(l)) return false;
  return true;
}

// A refused image leaves nothing behind: its blobs that no recorded image uses are removed (a
// network failure keeps them, so the next pull resumes).
void forget_blobs(Store& store, const Digest& manifest_digest, const Manifest& manifest) {
  std::set<std::string> live;
  for (const auto& r : store.list_images()) {
    live.insert(r.manifest_digest.str());
    live.insert(r.config_digest.str());
    for (const auto& l : r.layers) live.insert(l.digest.str());
  }
  std::vector<Digest> mine{manifest_digest, manifest.config.digest};
  for (const auto& l : manifest.layers) mine.push_back(l.digest);
  for (const auto& d : mine) {
    if (live.count(d.str())) continue;
    FileLock l = store.lock("blob-" + key_of(d));
    store.remove_blob(d);
  }
}

}  // namespace

Image pull(const ImageSource& source, Store& store, const PullOptions& opts) {
  const auto t0 = Clock::now();
  Events events(opts.on_event);
  // Held shared for the whole pull: prune() cannot collect what we fetch before it is recorded.
  FileLock gc = store.lock("gc", /*shared=*/true);
  const Platform platform = opts.platform.value_or(Platform::host());
  const std::string key = source_key(source);
  const std::optional<std::string> repo = repository_of(source);

  std::unique_ptr<Source> src = open_source(source, store, opts);

  // Digest-pinned and pulled before under this very name: one cheap access check (a manifest
  // HEAD with our credentials), then the cache. The registry still decides who may use it.
  if (repo && source.reference.digest) {
    if (auto d = store.resolve(key)) {
      auto rec = store.get_image(*d);
      if (rec && complete(store, *rec, opts.unpack_rootfs) &&
          (rec->manifest_digest == *source.reference.digest ||
           platform_matches(rec->platform, platform)) &&
          src->confirm_manifest(*source.reference.digest)) {
        store.grant(*repo, rec->manifest_digest);
        events.emit(PullEvent::Kind::kResolved, rec->manifest_digest.str());
        Image img = make_image(store, key, std::move(*rec));
        img.timings.resolve_s = img.timings.total_s = since(t0);
        events.emit(PullEvent::Kind::kDone, img.record.manifest_digest.str());
        return img;
      }
    }
  }

  ResolvedManifest resolved = src->resolve(platform);
  const Manifest& manifest = resolved.manifest;
  events.emit(PullEvent::Kind::kResolved, resolved.digest.str());
  const double resolve_s = since(t0);

  // Fast path: the same manifest is already pulled (and unpacked, if asked).
  if (auto rec = store.get_image(resolved.digest)) {
    if (complete(store, *rec, opts.unpack_rootfs)) {
      if (repo) store.grant(*repo, resolved.digest);
      store.tag(key, resolved.digest);
      Image img = make_image(store, key, std::move(*rec));
      img.timings.resolve_s = resolve_s;
      img.timings.total_s = since(t0);
      events.emit(PullEvent::Kind::kDone, resolved.digest.str());
      return img;
    }
  }

  try {
    store.put_blob(resolved.digest, resolved.json);
    // A cached config is used only with its declared size and digest; otherwise fetched again.
    std::string config_json;
    if (store.blob_size_ok(manifest.config)) {
      try {
        config_json = store.read_verified_blob(manifest.config.digest, kMaxConfigSize);
      } catch (const DigestMismatch&) {
        config_json.clear();
      }
    }
    if (config_json.empty()) {
      store.remove_blob(manifest.config.digest);
      config_json = src->fetch_small_blob(manifest.config, kMaxConfigSize);
      store.put_blob(manifest.config.digest, config_json);
    }
    ImageConfig config = parse_config(config_json);
    if (config.diff_ids.size() != manifest.layers.size())
      throw ImageError("image " + resolved.digest.str() + ": manifest has " +
                       std::to_string(manifest.layers.size()) + " layers but the config lists " +
                       std::to_string(config.diff_ids.size()) + " diff_ids");
    for (const auto& layer : manifest.layers) (void)compression_for(layer.media_type);  // early

    ImageRecord record;
    record.manifest_digest = resolved.digest;
    record.manifest_media_type = resolved.media_type;
    record.config_digest = manifest.config.digest;
    record.layers = manifest.layers;
    record.diff_ids = config.diff_ids;
    record.platform = Platform{config.os, config.architecture, config.variant};
    if (record.platform.os.empty()) record.platform = platform;
    record.source = source.str();
    record.pulled_at = static_cast<int64_t>(::time(nullptr));
    uint64_t missing = 0;
    for (const auto& l : manifest.layers) {
      record.size += static_cast<uint64_t>(l.size);
      if (!store.blob_size_ok(l)) missing += static_cast<uint64_t>(l.size);
    }
    // The downloads must fit, with the reserve left free (the unpack checks again as it goes).
    require_free_space((store.root() / "tmp").string(), missing, opts.unpack.limits.min_free_bytes,
                       "download image " + resolved.digest.str());

    const auto t_dl = Clock::now();
    double unpack_s = 0;
    {
      LayerDownloads downloads(*src, store, manifest.layers, opts.max_parallel_downloads, events);
      if (opts.unpack_rootfs) {
        Digest chain = chain_id(config.diff_ids);
        unpack_rootfs(store, downloads, manifest, config, chain, opts, events);
        record.chain_id = chain;
      } else {
        for (size_t i = 0; i < manifest.layers.size(); ++i) downloads.wait(i);
      }
    }
    const double fetch_and_unpack_s = since(t_dl);
    unpack_s = opts.unpack_rootfs ? fetch_and_unpack_s : 0;

    store.put_image(record);
    if (repo) store.grant(*repo, record.manifest_digest);
    store.tag(key, record.manifest_digest);
    Image img = make_image(store, key, std::move(record));
    img.timings.resolve_s = resolve_s;
    img.timings.download_s = fetch_and_unpack_s;
    img.timings.unpack_s = unpack_s;
    img.timings.total_s = since(t0);
    events.emit(PullEvent::Kind::kDone, img.record.manifest_digest.str());
    return img;
  } catch (const ImageError&) {
    if (!store.get_image(resolved.digest)) forget_blobs(store, resolved.digest, manifest);
    throw;
  }
}

Image load_image(const Store& store, const std::string& reference_or_digest) {
  std::optional<Digest> digest;
  std::optional<std::string> fallback_refused;
  std::string name = reference_or_digest;
  if (Digest::valid(reference_or_digest)) {
    digest = Digest::parse(reference_or_digest);
  } else {
    ImageSource src = parse_image_source(reference_or_digest);
    name = source_key(src);
    digest = store.resolve(name);
    if (!digest && src.transport == Transport::kDocker && src.reference.digest) {
      // name@digest: the manifest digest itself, but only for a repository that served it to a
      // successful pull here; a digest learnt elsewhere does not open another tenant's image.
      if (store.granted(src.reference.name(), *src.reference.digest))
        digest = src.reference.digest;
      else
        fallback_refused = src.reference.name();
    }
  }
  if (digest) {
    if (auto rec = store.get_image(*digest)) return make_image(store, name, std::move(*rec));
  }
  if (fallback_refused)
    throw ImageNotFound("image '" + reference_or_digest.substr(0, 300) +
                        "': no pull from repository '" + *fallback_refused +
                        "' has served this digest to this store (a digest cached for another "
                        "repository is not used; hint: pull it from this repository)");
  throw ImageNotFound("image '" + reference_or_digest.substr(0, 300) +
                      "' is not in the local store (hint: benchrun pull it first)");
}

}  // namespace benchrun::oci
