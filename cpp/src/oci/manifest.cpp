// manifest.cpp: strict parsing of manifests, indexes and image configs (image-spec manifest.md,
// image-index.md, config.md; Docker manifest-v2-2.md) and platform selection.
//
// Hostile-input rules (oci-notes §1.3): size cap before parsing, Content-Type parameters stripped,
// a body mediaType must agree with the Content-Type, and a document that is both an index and a
// manifest is refused (CVE-2021-41190). Every descriptor digest is validated before anyone can use
// it as a file name.
#include "benchrun/oci/manifest.hpp"

#include <sys/utsname.h>

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>

#include "benchrun/common/error.hpp"
#include "benchrun/common/text.hpp"

namespace benchrun::oci {

using nlohmann::json;

namespace {

constexpr std::string_view kSchema1 = "application/vnd.docker.distribution.manifest.v1+json";
constexpr std::string_view kSchema1Signed =
    "application/vnd.docker.distribution.manifest.v1+prettyjws";
constexpr std::string_view kAttestationAnnotation = "vnd.docker.reference.type";
constexpr size_t kMaxListedPlatforms = 16;

// Printable, bounded rendering of hostile text for error messages.
std::string trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(" \t");
  return std::string(s.substr(b, e - b + 1));
}

// Thrown for the document being parsed: "parse manifest: layers[0].digest: <cause>".
class Doc {
 public:
  explicit Doc(std::string_view what) : what_(what) {}
  [[noreturn]] void fail(const std::string& field, const std::string& cause) const {
    throw ImageError("parse " + what_ + ": " + (field.empty() ? "" : field + ": ") + cause);
  }

  json parse(std::string_view body, size_t cap) const {
    if (body.size() > cap)
      fail("",
           std::to_string(body.size()) + " bytes is more than the limit of " + std::to_string(cap));
    json j = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) fail("", "not valid JSON");
    if (!j.is_object()) fail("", std::string("expected a JSON object, got ") + j.type_name());
    return j;
  }

  // Optional string member: absent or null -> empty.
  std::string str(const json& obj, const char* key, const std::string& field) const {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return {};
    if (!it->is_string()) fail(field, std::string("expected a string, got ") + it->type_name());
    return no_nul(it->get<std::string>(), field);
  }

  // A NUL would silently truncate the string where it becomes a C string (argv, env, paths):
  // the image is refused instead of running something other than what it declares.
  std::string no_nul(std::string s, const std::string& field) const {
    if (s.find('\0') != std::string::npos)
      fail(field, "contains a NUL byte ('" + printable(s, 64) + "'); refusing the image");
    return s;
  }

  std::vector<std::string> str_list(const json& obj, const char* key,
                                    const std::string& field) const {
    std::vector<std::string> out;
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return out;
    if (!it->is_array())
      fail(field, std::string("expected an array of strings, got ") + it->type_name());
    for (size_t i = 0; i < it->size(); ++i) {
      const json& v = (*it)[i];
      if (!v.is_string())
        fail(field + "[" + std::to_string(i) + "]",
             std::string("expected a string, got ") + v.type_name());
      out.push_back(no_nul(v.get<std::string>(), field + "[" + std::to_string(i) + "]"));
    }
    return out;
  }

  std::map<std::string, std::string> str_map(const json& obj, const char* key,
                                             const std::string& field) const {
    std::map<std::string, std::string> out;
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return out;
    if (!it->is_object())
      fail(field, std::string("expected an object of strings, got ") + it->type_name());
    for (const auto& [k, v] : it->items()) {
      if (!v.is_string())
        fail(field + "." + printable(k, 64),
             std::string("expected a string, got ") + v.type_name());
      out.emplace(k, v.get<std::string>());
    }
    return out;
  }

  Digest digest(const std::string& text, const std::string& field) const {
    if (!Digest::valid(text))
      fail(field, "invalid digest '" + printable(text) +
                      "' (expected sha256:<64 lowercase hex> or sha512:<128 lowercase hex>)");
    return Digest::parse(text);
  }

 private:
  std::string what_;
};

Platform parse_platform(const Doc& doc, const json& j, const std::string& field) {
  if (!j.is_object()) doc.fail(field, std::string("expected an object, got ") + j.type_name());
  Platform p;
  p.os = doc.str(j, "os", field + ".os");
  p.architecture = doc.str(j, "architecture", field + ".architecture");
  p.variant = doc.str(j, "variant", field + ".variant");
  return p;
}

Descriptor parse_descriptor(const Doc& doc, const json& j, const std::string& field,
                            bool media_type_required) {
  if (!j.is_object()) doc.fail(field, std::string("expected an object, got ") + j.type_name());
  Descriptor d;
  d.media_type = doc.str(j, "mediaType", field + ".mediaType");
  if (media_type_required && d.media_type.empty()) doc.fail(field + ".mediaType", "missing");
  auto dg = j.find("digest");
  if (dg == j.end() || !dg->is_string()) doc.fail(field + ".digest", "missing or not a string");
  d.digest = doc.digest(dg->get<std::string>(), field + ".digest");
  auto sz = j.find("size");
  if (sz == j.end()) doc.fail(field + ".size", "missing");
  if (sz->is_number_unsigned()) {
    if (sz->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      doc.fail(field + ".size", "too large");
    d.size = static_cast<int64_t>(sz->get<uint64_t>());
  } else if (sz->is_number_integer()) {
    d.size = sz->get<int64_t>();
    if (d.size < 0) doc.fail(field + ".size", "negative");
  } else {
    doc.fail(field + ".size",
             std::string("expected a non-negative integer, got ") + sz->type_name());
  }
  auto pl = j.find("platform");
  if (pl != j.end() && !pl->is_null()) d.platform = parse_platform(doc, *pl, field + ".platform");
  d.annotations = doc.str_map(j, "annotations", field + ".annotations");
  return d;
}

bool is_index_type(std::string_view t) {
  return t == media_type::kOciIndex || t == media_type::kDockerList;
}
bool is_manifest_type(std::string_view t) {
  return t == media_type::kOciManifest || t == media_type::kDockerManifest;
}
bool is_schema1(std::string_view t) { return t == kSchema1 || t == kSchema1Signed; }

// Content types that say nothing about which manifest this is (static file servers, some
// proxies); they are treated like an absent Content-Type.
bool is_generic_type(std::string_view t) {
  return t.empty() || t == "application/json" || t == "application/octet-stream" ||
         t == "text/plain";
}

[[noreturn]] void fail_schema1(const Doc& doc) {
  doc.fail("",
           "Docker schema 1 manifests are not supported (deprecated and refused by containerd "
           "2; re-push the image with a current docker or buildx)");
}

bool is_attestation(const Descriptor& d) {
  auto it = d.annotations.find(std::string(kAttestationAnnotation));
  if (it != d.annotations.end() && it->second == "attestation-manifest") return true;
  return d.platform && d.platform->os == "unknown" && d.platform->architecture == "unknown";
}

bool selectable(const Descriptor& d) {
  if (!d.media_type.empty() && !is_manifest_type(d.media_type) && !is_index_type(d.media_type))
    return false;
  return d.platform.has_value() && !is_attestation(d);
}

}  // namespace

std::string media_type::accept_header() {
  return std::string(kOciManifest) + ", " + std::string(kOciIndex) + ", " +
         std::string(kDockerManifest) + ", " + std::string(kDockerList);
}

std::string Platform::str() const {
  std::string s = os + "/" + architecture;
  if (!variant.empty()) s += "/" + variant;
  return s;
}

Platform Platform::host() {
  struct utsname u {};
  std::string machine = ::uname(&u) == 0 ? u.machine : "";
  Platform p{"linux", machine, ""};
  if (machine == "x86_64" || machine == "amd64") {
    p.architecture = "amd64";
  } else if (machine == "aarch64" || machine == "arm64") {
    p = {"linux", "arm64", "v8"};
  } else if (machine == "armv7l" || machine == "armv7") {
    p = {"linux", "arm", "v7"};
  } else if (machine == "armv6l") {
    p = {"linux", "arm", "v6"};
  } else if (machine == "armv8l") {  // 32-bit userland on an ARMv8 CPU
    p = {"linux", "arm", "v8"};
  } else if (machine == "i386" || machine == "i486" || machine == "i586" || machine == "i686") {
    p.architecture = "386";
  } else if (machine == "loongarch64") {
    p.architecture = "loong64";
  }
  // ppc64le, s390x, riscv64, mips64 ... are already GOARCH names.
  return p;
}

Platform Platform::parse(std::string_view text) {
  auto bad = [&](const std::string& cause) {
    return ConfigError("invalid platform '" + printable(text) + "': " + cause +
                       " (expected os/arch[/variant], e.g. linux/arm64/v8)");
  };
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    size_t slash = text.find('/', start);
    parts.emplace_back(text.substr(start, slash == std::string_view::npos ? slash : slash - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  if (parts.size() < 2 || parts.size() > 3) throw bad("wrong number of components");
  for (auto& p : parts) {
    if (p.empty()) throw bad("empty component");
    for (char c : p)
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '.' || c == '_' || c == '-'))
        throw bad("unexpected character");
    p = lower(p);
  }
  Platform pl{parts[0], parts[1], parts.size() == 3 ? parts[2] : ""};
  // Common uname spellings, as containerd's platforms.Normalize does.
  if (pl.architecture == "x86_64" || pl.architecture == "x86-64") pl.architecture = "amd64";
  if (pl.architecture == "aarch64") pl.architecture = "arm64";
  if (pl.architecture == "i386" || pl.architecture == "i686") pl.architecture = "386";
  return pl;
}

ParsedManifest parse_manifest(std::string_view body, std::string_view content_type) {
  Doc doc("manifest");
  if (body.size() > kMaxManifestSize)
    doc.fail("", std::to_string(body.size()) + " bytes is more than the limit of " +
                     std::to_string(kMaxManifestSize));
  std::string ct = lower(trim(content_type.substr(0, content_type.find(';'))));
  if (is_schema1(ct)) fail_schema1(doc);
  if (is_generic_type(ct)) ct.clear();

  json j = doc.parse(body, kMaxManifestSize);
  std::string declared = doc.str(j, "mediaType", "mediaType");
  if (is_schema1(declared)) fail_schema1(doc);
  auto sv = j.find("schemaVersion");
  if (sv != j.end() && sv->is_number_integer() && sv->get<int64_t>() == 1) fail_schema1(doc);
  if (sv == j.end() || !sv->is_number_integer() || sv->get<int64_t>() != 2)
    doc.fail("schemaVersion", "must be 2");

  bool has_manifests = j.contains("manifests");
  bool has_layers = j.contains("layers");
  bool has_config = j.contains("config");
  if (has_manifests && (has_layers || has_config))
    doc.fail("",
             "has both 'manifests' and 'layers'/'config', so it is ambiguous between an "
             "index and a manifest (CVE-2021-41190)");
  if (!declared.empty() && !ct.empty() && lower(declared) != ct)
    doc.fail("mediaType",
             "'" + printable(declared) + "' contradicts the Content-Type '" + printable(ct) + "'");

  std::string type = !declared.empty() ? declared : ct;
  if (type.empty()) {
    // image-spec 1.0 made mediaType optional: decide by shape (Docker types always carry it).
    if (has_manifests)
      type = std::string(media_type::kOciIndex);
    else if (has_layers || has_config)
      type = std::string(media_type::kOciManifest);
    else
      doc.fail("", "neither 'manifests' nor 'layers'/'config': not an index or image manifest");
  }

  ParsedManifest out;
  out.media_type = type;
  if (is_index_type(type)) {
    auto m = j.find("manifests");
    if (m == j.end() || !m->is_array()) doc.fail("manifests", "missing or not an array");
    Index idx;
    idx.media_type = type;
    idx.manifests.reserve(m->size());
    for (size_t i = 0; i < m->size(); ++i)
      idx.manifests.push_back(
          parse_descriptor(doc, (*m)[i], "manifests[" + std::to_string(i) + "]", false));
    out.index = std::move(idx);
  } else if (is_manifest_type(type)) {
    auto c = j.find("config");
    if (c == j.end()) doc.fail("config", "missing");
    auto l = j.find("layers");
    if (l == j.end() || !l->is_array()) doc.fail("layers", "missing or not an array");
    Manifest man;
    man.media_type = type;
    man.config = parse_descriptor(doc, *c, "config", true);
    man.layers.reserve(l->size());
    for (size_t i = 0; i < l->size(); ++i)
      man.layers.push_back(
          parse_descriptor(doc, (*l)[i], "layers[" + std::to_string(i) + "]", true));
    out.manifest = std::move(man);
  } else {
    doc.fail("mediaType", "unsupported manifest type '" + printable(type) +
                              "' (expected an OCI or Docker v2 image manifest or index)");
  }
  return out;
}

const Descriptor& select_platform(const Index& index, const Platform& want) {
  const Descriptor* exact = nullptr;
  const Descriptor* no_variant = nullptr;
  for (const auto& d : index.manifests) {
    if (!selectable(d)) continue;
    const Platform& p = *d.platform;
    if (p.os != want.os || p.architecture != want.architecture) continue;
    if (want.variant.empty()) return d;  // first match wins (image-index.md)
    if (p.variant == want.variant) {
      exact = &d;
      break;
    }
    if (p.variant.empty() && !no_variant) no_variant = &d;
  }
  if (exact) return *exact;
  if (no_variant) return *no_variant;

  std::vector<std::string> available;
  size_t more = 0;
  for (const auto& d : index.manifests) {
    if (!selectable(d)) continue;
    std::string s = printable(d.platform->str(), 64);
    if (std::find(available.begin(), available.end(), s) != available.end()) continue;
    if (available.size() == kMaxListedPlatforms) {
      ++more;
      continue;
    }
    available.push_back(std::move(s));
  }
  std::string list;
  for (const auto& s : available) list += (list.empty() ? "" : ", ") + s;
  if (more) list += ", and " + std::to_string(more) + " more";
  if (list.empty()) list = "none";
  throw ImageError("no image for platform " + printable(want.str(), 64) +
                   " in index (available: " + list + ")");
}

ImageConfig parse_config(std::string_view body) {
  Doc doc("image config");
  json j = doc.parse(body, kMaxConfigSize);
  ImageConfig cfg;
  cfg.os = doc.str(j, "os", "os");
  cfg.architecture = doc.str(j, "architecture", "architecture");
  cfg.variant = doc.str(j, "variant", "variant");
  cfg.created = doc.str(j, "created", "created");

  auto rootfs = j.find("rootfs");
  if (rootfs == j.end() || !rootfs->is_object()) doc.fail("rootfs", "missing or not an object");
  std::string type = doc.str(*rootfs, "type", "rootfs.type");
  if (type != "layers")
    doc.fail("rootfs.type", "'" + printable(type) + "' is not supported (must be 'layers')");
  auto ids = doc.str_list(*rootfs, "diff_ids", "rootfs.diff_ids");
  cfg.diff_ids.reserve(ids.size());
  for (size_t i = 0; i < ids.size(); ++i)
    cfg.diff_ids.push_back(doc.digest(ids[i], "rootfs.diff_ids[" + std::to_string(i) + "]"));

  auto c = j.find("config");
  if (c != j.end() && !c->is_null()) {
    if (!c->is_object())
      doc.fail("config", std::string("expected an object, got ") + c->type_name());
    cfg.entrypoint = doc.str_list(*c, "Entrypoint", "config.Entrypoint");
    cfg.cmd = doc.str_list(*c, "Cmd", "config.Cmd");
    cfg.env = doc.str_list(*c, "Env", "config.Env");
    cfg.working_dir = doc.str(*c, "WorkingDir", "config.WorkingDir");
    cfg.user = doc.str(*c, "User", "config.User");
    cfg.stop_signal = doc.str(*c, "StopSignal", "config.StopSignal");
    cfg.labels = doc.str_map(*c, "Labels", "config.Labels");
  }
  return cfg;
}

Compression compression_for(std::string_view t) {
  if (t == "application/vnd.oci.image.layer.v1.tar" ||
      t == "application/vnd.oci.image.layer.nondistributable.v1.tar" ||
      t == "application/vnd.docker.image.rootfs.diff.tar")
    return Compression::kNone;
  if (t == "application/vnd.oci.image.layer.v1.tar+gzip" ||
      t == "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip" ||
      t == "application/vnd.docker.image.rootfs.diff.tar.gzip" ||
      t == "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip")
    return Compression::kGzip;
  if (t == "application/vnd.oci.image.layer.v1.tar+zstd" ||
      t == "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd")
    return Compression::kZstd;
  throw ImageError("unsupported layer media type '" + printable(t) +
                   "' (expected an OCI or Docker tar, tar+gzip or tar+zstd layer)");
}

}  // namespace benchrun::oci
