// bind_oci.cpp: type conversion for the OCI component (pull, store, references). No logic here.
#include <pybind11/functional.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "benchrun/common/error.hpp"
#include "benchrun/oci/pull.hpp"
#include "benchrun/oci/reference.hpp"
#include "benchrun/oci/store.hpp"
#include "bindings/bindings.hpp"

namespace py = pybind11;

namespace benchrun::bindings {

namespace {

using namespace benchrun::oci;

py::dict descriptor_dict(const Descriptor& d) {
  py::dict out;
  out["media_type"] = d.media_type;
  out["digest"] = d.digest.str();
  out["size"] = d.size;
  return out;
}

py::dict record_dict(const ImageRecord& r) {
  py::dict out;
  out["digest"] = r.manifest_digest.str();
  out["manifest_media_type"] = r.manifest_media_type;
  out["config_digest"] = r.config_digest.str();
  py::list layers;
  for (const auto& l : r.layers) layers.append(descriptor_dict(l));
  out["layers"] = layers;
  py::list diff_ids;
  for (const auto& d : r.diff_ids) diff_ids.append(d.str());
  out["diff_ids"] = diff_ids;
  out["chain_id"] = r.chain_id ? py::object(py::str(r.chain_id->str())) : py::object(py::none());
  out["platform"] = r.platform.str();
  out["source"] = r.source;
  out["pulled_at"] = r.pulled_at;
  out["size"] = r.size;
  return out;
}

py::dict config_dict(const ImageConfig& c) {
  py::dict out;
  out["os"] = c.os;
  out["architecture"] = c.architecture;
  out["variant"] = c.variant;
  out["entrypoint"] = c.entrypoint;
  out["cmd"] = c.cmd;
  out["env"] = c.env;
  out["working_dir"] = c.working_dir;
  out["user"] = c.user;
  out["stop_signal"] = c.stop_signal;
  out["labels"] = c.labels;
  out["created"] = c.created;
  return out;
}

py::dict image_dict(const Image& img) {
  py::dict out = record_dict(img.record);
  out["reference"] = img.reference;
  out["config"] = config_dict(img.config);
  out["manifest_json"] = py::bytes(img.manifest_json);
  out["config_json"] = py::bytes(img.config_json);
  out["rootfs"] =
      img.rootfs.empty() ? py::object(py::none()) : py::object(py::str(img.rootfs.string()));
  py::dict t;
  t["resolve"] = img.timings.resolve_s;
  t["download"] = img.timings.download_s;
  t["unpack"] = img.timings.unpack_s;
  t["total"] = img.timings.total_s;
  out["timings"] = t;
  return out;
}

const char* event_kind(PullEvent::Kind k) {
  switch (k) {
    case PullEvent::Kind::kResolved:
      return "resolved";
    case PullEvent::Kind::kLayerStart:
      return "layer_start";
    case PullEvent::Kind::kLayerProgress:
      return "layer_progress";
    case PullEvent::Kind::kLayerDone:
      return "layer_done";
    case PullEvent::Kind::kUnpackStart:
      return "unpack_start";
    case PullEvent::Kind::kUnpackDone:
      return "unpack_done";
    case PullEvent::Kind::kDone:
      return "done";
  }
  return "unknown";
}

}  // namespace

void bind_oci(py::module_& m) {
  m.def(
      "pull",
      [](const std::string& source, const std::string& store, std::optional<std::string> platform,
         std::vector<std::string> insecure_registries, std::optional<std::string> username,
         std::optional<std::string> password, std::optional<std::string> registry_token,
         std::optional<std::string> identity_token, const std::string& docker_config,
         const std::string& credential_helper_dir, const std::string& ca_file, int max_attempts,
         int backoff_initial_ms, int backoff_max_ms, int max_parallel, bool unpack,
         bool preserve_ownership, const std::string& gzip_engine, uint64_t max_entries,
         uint64_t max_layer_bytes, uint64_t max_image_ratio, uint64_t max_image_bytes,
         uint64_t min_free_bytes, std::optional<py::function> progress) {
        ImageSource src = parse_image_source(source);
        PullOptions opts;
        if (platform) opts.platform = Platform::parse(*platform);
        opts.registry.insecure_registries = std::move(insecure_registries);
        if (username || password || registry_token || identity_token) {
          Credentials c;
          c.username = username.value_or("");
          c.password = password.value_or("");
          c.registry_token = registry_token.value_or("");
          c.identity_token = identity_token.value_or("");
          opts.registry.credentials = c;
        }
        opts.registry.docker_config = docker_config;
        opts.registry.credential_helper_dir = credential_helper_dir;
        opts.registry.ca_file = ca_file;
        opts.registry.user_agent = std::string("benchrun/") + BENCHRUN_VERSION;
        opts.registry.max_attempts = max_attempts;
        opts.registry.backoff_initial_ms = backoff_initial_ms;
        opts.registry.backoff_max_ms = backoff_max_ms;
        opts.max_parallel_downloads = max_parallel;
        opts.unpack_rootfs = unpack;
        opts.unpack.preserve_ownership = preserve_ownership;
        if (gzip_engine == "zlib") {
          opts.unpack.gzip = GzipEngine::kZlib;
        } else if (gzip_engine == "isal") {
          opts.unpack.gzip = GzipEngine::kIsal;
        } else {
          throw ConfigError("gzip engine '" + gzip_engine + "': expected isal or zlib");
        }
        opts.unpack.limits.max_entries = max_entries;
        opts.unpack.limits.max_total_bytes = max_layer_bytes;
        opts.unpack.limits.max_image_ratio = max_image_ratio;
        opts.unpack.limits.max_image_bytes = max_image_bytes;
        opts.unpack.limits.min_free_bytes = min_free_bytes;
        if (progress) {
          py::function fn = *progress;
          opts.on_event = [fn](const PullEvent& e) {
            py::gil_scoped_acquire gil;
            fn(event_kind(e.kind), e.digest, e.done, e.total);
          };
        }
        Store st(store);
        Image img = [&] {
          py::gil_scoped_release nogil;
          return pull(src, st, opts);
        }();
        return image_dict(img);
      },
      py::kw_only(), py::arg("source"), py::arg("store"), py::arg("platform") = py::none(),
      py::arg("insecure_registries") = std::vector<std::string>{}, py::arg("username") = py::none(),
      py::arg("password") = py::none(), py::arg("registry_token") = py::none(),
      py::arg("identity_token") = py::none(), py::arg("docker_config") = "",
      py::arg("credential_helper_dir") = "", py::arg("ca_file") = "", py::arg("max_attempts") = 5,
      py::arg("backoff_initial_ms") = 200, py::arg("backoff_max_ms") = 10'000,
      py::arg("max_parallel") = 4, py::arg("unpack") = true, py::arg("preserve_ownership") = true,
      py::arg("gzip_engine") = "isal", py::arg("max_entries") = UnpackLimits{}.max_entries,
      py::arg("max_layer_bytes") = UnpackLimits{}.max_total_bytes,
      py::arg("max_image_ratio") = UnpackLimits{}.max_image_ratio,
      py::arg("max_image_bytes") = UnpackLimits{}.max_image_bytes,
      py::arg("min_free_bytes") = UnpackLimits{}.min_free_bytes, py::arg("progress") = py::none(),
      "Pull an image into the store; returns the image as a dict. Releases the GIL.");

  m.def(
      "load_image",
      [](const std::string& reference, const std::string& store) {
        Image img = [&] {
          py::gil_scoped_release nogil;
          return load_image(Store(store), reference);
        }();
        return image_dict(img);
      },
      py::kw_only(), py::arg("reference"), py::arg("store"),
      "Load an image already in the store by reference or manifest digest. Releases the GIL.");

  m.def(
      "list_images",
      [](const std::string& store) {
        Store st(store);
        struct Listed {
          ImageRecord record;
          std::optional<std::string> rootfs;
        };
        std::vector<Listed> listed;
        std::vector<std::pair<std::string, Digest>> refs;
        {
          py::gil_scoped_release nogil;
          refs = st.refs();
          for (auto& rec : st.list_images()) {
            std::optional<std::string> rootfs;
            if (rec.chain_id && st.has_rootfs(*rec.chain_id))
              rootfs = st.rootfs_path(*rec.chain_id).string();
            listed.push_back({std::move(rec), std::move(rootfs)});
          }
        }
        py::list out;
        for (const auto& [rec, rootfs] : listed) {
          py::dict d = record_dict(rec);
          py::list names;
          for (const auto& [ref, digest] : refs)
            if (digest == rec.manifest_digest) names.append(ref);
          d["references"] = names;
          d["rootfs"] = rootfs ? py::object(py::str(*rootfs)) : py::object(py::none());
          out.append(d);
        }
        return out;
      },
      py::kw_only(), py::arg("store"),
      "Every image record in the store with its references. Releases the GIL.");

  m.def(
      "remove_image",
      [](const std::string& reference, const std::string& store) {
        py::gil_scoped_release nogil;
        Store st(store);
        if (Digest::valid(reference)) return st.remove_image(Digest::parse(reference));
        ImageSource src = parse_image_source(reference);
        return st.remove_ref(source_key(src));
      },
      py::kw_only(), py::arg("reference"), py::arg("store"),
      "Remove a reference (or, given a manifest digest, the image and all its references). "
      "Releases the GIL.");

  m.def(
      "prune",
      [](const std::string& store) {
        Store st(store);
        PruneStats s = [&] {
          py::gil_scoped_release nogil;
          return st.prune();
        }();
        py::dict d;
        d["blobs_removed"] = s.blobs_removed;
        d["rootfs_removed"] = s.rootfs_removed;
        d["tmp_removed"] = s.tmp_removed;
        d["bytes_freed"] = s.bytes_freed;
        return d;
      },
      py::kw_only(), py::arg("store"),
      "Remove unreferenced blobs, rootfs trees and stale temp files.");

  m.def(
      "normalize_reference",
      [](const std::string& text) { return source_key(parse_image_source(text)); }, py::arg("text"),
      "Canonical form of an image reference or transport string.");

  m.def("host_platform", [] { return Platform::host().str(); });
  m.def(
      "resolve_digest",
      [](const std::string& reference, std::vector<std::string> insecure_registries,
         std::optional<std::string> username, std::optional<std::string> password,
         std::optional<std::string> registry_token, const std::string& docker_config,
         const std::string& ca_file) {
        Reference ref = parse_reference(reference);
        RegistryOptions ro;
        ro.insecure_registries = std::move(insecure_registries);
        if (username || password || registry_token) {
          Credentials c;
          c.username = username.value_or("");
          c.password = password.value_or("");
          c.registry_token = registry_token.value_or("");
          ro.credentials = c;
        }
        ro.docker_config = docker_config;
        ro.ca_file = ca_file;
        ro.user_agent = std::string("benchrun/") + BENCHRUN_VERSION;
        py::gil_scoped_release nogil;
        RegistryClient client(ref, ro);
        ManifestResponse m = client.get_manifest(ref.manifest_ref());
        py::gil_scoped_acquire gil;
        py::dict d;
        d["digest"] = m.digest.str();
        d["registry"] = ref.registry;
        d["repository"] = ref.repository;
        d["base_url"] = client.base_url();
        d["media_type"] = m.content_type;
        return d;
      },
      py::kw_only(), py::arg("reference"),
      py::arg("insecure_registries") = std::vector<std::string>{}, py::arg("username") = py::none(),
      py::arg("password") = py::none(), py::arg("registry_token") = py::none(),
      py::arg("docker_config") = "", py::arg("ca_file") = "",
      "Fetch a reference's manifest (no blobs) and return its digest, registry, repository and the "
      "registry's base URL. Releases the GIL.");
}

}  // namespace benchrun::bindings
