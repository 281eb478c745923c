// corpus_test.cpp: every C++ parser of untrusted bytes against every file of its kind in the
// hostile-input corpus (tests/corpus/<kind>/, written by tests/corpus/generate.py).
//
// Each file must end either accepted or in the parser's typed error, never another exception, a
// crash or a sanitizer report (this suite also runs under ASan/UBSan); a file named "reject-*" must
// end in the typed error, one named "ok-*" must be accepted. Layers are applied as root would, into
// a directory beside a sentinel that must stay untouched.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "benchrun/common/error.hpp"
#include "benchrun/common/fs.hpp"
#include "benchrun/common/unique_fd.hpp"
#include "benchrun/oci/auth.hpp"
#include "benchrun/oci/digest.hpp"
#include "benchrun/oci/layer_unpack.hpp"
#include "benchrun/oci/manifest.hpp"
#include "benchrun/oci/reference.hpp"
#include "benchrun/oci/store.hpp"
#include "benchrun/proto/frame.hpp"
#include "benchrun/proto/messages.hpp"
#include "oci/source.hpp"

namespace fs = std::filesystem;
namespace oci = benchrun::oci;
namespace proto = benchrun::proto;

namespace {

struct Sample {
  std::string name;
  std::string bytes;
  bool reject = false;
  bool ok = false;
};

std::vector<Sample> load(const std::string& kind) {
  const fs::path dir = fs::path(BENCHRUN_SOURCE_DIR) / "tests" / "corpus" / kind;
  std::vector<Sample> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::ifstream in(e.path(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::string name = e.path().filename();
    out.push_back(
        {name, std::move(bytes), name.rfind("reject-", 0) == 0, name.rfind("ok-", 0) == 0});
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

// Runs parse on every sample of kind: Typed (or success) only, Typed for reject-* files.
template <typename Typed>
void every_sample(const std::string& kind, const std::function<void(const std::string&)>& parse,
                  bool check_ok = true) {
  auto samples = load(kind);
  ASSERT_FALSE(samples.empty()) << "no corpus for " << kind;
  for (const auto& s : samples) {
    SCOPED_TRACE(kind + "/" + s.name);
    bool refused = false;
    try {
      parse(s.bytes);
    } catch (const Typed&) {
      refused = true;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "untyped exception: " << e.what();
      continue;
    }
    if (s.ok && check_ok) {
      EXPECT_FALSE(refused) << "refused a file the corpus marks ok-";
    }
    if (s.reject) {
      EXPECT_TRUE(refused) << "accepted a file the corpus marks reject-";
    }
  }
}

TEST(Corpus, References) {
  every_sample<benchrun::ConfigError>("reference", [](const std::string& text) {
    auto src = oci::parse_image_source(text);
    (void)src.str();
    if (src.transport != oci::Transport::kDocker) return;
    oci::Reference r =
        oci::parse_reference(text.rfind("docker://", 0) == 0 ? text.substr(9) : text);
    EXPECT_EQ(oci::parse_reference(r.str()).str(), r.str());
  });
}

TEST(Corpus, Manifests) {
  for (std::string_view ct : {std::string_view{}, oci::media_type::kOciManifest,
                              oci::media_type::kOciIndex, oci::media_type::kDockerList}) {
    SCOPED_TRACE("content type '" + std::string(ct) + "'");
    every_sample<benchrun::ImageError>(
        "manifest",
        [ct](const std::string& body) {
          auto m = oci::parse_manifest(body, ct);
          if (m.index) (void)oci::select_platform(*m.index, oci::Platform::parse("linux/amd64"));
        },
        /*check_ok=*/ct.empty());  // a body under another type's Content-Type is refused
  }
}

TEST(Corpus, Configs) {
  every_sample<benchrun::ImageError>(
      "config", [](const std::string& body) { (void)oci::parse_config(body); });
}

TEST(Corpus, AuthChallengesAndDigests) {
  every_sample<benchrun::ImageError>("auth_challenge", [](const std::string& text) {
    (void)oci::parse_www_authenticate(text);
    (void)oci::digest_from_key(text);
    EXPECT_EQ(oci::Digest::valid(text), oci::Digest::parse(text).str() == text);
  });
}

std::set<std::string> names_in(const fs::path& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.insert(e.path().filename());
  return out;
}

TEST(Corpus, Layers) {
  every_sample<benchrun::Error>("layer", [](const std::string& blob) {
    // base/{sentinel, a/b/root}: the root three levels down, so "../../.." still lands in base.
    benchrun::TempDir base(fs::temp_directory_path(), "corpus-layer-");
    const fs::path root = base.path() / "a" / "b" / "root";
    fs::create_directories(root);
    std::ofstream(base.path() / "sentinel") << "keep";
    benchrun::UniqueFd blob_fd(::memfd_create("layer", MFD_CLOEXEC));
    ASSERT_EQ(::write(blob_fd.get(), blob.data(), blob.size()), static_cast<ssize_t>(blob.size()));
    ::lseek(blob_fd.get(), 0, SEEK_SET);
    oci::Compression c = oci::Compression::kNone;
    if (blob.rfind("\x1f\x8b", 0) == 0) c = oci::Compression::kGzip;
    if (blob.rfind("\x28\xb5\x2f\xfd", 0) == 0) c = oci::Compression::kZstd;
    benchrun::UniqueFd rootfd(::open(root.c_str(), O_DIRECTORY | O_RDONLY | O_CLOEXEC));
    oci::UnpackOptions options;
    options.preserve_ownership = ::geteuid() == 0;
    auto check = [&] {
      EXPECT_EQ(names_in(base.path()), (std::set<std::string>{"a", "sentinel"}));
      EXPECT_EQ(names_in(base.path() / "a"), std::set<std::string>{"b"});
      EXPECT_EQ(names_in(base.path() / "a" / "b"), std::set<std::string>{"root"});
      EXPECT_FALSE(fs::exists("/abs-escape") || fs::exists("/abs-symlink-escape") ||
                   fs::exists("/dotdot-escape") || fs::exists("/symlink-escape"));
      std::ifstream in(base.path() / "sentinel");
      std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      EXPECT_EQ(text, "keep");
    };
    try {
      oci::apply_layer(rootfd.get(), blob_fd.get(), c, oci::DigestAlgorithm::kSha256, options);
    } catch (...) {
      check();
      throw;
    }
    check();
  });
}

TEST(Corpus, DockerArchives) {
  benchrun::TempDir work(fs::temp_directory_path(), "corpus-archive-");
  oci::Store store(work.path() / "store");
  every_sample<benchrun::Error>("docker_archive", [&](const std::string& bytes) {
    const fs::path tarball = work.path() / "archive.tar";
    std::ofstream(tarball, std::ios::binary | std::ios::trunc) << bytes;
    auto source = oci::open_docker_archive_source(tarball, "", store);
    (void)source->resolve(oci::Platform::parse("linux/amd64"));
  });
  EXPECT_EQ(names_in(work.path()), (std::set<std::string>{"archive.tar", "store"}));
}

// A stream of frames as the host reads it from a guest: any header or payload error is a
// ProtocolError, whether the bytes arrive at once or one at a time.
TEST(Corpus, GuestFrames) {
  for (size_t step : {size_t{1}, size_t{7}, size_t{1} << 20}) {
    SCOPED_TRACE("feed step " + std::to_string(step));
    every_sample<benchrun::ProtocolError>("frames", [step](const std::string& stream) {
      proto::Decoder d;
      size_t pos = 0;
      bool ended = false;
      while (pos < stream.size()) {
        size_t n = d.feed(stream.data() + pos, std::min(step, stream.size() - pos));
        pos += n;
        while (auto f = d.next()) {
          switch (f->type) {
            case proto::FrameType::kHello:
              (void)proto::decode_hello(*f);
              break;
            case proto::FrameType::kRunConfig:
              (void)proto::decode_run_config(*f);
              break;
            case proto::FrameType::kFile:
              (void)proto::decode_file(*f);
              break;
            case proto::FrameType::kFileMissing:
              (void)proto::decode_file_missing(*f);
              break;
            case proto::FrameType::kExit:
              (void)proto::decode_exit(*f);
              break;
            case proto::FrameType::kMetrics:
              (void)proto::decode_metrics(*f);
              break;
            case proto::FrameType::kError:
              (void)proto::decode_error(*f);
              break;
            case proto::FrameType::kEnd:
              ended = true;
              break;
            case proto::FrameType::kStdout:
            case proto::FrameType::kStderr:
              break;
          }
        }
      }
      if (d.buffered() != 0) throw benchrun::ProtocolError("stream ends inside a frame");
      (void)ended;
    });
  }
}

}  // namespace
