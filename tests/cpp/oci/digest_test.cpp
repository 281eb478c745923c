// digest_test.cpp: digest validation and hashing.
#include "benchrun/oci/digest.hpp"

#include <gtest/gtest.h>

#include "benchrun/common/error.hpp"

using benchrun::ImageError;
using benchrun::oci::Digest;
using benchrun::oci::DigestAlgorithm;

TEST(Digest, ParsesSha256AndSha512) {
  auto d = Digest::parse("sha256:" + std::string(64, 'a'));
  EXPECT_EQ(d.algorithm(), DigestAlgorithm::kSha256);
  EXPECT_EQ(d.hex(), std::string(64, 'a'));
  auto e = Digest::parse("sha512:" + std::string(128, '0'));
  EXPECT_EQ(e.algorithm(), DigestAlgorithm::kSha512);
}

TEST(Digest, RejectsMalformed) {
  for (std::string bad :
       {std::string("sha256:") + std::string(64, 'A'),  // uppercase
        std::string("sha256:") + std::string(63, 'a'),  // short
        std::string("sha256:") + std::string(65, 'a'),  // long
        std::string("sha256:../../../etc/passwd"), std::string("md5:abcd"), std::string("sha256"),
        std::string(""), std::string("sha512:") + std::string(64, 'a'),
        std::string("sha256:") + std::string(62, 'a') + "/x"}) {
    EXPECT_FALSE(Digest::valid(bad)) << bad;
    EXPECT_THROW(Digest::parse(bad), ImageError) << bad;
  }
}

TEST(Digest, HashesKnownVectors) {
  EXPECT_EQ(benchrun::oci::digest_of("").str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(benchrun::oci::digest_of("abc", DigestAlgorithm::kSha512).hex().substr(0, 16),
            "ddaf35a193617aba");
  benchrun::oci::Hasher h(DigestAlgorithm::kSha256);
  h.update("a");
  h.update("bc");
  EXPECT_EQ(h.finish(), benchrun::oci::digest_of("abc"));
}

TEST(Digest, ChainIdFollowsSpec) {
  auto a = benchrun::oci::digest_of("a");
  auto b = benchrun::oci::digest_of("b");
  EXPECT_EQ(benchrun::oci::chain_id({a}), a);
  EXPECT_EQ(benchrun::oci::chain_id({a, b}), benchrun::oci::digest_of(a.str() + " " + b.str()));
}

TEST(Digest, KeyIsAFileNameAndRoundTrips) {
  const Digest d = Digest::parse("sha256:" + std::string(64, 'b'));
  EXPECT_EQ(benchrun::oci::key_of(d), "sha256-" + std::string(64, 'b'));
  EXPECT_EQ(benchrun::oci::digest_from_key(benchrun::oci::key_of(d)), d);
  const Digest e = Digest::parse("sha512:" + std::string(128, 'c'));
  EXPECT_EQ(benchrun::oci::digest_from_key(benchrun::oci::key_of(e)), e);
  for (std::string other : {std::string("sha256") + std::string(64, 'b'),   // no dash
                            std::string("sha256-") + std::string(63, 'b'),  // short
                            std::string("sha256:") + std::string(64, 'b'),  // the text form
                            std::string("md5-abcd"), std::string(""), std::string("-"),
                            std::string(".tmp-") + std::string(64, 'b')})
    EXPECT_FALSE(benchrun::oci::digest_from_key(other)) << other;
}
