// messages_test.cpp: payload layouts (checked against a hand-written encoding of docs/protocol.md),
// round trips with edge values, and every malformed or out-of-range payload -> ProtocolError.
#include "benchrun/proto/messages.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "benchrun/common/error.hpp"
#include "proto/codec.hpp"

namespace proto = benchrun::proto;
using benchrun::Metrics;
using benchrun::ProtocolError;
using proto::Frame;
using proto::FrameType;

namespace {

// The whole frame through the decoder, as a receiver sees it.
Frame parse(const std::string& wire) {
  proto::Decoder d;
  EXPECT_EQ(d.feed(wire.data(), wire.size()), wire.size());
  auto f = d.next();
  EXPECT_TRUE(f.has_value());
  return f ? std::move(*f) : Frame{};
}

std::string payload_of(const std::string& wire) { return wire.substr(proto::kHeaderSize); }

// RunConfig laid out field by field from docs/protocol.md, without the encoder's validation, so
// decode-side checks can be fed values the encoder refuses.
std::string raw_run_config(const proto::RunConfig& c) {
  proto::codec::Writer w(FrameType::kRunConfig);
  auto strings = [&](const std::vector<std::string>& v) {
    w.count(v.size());
    for (const auto& s : v) w.bytes(s);
  };
  strings(c.argv);
  strings(c.env);
  w.bytes(c.cwd);
  w.u32(c.uid);
  w.u32(c.gid);
  w.count(c.groups.size());
  for (auto g : c.groups) w.u32(g);
  w.bytes(c.hostname);
  w.count(c.rlimits.size());
  for (const auto& r : c.rlimits) {
    w.u32(r.resource);
    w.u64(r.soft);
    w.u64(r.hard);
  }
  w.u64(c.timeout_ms);
  w.u64(c.memory_bytes);
  w.u64(c.pids_max);
  strings(c.outputs);
  w.u64(c.max_output_bytes);
  w.u64(c.max_file_bytes);
  w.u32(c.max_files);
  w.bytes(c.root_device);
  w.bytes(c.seccomp_bpf);
  strings(c.counters);
  return std::move(w).finish();
}

std::string raw_exit(int32_t code, int32_t sig, uint8_t b0 = 0, uint8_t b1 = 0) {
  proto::codec::Writer w(FrameType::kExit);
  w.i32(code);
  w.i32(sig);
  w.u8(b0);
  w.u8(b1);
  w.u8(0);
  w.u8(0);
  return std::move(w).finish();
}

std::string raw_file(const std::string& path, uint64_t size, uint64_t offset,
                     const std::string& data) {
  proto::codec::Writer w(FrameType::kFile);
  w.bytes(path);
  w.u64(size);
  w.u64(offset);
  w.bytes(data);
  return std::move(w).finish();
}

proto::RunConfig full_config() {
  proto::RunConfig c;
  c.argv = {"/usr/bin/python3", "-c", "print('\xff\x01')", ""};
  c.env = {"PATH=/usr/bin:/bin", "EMPTY=", "X==y"};
  c.cwd = "/work dir";
  c.uid = 4294967294u;
  c.gid = 65534;
  c.groups = {0, 1, 4294967295u};
  c.hostname = std::string(64, 'h');
  c.rlimits = {{7, 1024, 4096}, {15, UINT64_MAX, UINT64_MAX}, {0, 0, 0}};
  c.timeout_ms = UINT64_MAX;
  c.memory_bytes = 1ull << 40;
  c.pids_max = 1;
  c.outputs = {"/out/a.json", "/b"};
  c.max_output_bytes = 0;
  c.max_file_bytes = UINT64_MAX;
  c.max_files = UINT32_MAX;
  c.root_device = "/dev/vdb";
  for (size_t i = 0; i < proto::kMaxSeccompBytes; ++i) c.seccomp_bpf += static_cast<char>(i * 7);
  c.counters = {"task-clock", "instructions:u", ""};
  return c;
}

void expect_equal(const proto::RunConfig& a, const proto::RunConfig& b) {
  EXPECT_EQ(a.argv, b.argv);
  EXPECT_EQ(a.env, b.env);
  EXPECT_EQ(a.cwd, b.cwd);
  EXPECT_EQ(a.uid, b.uid);
  EXPECT_EQ(a.gid, b.gid);
  EXPECT_EQ(a.groups, b.groups);
  EXPECT_EQ(a.hostname, b.hostname);
  ASSERT_EQ(a.rlimits.size(), b.rlimits.size());
  for (size_t i = 0; i < a.rlimits.size(); ++i) {
    EXPECT_EQ(a.rlimits[i].resource, b.rlimits[i].resource);
    EXPECT_EQ(a.rlimits[i].soft, b.rlimits[i].soft);
    EXPECT_EQ(a.rlimits[i].hard, b.rlimits[i].hard);
  }
  EXPECT_EQ(a.timeout_ms, b.timeout_ms);
  EXPECT_EQ(a.memory_bytes, b.memory_bytes);
  EXPECT_EQ(a.pids_max, b.pids_max);
  EXPECT_EQ(a.outputs, b.outputs);
  EXPECT_EQ(a.max_output_bytes, b.max_output_bytes);
  EXPECT_EQ(a.max_file_bytes, b.max_file_bytes);
  EXPECT_EQ(a.max_files, b.max_files);
  EXPECT_EQ(a.root_device, b.root_device);
  EXPECT_EQ(a.seccomp_bpf, b.seccomp_bpf);
  EXPECT_EQ(a.counters, b.counters);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ProtocolError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no ProtocolError";
  return "";
}

// Every decoder applied to frame; only ProtocolError may escape.
void decode_any(const Frame& f) {
  switch (f.type) {
    case FrameType::kHello:
      proto::decode_hello(f);
      break;
    case FrameType::kRunConfig:
      proto::decode_run_config(f);
      break;
    case FrameType::kFile:
      proto::decode_file(f);
      break;
    case FrameType::kFileMissing:
      proto::decode_file_missing(f);
      break;
    case FrameType::kExit:
      proto::decode_exit(f);
      break;
    case FrameType::kMetrics:
      proto::decode_metrics(f);
      break;
    case FrameType::kError:
      proto::decode_error(f);
      break;
    default:
      break;
  }
}

std::vector<std::string> valid_frames() {
  proto::Hello h;
  h.init_version = "0.1.0";
  h.kernel_release = "6.1.0";
  h.boot_ns = 123;
  proto::FileChunk fc{"/out/x", 10, 2, "abcd"};
  proto::Exit e;
  e.exit_code = 3;
  return {proto::encode_hello(h),
          proto::encode_run_config(full_config()),
          proto::encode_file(fc),
          proto::encode_file_missing({"/out/y", "absent"}),
          proto::encode_exit(e),
          proto::encode_error({"exec", 2, "no such file"}),
          proto::encode_metrics({{"wall_time", {1.5, "s"}}, {"peak_memory", {4096, "bytes"}}})};
}

}  // namespace

TEST(ProtoMessages, HelloRoundTripsWithEdgeValues) {
  proto::Hello h;
  h.version = 65535;
  h.init_version = "";
  h.kernel_release = std::string("6.1.0-\0x", 8);
  h.boot_ns = UINT64_MAX;
  std::string wire = proto::encode_hello(h);
  // u16 version, str, str, u64
  EXPECT_EQ(payload_of(wire).size(), 2u + 4 + 0 + 4 + 8 + 8);
  auto back = proto::decode_hello(parse(wire));
  EXPECT_EQ(back.version, 65535);
  EXPECT_EQ(back.init_version, "");
  EXPECT_EQ(back.kernel_release, h.kernel_release);
  EXPECT_EQ(back.boot_ns, UINT64_MAX);
}

TEST(ProtoMessages, RunConfigRoundTripsWithEdgeValues) {
  proto::RunConfig c = full_config();
  std::string wire = proto::encode_run_config(c);
  EXPECT_EQ(wire, raw_run_config(c));  // the layout docs/protocol.md lists
  expect_equal(proto::decode_run_config(parse(wire)), c);
}

TEST(ProtoMessages, RunConfigDefaultsRoundTrip) {
  proto::RunConfig c;
  c.argv = {"true"};
  expect_equal(proto::decode_run_config(parse(proto::encode_run_config(c))), c);
}

TEST(ProtoMessages, StdoutAndStderrCarryRawBytes) {
  std::string data("\0\xff\n", 3);
  Frame f = parse(proto::encode_stdout(data));
  EXPECT_EQ(f.type, FrameType::kStdout);
  EXPECT_EQ(f.payload, data);
  f = parse(proto::encode_stderr(""));
  EXPECT_EQ(f.type, FrameType::kStderr);
  EXPECT_EQ(f.payload, "");
  EXPECT_NO_THROW(proto::encode_stdout(std::string(proto::kMaxPayload, 'x')));
  EXPECT_THROW(proto::encode_stdout(std::string(proto::kMaxPayload + 1, 'x')), ProtocolError);
}

TEST(ProtoMessages, FileRoundTripsWithEdgeValues) {
  proto::FileChunk fc;
  fc.path = "/" + std::string(proto::kMaxPathBytes - 1, 'p');
  fc.size = UINT64_MAX;
  fc.offset = UINT64_MAX - proto::kMaxChunkData;
  fc.data = std::string(proto::kMaxChunkData, '\0');
  std::string wire = proto::encode_file(fc);
  EXPECT_EQ(wire, raw_file(fc.path, fc.size, fc.offset, fc.data));
  auto back = proto::decode_file(parse(wire));
  EXPECT_EQ(back.path, fc.path);
  EXPECT_EQ(back.size, fc.size);
  EXPECT_EQ(back.offset, fc.offset);
  EXPECT_EQ(back.data, fc.data);

  proto::FileChunk empty{"/empty", 0, 0, ""};
  auto e = proto::decode_file(parse(proto::encode_file(empty)));
  EXPECT_EQ(e.path, "/empty");
  EXPECT_EQ(e.size, 0u);
}

TEST(ProtoMessages, FileMissingRoundTrips) {
  proto::FileMissing fm{"/out/none", "not a regular file: \x01"};
  auto back = proto::decode_file_missing(parse(proto::encode_file_missing(fm)));
  EXPECT_EQ(back.path, fm.path);
  EXPECT_EQ(back.reason, fm.reason);
}

TEST(ProtoMessages, MetricsRoundTripExactly) {
  Metrics m = {{"wall_time", {0.1, "s"}},
               {"peak_memory", {9007199254740992.0, "bytes"}},
               {"instructions", {0, "count"}},
               {"a.b_2", {-1e-300, ""}}};
  std::string wire = proto::encode_metrics(m);
  EXPECT_EQ(proto::decode_metrics(parse(wire)), m);
  // schema u16, count u32, then per entry: name, unit (u32-prefixed), f64
  EXPECT_EQ(payload_of(wire).size(), 2u + 4 + (4 + 9 + 4 + 1 + 8) + (4 + 12 + 4 + 5 + 8) +
                                         (4 + 11 + 4 + 5 + 8) + (4 + 5 + 4 + 0 + 8));
  EXPECT_TRUE(proto::decode_metrics(parse(proto::encode_metrics({}))).empty());
}

TEST(ProtoMessages, MetricsRulesHoldBothWays) {
  auto refused = [](Metrics m) { EXPECT_THROW(proto::encode_metrics(m), ProtocolError); };
  refused({{"", {1, "s"}}});
  refused({{"Wall", {1, "s"}}});
  refused({{"wall time", {1, "s"}}});
  refused({{std::string(65, 'a'), {1, "s"}}});
  refused({{"x", {1, std::string(17, 's')}}});
  refused({{"x", {1, "s\n"}}});
  refused({{"x", {std::numeric_limits<double>::infinity(), "s"}}});
  refused({{"x", {std::nan(""), "s"}}});
  Metrics many;
  for (int i = 0; i < 257; ++i) many["m" + std::to_string(i)] = {1, "count"};
  refused(many);

  // The decoder checks the same rules on what a hostile guest sends, and the layout itself.
  auto frame_of = [](uint16_t schema, uint32_t count, const std::string& entries) {
    std::string p;
    for (int i = 0; i < 2; ++i) p += static_cast<char>((schema >> (8 * i)) & 0xff);
    for (int i = 0; i < 4; ++i) p += static_cast<char>((count >> (8 * i)) & 0xff);
    return proto::encode_frame(proto::FrameType::kMetrics, p + entries);
  };
  auto entry = [](const std::string& name, const std::string& unit, double v) {
    std::string e;
    auto u32 = [&e](uint32_t x) {
      for (int i = 0; i < 4; ++i) e += static_cast<char>((x >> (8 * i)) & 0xff);
    };
    u32(static_cast<uint32_t>(name.size()));
    e += name;
    u32(static_cast<uint32_t>(unit.size()));
    e += unit;
    uint64_t bits;
    std::memcpy(&bits, &v, 8);
    for (int i = 0; i < 8; ++i) e += static_cast<char>((bits >> (8 * i)) & 0xff);
    return e;
  };
  EXPECT_EQ(proto::decode_metrics(parse(frame_of(1, 1, entry("x", "s", 2.5)))).at("x").value, 2.5);
  EXPECT_THROW(proto::decode_metrics(parse(frame_of(2, 1, entry("x", "s", 2.5)))), ProtocolError);
  EXPECT_THROW(proto::decode_metrics(parse(frame_of(1, 2, entry("x", "s", 2.5)))), ProtocolError);
  EXPECT_THROW(proto::decode_metrics(parse(frame_of(1, 1, entry("x", "s", 2.5) + "z"))),
               ProtocolError);
  EXPECT_THROW(
      proto::decode_metrics(parse(frame_of(1, 2, entry("x", "s", 1) + entry("x", "s", 2)))),
      ProtocolError);
  EXPECT_THROW(proto::decode_metrics(parse(frame_of(1, 1, entry("X", "s", 1)))), ProtocolError);
  EXPECT_THROW(proto::decode_metrics(parse(frame_of(1, 1, entry("x", "s", std::nan(""))))),
               ProtocolError);
  EXPECT_THROW(proto::decode_metrics(parse(frame_of(1, 1000000, ""))), ProtocolError);
}

TEST(ProtoMessages, ExitRoundTripsWithEdgeValues) {
  proto::Exit e;
  e.exit_code = -1;
  e.signal = 64;
  e.timed_out = true;
  e.oom_killed = false;
  e.stdout_truncated = true;
  e.stderr_truncated = false;
  std::string wire = proto::encode_exit(e);
  EXPECT_EQ(payload_of(wire).size(), 4u + 4 + 4);
  auto b = proto::decode_exit(parse(wire));
  EXPECT_EQ(b.exit_code, -1);
  EXPECT_EQ(b.signal, 64);
  EXPECT_TRUE(b.timed_out);
  EXPECT_FALSE(b.oom_killed);
  EXPECT_TRUE(b.stdout_truncated);
  EXPECT_FALSE(b.stderr_truncated);

  proto::Exit ok;
  ok.exit_code = 255;
  ok.oom_killed = true;
  ok.stderr_truncated = true;
  auto b2 = proto::decode_exit(parse(proto::encode_exit(ok)));
  EXPECT_EQ(b2.exit_code, 255);
  EXPECT_EQ(b2.signal, 0);
  EXPECT_TRUE(b2.oom_killed);
  EXPECT_TRUE(b2.stderr_truncated);
}

TEST(ProtoMessages, ErrorRoundTrips) {
  proto::ErrorReport r{"mount-root", 2147483647, std::string(1000, 'm')};
  auto b = proto::decode_error(parse(proto::encode_error(r)));
  EXPECT_EQ(b.stage, r.stage);
  EXPECT_EQ(b.err, r.err);
  EXPECT_EQ(b.message, r.message);
  EXPECT_EQ(b.origin, proto::ErrorOrigin::kInit);
  r = {"setresuid", 1, "sandbox setup failed at 'setresuid': Operation not permitted",
       proto::ErrorOrigin::kWorkload};
  b = proto::decode_error(parse(proto::encode_error(r)));
  EXPECT_EQ(b.stage, r.stage);
  EXPECT_EQ(b.origin, proto::ErrorOrigin::kWorkload);
}

TEST(ProtoMessages, ErrorOriginIsTheLastByteAndOnlyZeroOrOne) {
  // Laid out from docs/protocol.md: str stage, i32 err, str message, u8 origin.
  auto raw_error = [](uint8_t origin) {
    proto::codec::Writer w(FrameType::kError);
    w.bytes("exec");
    w.i32(2);
    w.bytes("x");
    w.u8(origin);
    return std::move(w).finish();
  };
  EXPECT_EQ(raw_error(1), proto::encode_error({"exec", 2, "x", proto::ErrorOrigin::kWorkload}));
  EXPECT_EQ(raw_error(0), proto::encode_error({"exec", 2, "x"}));
  auto msg = error_of([&] { proto::decode_error(parse(raw_error(2))); });
  EXPECT_NE(msg.find("origin"), std::string::npos) << msg;
  EXPECT_THROW(proto::decode_error(parse(raw_error(255))), ProtocolError);
  EXPECT_THROW(proto::encode_error({"exec", 2, "x", static_cast<proto::ErrorOrigin>(2)}),
               ProtocolError);
}

TEST(ProtoMessages, EndIsAnEmptyFrame) {
  Frame f = parse(proto::encode_end());
  EXPECT_EQ(f.type, FrameType::kEnd);
  EXPECT_EQ(f.payload, "");
}

TEST(ProtoMessages, WrongFrameTypeIsRejected) {
  auto msg = error_of([] { proto::decode_hello(parse(proto::encode_stdout("x"))); });
  EXPECT_EQ(msg, "decode hello: got a stdout frame");
  EXPECT_THROW(proto::decode_exit(parse(proto::encode_end())), ProtocolError);
}

TEST(ProtoMessages, EveryTruncationIsRejected) {
  for (const auto& wire : valid_frames()) {
    Frame full = parse(wire);
    for (size_t cut = 0; cut < full.payload.size(); ++cut) {
      Frame f{full.type, full.payload.substr(0, cut)};
      EXPECT_THROW(decode_any(f), ProtocolError)
          << proto::frame_type_name(static_cast<uint16_t>(f.type)) << " cut at " << cut;
    }
  }
}

TEST(ProtoMessages, TrailingBytesAreRejected) {
  for (const auto& wire : valid_frames()) {
    Frame f = parse(wire);
    f.payload += '\0';
    auto msg = error_of([&] { decode_any(f); });
    EXPECT_NE(msg.find("1 trailing bytes after the last field"), std::string::npos) << msg;
  }
}

TEST(ProtoMessages, BoolOtherThanZeroOrOneIsRejected) {
  auto msg = error_of([] { proto::decode_exit(parse(raw_exit(0, 0, 0, 2))); });
  EXPECT_EQ(msg, "decode exit field 'oom_killed': bool is 2 (must be 0 or 1)");
  EXPECT_THROW(proto::decode_exit(parse(raw_exit(0, 0, 255, 0))), ProtocolError);
  EXPECT_NO_THROW(proto::decode_exit(parse(raw_exit(0, 0, 1, 1))));
}

TEST(ProtoMessages, StringLongerThanThePayloadIsRejected) {
  proto::codec::Writer w(FrameType::kHello);
  w.u16(1);
  w.u32(1000);  // init_version claims 1000 bytes
  w.u32(0);
  w.u64(0);
  auto msg = error_of([&] { proto::decode_hello(parse(std::move(w).finish())); });
  EXPECT_EQ(msg,
            "decode hello field 'init_version': length 1000 exceeds the 12 bytes left in the "
            "payload");
}

TEST(ProtoMessages, HugeListCountIsRejectedWithoutAllocating) {
  proto::codec::Writer w(FrameType::kRunConfig);
  w.u32(0xffffffff);  // argv count
  auto msg = error_of([&] { proto::decode_run_config(parse(std::move(w).finish())); });
  EXPECT_NE(msg.find("decode run_config field 'argv': count 4294967295 cannot fit"),
            std::string::npos)
      << msg;
}

TEST(ProtoMessages, RunConfigRulesAreCheckedOnBothSides) {
  struct Case {
    const char* name;
    std::function<void(proto::RunConfig&)> mutate;
    const char* field;
  };
  const std::vector<Case> cases = {
      {"empty argv", [](auto& c) { c.argv.clear(); }, "'argv': empty"},
      {"NUL in argv", [](auto& c) { c.argv.push_back(std::string("a\0b", 3)); },
       "'argv': 'a?b' contains a NUL byte"},
      {"NUL in env", [](auto& c) { c.env.push_back(std::string("A=\0", 3)); }, "'env'"},
      {"env without =", [](auto& c) { c.env.push_back("NOEQUALS"); },
       "'env': 'NOEQUALS' is not of the form K=V"},
      {"env with empty key", [](auto& c) { c.env.push_back("=v"); }, "'env': '=v' is not"},
      {"relative cwd", [](auto& c) { c.cwd = "work"; }, "'cwd': 'work' is not absolute"},
      {"empty cwd", [](auto& c) { c.cwd = ""; }, "'cwd'"},
      {"NUL in hostname", [](auto& c) { c.hostname = std::string("h\0", 2); }, "'hostname'"},
      {"long hostname", [](auto& c) { c.hostname = std::string(65, 'h'); }, "'hostname': 65"},
      {"relative output", [](auto& c) { c.outputs.push_back("out.json"); },
       "'outputs': 'out.json' is not absolute"},
      {"NUL in output", [](auto& c) { c.outputs.push_back(std::string("/o\0", 3)); }, "'outputs'"},
      {"relative root device", [](auto& c) { c.root_device = "vda"; }, "'root_device'"},
      {"unknown rlimit",
       [](auto& c) {
         c.rlimits.push_back({16, 0, 0});
       },
       "'rlimits': unknown resource 16"},
      {"soft above hard",
       [](auto& c) {
         c.rlimits.push_back({7, 2, 1});
       },
       "'rlimits': resource 7: soft limit 2 above hard limit 1"},
      {"seccomp not whole instructions", [](auto& c) { c.seccomp_bpf = std::string(12, 'x'); },
       "'seccomp_bpf': 12 bytes is not a whole number"},
      {"seccomp too long",
       [](auto& c) { c.seccomp_bpf = std::string(proto::kMaxSeccompBytes + 8, 'x'); },
       "'seccomp_bpf': 4097 instructions"},
      {"NUL in counters", [](auto& c) { c.counters = {std::string("cycles\0", 7)}; }, "'counters'"},
  };
  for (const auto& tc : cases) {
    proto::RunConfig c;
    c.argv = {"/bin/true"};
    tc.mutate(c);
    auto enc = error_of([&] { proto::encode_run_config(c); });
    EXPECT_NE(enc.find(std::string("encode run_config field ") + tc.field), std::string::npos)
        << tc.name << ": " << enc;
    auto dec = error_of([&] { proto::decode_run_config(parse(raw_run_config(c))); });
    EXPECT_NE(dec.find(std::string("decode run_config field ") + tc.field), std::string::npos)
        << tc.name << ": " << dec;
  }
}

TEST(ProtoMessages, RunConfigLargerThanAFrameIsRejected) {
  proto::RunConfig c;
  c.argv = {"/bin/true"};
  c.env.assign(300, "K=" + std::string(4096, 'v'));
  EXPECT_THROW(proto::encode_run_config(c), ProtocolError);
}

TEST(ProtoMessages, FileRulesAreCheckedOnBothSides) {
  EXPECT_THROW(proto::encode_file({"rel", 1, 0, "x"}), ProtocolError);
  EXPECT_THROW(proto::decode_file(parse(raw_file("rel", 1, 0, "x"))), ProtocolError);
  EXPECT_THROW(proto::decode_file(parse(raw_file(std::string("/a\0", 3), 1, 0, "x"))),
               ProtocolError);
  std::string long_path = "/" + std::string(proto::kMaxPathBytes, 'p');
  EXPECT_THROW(proto::decode_file(parse(raw_file(long_path, 1, 0, "x"))), ProtocolError);
  // Past the end, and an offset that would wrap the sum around 2^64.
  EXPECT_THROW(proto::encode_file({"/f", 3, 1, "abc"}), ProtocolError);
  auto msg = error_of([] { proto::decode_file(parse(raw_file("/f", 3, 1, "abc"))); });
  EXPECT_NE(msg.find("runs past the file size 3"), std::string::npos) << msg;
  EXPECT_THROW(proto::decode_file(parse(raw_file("/f", 10, UINT64_MAX, "ab"))), ProtocolError);
  EXPECT_THROW(proto::decode_file(parse(raw_file("/f", 10, 11, ""))), ProtocolError);
  EXPECT_NO_THROW(proto::decode_file(parse(raw_file("/f", 3, 1, "bc"))));
  EXPECT_THROW(proto::encode_file_missing({"relative", "why"}), ProtocolError);
}

TEST(ProtoMessages, ExitRulesAreCheckedOnBothSides) {
  const std::vector<std::pair<int32_t, int32_t>> bad = {{256, 0}, {-2, 0},  {0, 9},        {-1, 0},
                                                        {-1, 65}, {-1, -1}, {INT32_MIN, 0}};
  for (auto [code, sig] : bad) {
    proto::Exit e;
    e.exit_code = code;
    e.signal = sig;
    EXPECT_THROW(proto::encode_exit(e), ProtocolError) << code << "/" << sig;
    EXPECT_THROW(proto::decode_exit(parse(raw_exit(code, sig))), ProtocolError)
        << code << "/" << sig;
  }
  EXPECT_NO_THROW(proto::decode_exit(parse(raw_exit(-1, 9))));
  EXPECT_NO_THROW(proto::decode_exit(parse(raw_exit(0, 0))));
}

TEST(ProtoMessages, HelloAndErrorRulesAreChecked) {
  proto::Hello h;
  h.version = 0;
  EXPECT_THROW(proto::encode_hello(h), ProtocolError);
  EXPECT_THROW(proto::encode_error({"exec", -1, "x"}), ProtocolError);
}

TEST(ProtoMessages, RandomMutationsOnlyEverThrowProtocolError) {
  std::mt19937 rng(7);
  for (const auto& wire : valid_frames()) {
    Frame base = parse(wire);
    for (int i = 0; i < 2000; ++i) {
      Frame f = base;
      int flips = std::uniform_int_distribution<int>(1, 4)(rng);
      for (int k = 0; k < flips && !f.payload.empty(); ++k) {
        size_t at = std::uniform_int_distribution<size_t>(0, f.payload.size() - 1)(rng);
        f.payload[at] = static_cast<char>(rng());
      }
      try {
        decode_any(f);
      } catch (const ProtocolError&) {
      }
    }
  }
}
