// results_test.cpp: the host's collector of guest result frames, against well-behaved and hostile
// guests (unrequested files, out-of-order chunks, frames after the end, floods).
#include "vm/results.hpp"

#include <gtest/gtest.h>

#include "benchrun/common/error.hpp"
#include "benchrun/proto/frame.hpp"
#include "benchrun/proto/messages.hpp"

namespace benchrun::vm {
namespace {

proto::Frame frame(const std::string& bytes) {
  proto::Decoder d;
  EXPECT_EQ(d.feed(bytes.data(), bytes.size()), bytes.size());
  auto f = d.next();
  EXPECT_TRUE(f.has_value());
  return *f;
}

proto::RunConfig config() {
  proto::RunConfig c;
  c.argv = {"true"};
  c.outputs = {"/tmp/a", "/tmp/b", "/tmp/c"};
  c.max_output_bytes = 10;
  c.max_file_bytes = 100;
  c.max_files = 2;
  return c;
}

// A file frame built by hand, for chunks the encoder itself refuses to produce.
std::string raw_file(const std::string& path, uint64_t size, uint64_t offset,
                     const std::string& data) {
  std::string p;
  auto u32 = [&p](uint32_t v) {
    for (int i = 0; i < 4; ++i) p += static_cast<char>(v >> (8 * i));
  };
  auto u64 = [&p](uint64_t v) {
    for (int i = 0; i < 8; ++i) p += static_cast<char>(v >> (8 * i));
  };
  u32(static_cast<uint32_t>(path.size()));
  p += path;
  u64(size);
  u64(offset);
  u32(static_cast<uint32_t>(data.size()));
  p += data;
  return proto::encode_frame(proto::FrameType::kFile, p);
}

// What a guest sends before its exit status.
std::string metrics_frame() { return proto::encode_metrics({{"wall_time", {0.5, "s"}}}); }

proto::Exit ok_exit() {
  proto::Exit e;
  e.exit_code = 0;
  return e;
}

proto::FileChunk chunk(const std::string& path, uint64_t size, uint64_t offset, std::string data) {
  proto::FileChunk c;
  c.path = path;
  c.size = size;
  c.offset = offset;
  c.data = std::move(data);
  return c;
}

TEST(VmResults, CollectsAWholeRun) {
  proto::RunConfig cfg = config();
  ResultCollector rc(cfg, ::testing::TempDir());
  rc.take(frame(proto::encode_stdout("hello ")));
  rc.take(frame(proto::encode_stderr("err")));
  rc.take(frame(proto::encode_stdout("world, and more")));  // beyond the 10-byte cap
  rc.take(frame(proto::encode_file(chunk("/tmp/a", 5, 0, "ab"))));
  rc.take(frame(proto::encode_file(chunk("/tmp/a", 5, 2, "cde"))));
  rc.take(frame(proto::encode_file_missing({"/tmp/b", "No such file or directory"})));
  proto::Exit e;
  e.exit_code = 3;
  rc.take(frame(metrics_frame()));
  rc.take(frame(proto::encode_exit(e)));
  EXPECT_FALSE(rc.done());
  rc.take(frame(proto::encode_end()));
  EXPECT_TRUE(rc.done());
  LaunchResult r;
  rc.finish(r);
  EXPECT_EQ(r.stdout_data.str(), "hello worl");
  EXPECT_TRUE(r.stdout_truncated);
  EXPECT_EQ(r.stderr_data.str(), "err");
  EXPECT_FALSE(r.stderr_truncated);
  EXPECT_EQ(r.outputs.at("/tmp/a"), "abcde");
  EXPECT_EQ(r.missing_outputs.at("/tmp/b"), "No such file or directory");
  EXPECT_EQ(r.missing_outputs.at("/tmp/c"), "not sent by the guest");
  ASSERT_TRUE(r.exit);
  EXPECT_EQ(r.exit->exit_code, 3);
  EXPECT_EQ(r.metrics.at("wall_time"), (Metric{0.5, "s"}));
}

TEST(VmResults, IncompleteFileIsReportedMissingNotPassedOn) {
  proto::RunConfig cfg = config();
  ResultCollector rc(cfg, ::testing::TempDir());
  rc.take(frame(proto::encode_file(chunk("/tmp/a", 50, 0, "only part"))));
  rc.take(frame(metrics_frame()));
  rc.take(frame(proto::encode_exit(ok_exit())));
  rc.take(frame(proto::encode_end()));
  LaunchResult r;
  rc.finish(r);
  EXPECT_EQ(r.outputs.count("/tmp/a"), 0u);
  EXPECT_NE(r.missing_outputs.at("/tmp/a").find("incomplete: 9 of 50"), std::string::npos);
}

TEST(VmResults, HostileGuestsGetProtocolErrors) {
  proto::RunConfig cfg = config();
  auto expect_refused = [&](std::vector<std::string> frames, const std::string& why) {
    ResultCollector rc(cfg, ::testing::TempDir());
    try {
      for (const auto& f : frames) rc.take(frame(f));
      FAIL() << "accepted: " << why;
    } catch (const ProtocolError& e) {
      EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
    }
  };
  expect_refused({proto::encode_file(chunk("/etc/shadow", 1, 0, "x"))}, "not requested");
  expect_refused({proto::encode_file_missing({"/etc/passwd", "x"})}, "not requested");
  expect_refused({proto::encode_file(chunk("/tmp/a", 5, 1, "x"))}, "out of order");
  expect_refused({raw_file("/tmp/a", 5, 0, "toolong")}, "");  // past its size: codec or collector
  expect_refused({proto::encode_file(chunk("/tmp/a", 5, 0, "ab")),
                  proto::encode_file(chunk("/tmp/a", 6, 2, "c"))},
                 "out of order");  // size changed midway
  expect_refused({proto::encode_file(chunk("/tmp/a", 1000, 0, "x"))}, "larger than the file limit");
  expect_refused({proto::encode_file(chunk("/tmp/a", 1, 0, "x")),
                  proto::encode_file(chunk("/tmp/b", 1, 0, "x")),
                  proto::encode_file(chunk("/tmp/c", 1, 0, "x"))},
                 "more files than the limit");
  expect_refused(
      {proto::encode_file_missing({"/tmp/a", "x"}), proto::encode_file_missing({"/tmp/a", "x"})},
      "twice");
  expect_refused({proto::encode_end()}, "without an exit status");
  const std::string m = metrics_frame();
  const std::string x = proto::encode_exit(ok_exit());
  expect_refused({m, x, proto::encode_stdout("late")}, "after the exit status");
  expect_refused({m, x, x}, "after the exit status");
  expect_refused({m, x, proto::encode_end(), proto::encode_stdout("x")}, "after end-of-results");
  expect_refused({x}, "exit status before its metrics");
  expect_refused({m, m}, "two metrics frames");
  expect_refused({m, x, m}, "after the exit status");
  proto::Hello h;
  expect_refused({proto::encode_hello(h)}, "unexpected hello");
  proto::RunConfig echo = cfg;
  expect_refused({proto::encode_run_config(echo)}, "unexpected");
}

TEST(VmResults, ErrorThenEndIsAResult) {
  proto::RunConfig cfg = config();
  ResultCollector rc(cfg, ::testing::TempDir());
  rc.take(frame(proto::encode_error({"exec", 2, "exec 'x': No such file or directory"})));
  rc.take(frame(proto::encode_end()));
  LaunchResult r;
  rc.finish(r);
  ASSERT_TRUE(r.error);
  EXPECT_EQ(r.error->stage, "exec");
  EXPECT_FALSE(r.exit);
}

TEST(VmResults, ErrorsRaiseByTheirOriginNotTheirStageName) {
  // "exec" from init (it has no such step today) is still the VM's failure: the origin decides.
  try {
    throw_guest_error({"exec", 2, "boom"});
    ADD_FAILURE() << "no exception";
  } catch (const SandboxError&) {
    ADD_FAILURE() << "an init error raised SandboxError";
  } catch (const VmError& e) {
    EXPECT_STREQ(e.what(), "vm: guest init failed at 'exec': boom");
  }
  // A workload setup step whose name init also uses is still the sandbox's failure.
  try {
    throw_guest_error(
        {"spawn", 1, "sandbox setup failed at 'spawn': x", proto::ErrorOrigin::kWorkload});
    ADD_FAILURE() << "no exception";
  } catch (const SandboxError& e) {
    EXPECT_EQ(e.stage(), "spawn");
    EXPECT_STREQ(e.what(), "sandbox setup failed at 'spawn': x");
  }
}

TEST(VmResults, FloodOfStdoutKeepsMemoryAtTheCap) {
  proto::RunConfig cfg = config();
  cfg.max_output_bytes = 1 << 16;
  ResultCollector rc(cfg, ::testing::TempDir());
  const std::string chunk_bytes = proto::encode_stdout(std::string(60000, 'y'));
  for (int i = 0; i < 200; ++i) rc.take(frame(chunk_bytes));  // 12 MB offered
  rc.take(frame(metrics_frame()));
  rc.take(frame(proto::encode_exit(ok_exit())));
  rc.take(frame(proto::encode_end()));
  LaunchResult r;
  rc.finish(r);
  EXPECT_EQ(r.stdout_data.size(), size_t{1} << 16);
  EXPECT_TRUE(r.stdout_truncated);
  // And what a guest may send at all is bounded (the channel enforces it).
  EXPECT_LT(rc.max_total_bytes(), uint64_t{64} << 20);
}

}  // namespace
}  // namespace benchrun::vm
