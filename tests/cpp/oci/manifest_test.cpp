// manifest_test.cpp: manifest/index validation, platform selection, config parsing, compression.
#include "benchrun/oci/manifest.hpp"

#include <gtest/gtest.h>
#include <sys/utsname.h>

#include <nlohmann/json.hpp>

#include "benchrun/common/error.hpp"

using benchrun::ConfigError;
using benchrun::ImageError;
using benchrun::oci::Compression;
using benchrun::oci::compression_for;
using benchrun::oci::Descriptor;
using benchrun::oci::Index;
using benchrun::oci::parse_config;
using benchrun::oci::parse_manifest;
using benchrun::oci::Platform;
using benchrun::oci::select_platform;
using nlohmann::json;
namespace media_type = benchrun::oci::media_type;

namespace {

std::string dg(char c) { return "sha256:" + std::string(64, c); }

json oci_manifest() {
  return json{
      {"schemaVersion", 2},
      {"mediaType", media_type::kOciManifest},
      {"config", {{"mediaType", media_type::kOciConfig}, {"digest", dg('c')}, {"size", 1234}}},
      {"layers", json::array({{{"mediaType", "application/vnd.oci.image.layer.v1.tar+gzip"},
                               {"digest", dg('1')},
                               {"size", 100}},
                              {{"mediaType", "application/vnd.oci.image.layer.v1.tar+zstd"},
                               {"digest", "sha512:" + std::string(128, '2')},
                               {"size", 200},
                               {"annotations", {{"org.example", "x"}}}}})},
      {"annotations", {{"org.opencontainers.image.created", "2024-01-01T00:00:00Z"}}},
      {"unknownField", {1, 2, 3}},
  };
}

json index_entry(const std::string& media, char d, const std::string& os, const std::string& arch,
                 const std::string& variant = "") {
  json e = {{"mediaType", media}, {"digest", dg(d)}, {"size", 500}};
  if (!os.empty()) {
    e["platform"] = {{"os", os}, {"architecture", arch}};
    if (!variant.empty()) e["platform"]["variant"] = variant;
  }
  return e;
}

// A buildx-style index: amd64, arm64/v8, an attestation, and an entry of an unknown type.
json buildx_index() {
  json attestation = index_entry(std::string(media_type::kOciManifest), 'd', "unknown", "unknown");
  attestation["annotations"] = {{"vnd.docker.reference.type", "attestation-manifest"},
                                {"vnd.docker.reference.digest", dg('a')}};
  return json{
      {"schemaVersion", 2},
      {"mediaType", media_type::kOciIndex},
      {"manifests",
       json::array({index_entry("application/vnd.example.future+json", 'f', "linux", "amd64"),
                    index_entry(std::string(media_type::kOciManifest), 'a', "linux", "amd64"),
                    index_entry(std::string(media_type::kOciManifest), 'b', "linux", "arm64", "v8"),
                    attestation})}};
}

std::string error_of(const std::string& body, const std::string& ct) {
  try {
    parse_manifest(body, ct);
  } catch (const ImageError& e) {
    return e.what();
  }
  return "";
}

Index make_index(std::initializer_list<json> entries) {
  json j = {{"schemaVersion", 2}, {"mediaType", media_type::kOciIndex}, {"manifests", entries}};
  return *parse_manifest(j.dump(), "").index;
}

}  // namespace

TEST(Manifest, AcceptHeaderListsAllFourTypes) {
  std::string accept = media_type::accept_header();
  for (auto t : {media_type::kOciManifest, media_type::kOciIndex, media_type::kDockerManifest,
                 media_type::kDockerList})
    EXPECT_NE(accept.find(t), std::string::npos) << t;
  EXPECT_EQ(std::count(accept.begin(), accept.end(), ','), 3);
}

TEST(Manifest, ParsesOciManifest) {
  auto p = parse_manifest(oci_manifest().dump(), "application/vnd.oci.image.manifest.v1+json");
  ASSERT_TRUE(p.manifest);
  EXPECT_FALSE(p.index);
  EXPECT_EQ(p.media_type, media_type::kOciManifest);
  const auto& m = *p.manifest;
  EXPECT_EQ(m.config.media_type, media_type::kOciConfig);
  EXPECT_EQ(m.config.digest.str(), dg('c'));
  EXPECT_EQ(m.config.size, 1234);
  ASSERT_EQ(m.layers.size(), 2u);
  EXPECT_EQ(m.layers[1].digest.algorithm(), benchrun::oci::DigestAlgorithm::kSha512);
  EXPECT_EQ(m.layers[1].annotations.at("org.example"), "x");
}

TEST(Manifest, ParsesDockerV2ManifestWithContentTypeParameters) {
  json j = {
      {"schemaVersion", 2},
      {"mediaType", media_type::kDockerManifest},
      {"config", {{"mediaType", media_type::kDockerConfig}, {"digest", dg('c')}, {"size", 7}}},
      {"layers",
       {{{"mediaType", "application/vnd.docker.image.rootfs.diff.tar.gzip"},
         {"digest", dg('1')},
         {"size", 3}}}}};
  auto p = parse_manifest(j.dump(),
                          " Application/VND.docker.distribution.manifest.v2+json ; charset=utf-8");
  ASSERT_TRUE(p.manifest);
  EXPECT_EQ(p.media_type, media_type::kDockerManifest);
  EXPECT_EQ(p.manifest->layers.at(0).size, 3);
}

TEST(Manifest, ParsesIndexKeepingUnknownEntries) {
  auto p = parse_manifest(buildx_index().dump(), std::string(media_type::kOciIndex));
  ASSERT_TRUE(p.index);
  EXPECT_FALSE(p.manifest);
  ASSERT_EQ(p.index->manifests.size(), 4u);
  EXPECT_EQ(p.index->manifests[0].media_type, "application/vnd.example.future+json");
  ASSERT_TRUE(p.index->manifests[2].platform);
  EXPECT_EQ(p.index->manifests[2].platform->str(), "linux/arm64/v8");
  EXPECT_EQ(p.index->manifests[3].annotations.at("vnd.docker.reference.type"),
            "attestation-manifest");
}

TEST(Manifest, DecidesKindByShapeWhenUntyped) {
  json m = oci_manifest();
  m.erase("mediaType");
  auto p = parse_manifest(m.dump(), "");
  EXPECT_TRUE(p.manifest);
  EXPECT_EQ(p.media_type, media_type::kOciManifest);

  json i = buildx_index();
  i.erase("mediaType");
  p = parse_manifest(i.dump(), "application/json");  // generic type: no claim either way
  EXPECT_TRUE(p.index);
  EXPECT_EQ(p.media_type, media_type::kOciIndex);

  // The Content-Type alone decides when the body has no mediaType.
  p = parse_manifest(i.dump(), std::string(media_type::kDockerList));
  EXPECT_TRUE(p.index);
  EXPECT_EQ(p.media_type, media_type::kDockerList);
}

TEST(Manifest, RejectsContradictionsAndAmbiguity) {
  // Body says manifest, header says index.
  EXPECT_NE(error_of(oci_manifest().dump(), std::string(media_type::kOciIndex)).find("contradicts"),
            std::string::npos);
  // Header says index, untyped body is shaped like a manifest.
  json m = oci_manifest();
  m.erase("mediaType");
  EXPECT_NE(error_of(m.dump(), std::string(media_type::kOciIndex)).find("manifests"),
            std::string::npos);
  // Both manifests and layers/config (CVE-2021-41190), typed or not.
  json both = oci_manifest();
  both["manifests"] = json::array();
  EXPECT_NE(error_of(both.dump(), "").find("CVE-2021-41190"), std::string::npos);
  json both2 = buildx_index();
  both2["config"] = oci_manifest()["config"];
  EXPECT_NE(error_of(both2.dump(), std::string(media_type::kOciIndex)).find("CVE-2021-41190"),
            std::string::npos);
}

TEST(Manifest, RejectsOversizeBeforeParsing) {
  std::string big(benchrun::oci::kMaxManifestSize + 1, ' ');
  EXPECT_NE(error_of(big, "").find("more than the limit"), std::string::npos);
}

TEST(Manifest, RejectsSchema1) {
  json s1 = {{"schemaVersion", 1}, {"name", "library/busybox"}, {"fsLayers", json::array()}};
  for (auto& [body, ct] : std::vector<std::pair<std::string, std::string>>{
           {s1.dump(), ""},
           {s1.dump(), "application/vnd.docker.distribution.manifest.v1+prettyjws"},
           {"not even json", "application/vnd.docker.distribution.manifest.v1+json"}}) {
    EXPECT_NE(error_of(body, ct).find("schema 1"), std::string::npos) << ct;
  }
}

TEST(Manifest, RejectsMalformedDocuments) {
  auto with = [](auto edit) {
    json j = oci_manifest();
    edit(j);
    return error_of(j.dump(), "");
  };
  const std::pair<std::string, std::string> cases[] = {
      {with([](json& j) { j["layers"][0]["digest"] = "sha256:../../etc/passwd"; }),
       "layers[0].digest: invalid digest"},
      {with([](json& j) { j["config"]["digest"] = "sha256:" + std::string(64, 'A'); }),
       "config.digest: invalid digest"},
      {with([](json& j) { j["layers"][1].erase("digest"); }), "layers[1].digest"},
      {with([](json& j) { j["layers"][0]["size"] = -1; }), "layers[0].size: negative"},
      {with([](json& j) { j["layers"][0]["size"] = 1.5; }), "layers[0].size"},
      {with([](json& j) { j["layers"][0]["size"] = "100"; }), "layers[0].size"},
      {with([](json& j) { j["layers"][0]["mediaType"] = 5; }), "layers[0].mediaType"},
      {with([](json& j) { j["layers"][0].erase("mediaType"); }), "layers[0].mediaType: missing"},
      {with([](json& j) {
         j["layers"][0]["annotations"] = {{"k", 1}};
       }),
       "layers[0].annotations.k"},
      {with([](json& j) { j["layers"] = "x"; }), "layers"},
      {with([](json& j) { j.erase("config"); }), "config: missing"},
      {with([](json& j) { j["schemaVersion"] = 3; }), "schemaVersion: must be 2"},
      {with([](json& j) { j.erase("schemaVersion"); }), "schemaVersion: must be 2"},
      {with([](json& j) { j["mediaType"] = "application/vnd.oci.artifact.manifest.v1+json"; }),
       "unsupported manifest type"},
      {error_of("{", ""), "not valid JSON"},
      {error_of("[]", ""), "expected a JSON object"},
      {error_of(R"({"schemaVersion":2})", ""), "neither"},
  };
  for (const auto& [msg, want] : cases) {
    EXPECT_NE(msg.find(want), std::string::npos) << "got: " << msg << "\nwant: " << want;
    EXPECT_EQ(msg.rfind("parse manifest", 0), 0u) << msg;
  }
  json idx = buildx_index();
  idx["manifests"][1]["platform"]["architecture"] = 64;
  EXPECT_NE(error_of(idx.dump(), "").find("manifests[1].platform.architecture"), std::string::npos);
}

TEST(Platform, HostParseAndStr) {
  Platform h = Platform::host();
  EXPECT_EQ(h.os, "linux");
  struct utsname u {};
  ASSERT_EQ(::uname(&u), 0);
  std::string m = u.machine;
  if (m == "x86_64") {
    EXPECT_EQ(h.str(), "linux/amd64");
  } else if (m == "aarch64") {
    EXPECT_EQ(h.str(), "linux/arm64/v8");
  }
  EXPECT_NE(h.architecture, "x86_64");
  EXPECT_NE(h.architecture, "aarch64");

  EXPECT_EQ(Platform::parse("linux/arm64/v8").str(), "linux/arm64/v8");
  EXPECT_EQ(Platform::parse("linux/amd64").variant, "");
  EXPECT_EQ(Platform::parse("linux/x86_64").architecture, "amd64");
  EXPECT_EQ(Platform::parse("Linux/AARCH64").str(), "linux/arm64");
  for (const char* bad :
       {"", "linux", "linux/", "/amd64", "linux/arm/v7/x", "linux/am d64", "linux//v7"})
    EXPECT_THROW(Platform::parse(bad), ConfigError) << bad;
}

TEST(Platform, SelectsExactOsAndArchSkippingAttestationsAndUnknownTypes) {
  Index idx = *parse_manifest(buildx_index().dump(), "").index;
  // The unknown-type amd64 entry comes first but is skipped.
  EXPECT_EQ(select_platform(idx, {"linux", "amd64", ""}).digest.str(), dg('a'));
  EXPECT_EQ(select_platform(idx, {"linux", "arm64", "v8"}).digest.str(), dg('b'));
  EXPECT_EQ(select_platform(idx, {"linux", "arm64", ""}).digest.str(), dg('b'));
  try {
    select_platform(idx, {"linux", "s390x", ""});
    FAIL();
  } catch (const ImageError& e) {
    EXPECT_STREQ(e.what(),
                 "no image for platform linux/s390x in index (available: linux/amd64, "
                 "linux/arm64/v8)");
  }
  // Attestation entries are never selected, even when asked for unknown/unknown.
  EXPECT_THROW(select_platform(idx, {"unknown", "unknown", ""}), ImageError);
}

TEST(Platform, VariantRules) {
  std::string om(media_type::kOciManifest);
  Index arm64_plain = make_index({index_entry(om, '1', "linux", "arm64")});
  EXPECT_EQ(select_platform(arm64_plain, {"linux", "arm64", "v8"}).digest.str(), dg('1'));

  Index arm =
      make_index({index_entry(om, '6', "linux", "arm", "v6"), index_entry(om, '0', "linux", "arm"),
                  index_entry(om, '7', "linux", "arm", "v7")});
  EXPECT_EQ(select_platform(arm, {"linux", "arm", "v7"}).digest.str(), dg('7'));  // exact wins
  EXPECT_EQ(select_platform(arm, {"linux", "arm", "v5"}).digest.str(), dg('0'));  // no variant
  EXPECT_EQ(select_platform(arm, {"linux", "arm", ""}).digest.str(), dg('6'));    // first

  Index only_v6 = make_index({index_entry(om, '6', "linux", "arm", "v6")});
  EXPECT_THROW(select_platform(only_v6, {"linux", "arm", "v7"}), ImageError);

  // Docker list entries and nested indexes are selectable; entries without a platform are not.
  Index mixed =
      make_index({index_entry(om, '1', "", ""),
                  index_entry(std::string(media_type::kOciIndex), '2', "linux", "amd64"),
                  index_entry(std::string(media_type::kDockerManifest), '3', "linux", "ppc64le")});
  EXPECT_EQ(select_platform(mixed, {"linux", "amd64", ""}).digest.str(), dg('2'));
  EXPECT_EQ(select_platform(mixed, {"linux", "ppc64le", ""}).digest.str(), dg('3'));
  // A Windows entry does not match linux.
  Index win = make_index({index_entry(om, '1', "windows", "amd64")});
  EXPECT_THROW(select_platform(win, {"linux", "amd64", ""}), ImageError);
  Index none = make_index({});
  try {
    select_platform(none, {"linux", "amd64", ""});
    FAIL();
  } catch (const ImageError& e) {
    EXPECT_NE(std::string(e.what()).find("(available: none)"), std::string::npos);
  }
}

TEST(ManifestConfig, ParsesRunFields) {
  json c = {{"architecture", "arm64"},
            {"variant", "v8"},
            {"os", "linux"},
            {"created", "2024-05-01T10:00:00Z"},
            {"config",
             {{"Entrypoint", {"/bin/sh", "-c"}},
              {"Cmd", nullptr},
              {"Env", {"PATH=/usr/bin", "A=b=c"}},
              {"WorkingDir", "/work"},
              {"User", "1000:1000"},
              {"StopSignal", "SIGINT"},
              {"Labels", {{"org.example", "yes"}}},
              {"ExposedPorts", {{"80/tcp", json::object()}}},
              {"Healthcheck", {{"Test", {"CMD", "true"}}}}}},
            {"rootfs", {{"type", "layers"}, {"diff_ids", {dg('1'), dg('2')}}}},
            {"history", json::array()}};
  auto cfg = parse_config(c.dump());
  EXPECT_EQ(cfg.architecture, "arm64");
  EXPECT_EQ(cfg.variant, "v8");
  EXPECT_EQ(cfg.os, "linux");
  EXPECT_EQ(cfg.created, "2024-05-01T10:00:00Z");
  EXPECT_EQ(cfg.entrypoint, (std::vector<std::string>{"/bin/sh", "-c"}));
  EXPECT_TRUE(cfg.cmd.empty());
  EXPECT_EQ(cfg.env.size(), 2u);
  EXPECT_EQ(cfg.working_dir, "/work");
  EXPECT_EQ(cfg.user, "1000:1000");
  EXPECT_EQ(cfg.stop_signal, "SIGINT");
  EXPECT_EQ(cfg.labels.at("org.example"), "yes");
  ASSERT_EQ(cfg.diff_ids.size(), 2u);
  EXPECT_EQ(cfg.diff_ids[1].str(), dg('2'));

  // A config with no "config" section at all (scratch images) and a null one.
  auto bare = parse_config(R"({"rootfs":{"type":"layers","diff_ids":[]}})");
  EXPECT_TRUE(bare.entrypoint.empty());
  auto null_cfg = parse_config(R"({"config":null,"rootfs":{"type":"layers","diff_ids":[]}})");
  EXPECT_TRUE(null_cfg.cmd.empty());
}

TEST(ManifestConfig, RejectsBadConfigs) {
  auto err = [](const std::string& body) -> std::string {
    try {
      parse_config(body);
    } catch (const ImageError& e) {
      return e.what();
    }
    return "";
  };
  const std::pair<std::string, std::string> cases[] = {
      {R"({"rootfs":{"type":"zfs","diff_ids":[]}})", "rootfs.type: 'zfs' is not supported"},
      {R"({"rootfs":{"diff_ids":[]}})", "rootfs.type"},
      {R"({"os":"linux"})", "rootfs: missing"},
      {R"({"rootfs":{"type":"layers","diff_ids":["sha256:x"]}})", "rootfs.diff_ids[0]"},
      {R"({"rootfs":{"type":"layers","diff_ids":"x"}})", "rootfs.diff_ids"},
      {R"({"rootfs":{"type":"layers"},"config":{"Cmd":"echo hi"}})", "config.Cmd"},
      {R"({"rootfs":{"type":"layers"},"config":{"Env":["A=1",2]}})", "config.Env[1]"},
      {R"({"rootfs":{"type":"layers"},"config":{"User":0}})", "config.User"},
      {R"({"rootfs":{"type":"layers"},"config":{"Labels":{"a":1}}})", "config.Labels.a"},
      {R"({"rootfs":{"type":"layers"},"config":[]})", "config"},
      {R"({"rootfs":{"type":"layers"},"architecture":1})", "architecture"},
      {"nope", "not valid JSON"},
      {std::string(benchrun::oci::kMaxConfigSize + 1, ' '), "more than the limit"},
  };
  for (const auto& [body, want] : cases) {
    std::string msg = err(body);
    EXPECT_NE(msg.find(want), std::string::npos) << "got: " << msg << "\nwant: " << want;
    EXPECT_EQ(msg.rfind("parse image config", 0), 0u) << msg;
  }
}

TEST(Manifest, CompressionForLayerTypes) {
  const std::pair<const char*, Compression> cases[] = {
      {"application/vnd.oci.image.layer.v1.tar", Compression::kNone},
      {"application/vnd.oci.image.layer.v1.tar+gzip", Compression::kGzip},
      {"application/vnd.oci.image.layer.v1.tar+zstd", Compression::kZstd},
      {"application/vnd.oci.image.layer.nondistributable.v1.tar", Compression::kNone},
      {"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", Compression::kGzip},
      {"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", Compression::kZstd},
      {"application/vnd.docker.image.rootfs.diff.tar.gzip", Compression::kGzip},
      {"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", Compression::kGzip},
      {"application/vnd.docker.image.rootfs.diff.tar", Compression::kNone},
  };
  for (const auto& [t, c] : cases) EXPECT_EQ(compression_for(t), c) << t;
  for (const char* bad : {"", "application/vnd.oci.image.layer.v1.tar+bzip2",
                          "application/vnd.oci.image.config.v1+json", "application/octet-stream"})
    EXPECT_THROW(compression_for(bad), ImageError) << bad;
}

// Finding 10 (issue 11): a NUL in a config string was cut off where the string became a C string
// (argv, env, chdir): "/bin/echo\0x" ran /bin/echo. The image is refused instead.
TEST(ManifestConfig, NulInConfigStringsIsRefused) {
  for (const char* field :
       {R"("Entrypoint":["/bin/sh\u0000x"])", R"("Cmd":["a","b\u0000"])",
        R"("Env":["A=1\u0000B=2"])", R"("WorkingDir":"/w\u0000/x")", R"("User":"0\u0000:0")"}) {
    const std::string body =
        std::string(R"({"rootfs":{"type":"layers","diff_ids":[]},"config":{)") + field + "}}";
    try {
      parse_config(body);
      ADD_FAILURE() << "accepted " << field;
    } catch (const ImageError& e) {
      EXPECT_NE(std::string(e.what()).find("NUL"), std::string::npos) << e.what();
    }
  }
  EXPECT_NO_THROW(parse_config(
      R"({"rootfs":{"type":"layers","diff_ids":[]},"config":{"Entrypoint":["/bin/sh"]}})"));
}
