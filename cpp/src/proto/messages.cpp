// messages.cpp: payload layouts of docs/protocol.md "Frame types" and their field rules.
//
// Each message has one encode and one decode function listing its fields in wire order, and one
// validate function that both call, so a sender cannot emit what its receiver would refuse and a
// bad value fails on the side that produced it, with the field named.
#include "benchrun/proto/messages.hpp"

#include <cmath>
#include <string_view>

#include "benchrun/common/error.hpp"
#include "benchrun/common/text.hpp"
#include "proto/codec.hpp"

namespace benchrun::proto {

namespace {

constexpr size_t kMaxHostname = 64;    // HOST_NAME_MAX
constexpr uint32_t kRlimitCount = 16;  // RLIM_NLIMITS on Linux
constexpr int32_t kMaxSignal = 64;     // SIGRTMAX

[[noreturn]] void invalid(std::string_view what, std::string_view field, const std::string& cause) {
  throw ProtocolError(std::string(what) + " field '" + std::string(field) + "': " + cause);
}

void check_no_nul(std::string_view what, std::string_view field, std::string_view s) {
  if (s.find('\0') != std::string_view::npos)
    invalid(what, field, "'" + printable(s) + "' contains a NUL byte");
}

void check_abs_path(std::string_view what, std::string_view field, std::string_view s,
                    size_t max = kMaxPathBytes) {
  check_no_nul(what, field, s);
  if (s.empty() || s[0] != '/') invalid(what, field, "'" + printable(s) + "' is not absolute");
  if (s.size() > max)
    invalid(what, field,
            "path of " + std::to_string(s.size()) + " bytes exceeds " + std::to_string(max));
}

void expect_type(const Frame& f, FrameType want) {
  if (f.type != want)
    throw ProtocolError("decode " + frame_type_name(static_cast<uint16_t>(want)) + ": got a " +
                        frame_type_name(static_cast<uint16_t>(f.type)) + " frame");
}

void validate(const Hello& h, std::string_view what) {
  if (h.version < 1) invalid(what, "version", "0 is not a protocol version");
}

void validate(const RunConfig& c, std::string_view what) {
  if (c.argv.empty()) invalid(what, "argv", "empty (nothing to execute)");
  for (const auto& a : c.argv) check_no_nul(what, "argv", a);
  for (const auto& e : c.env) {
    check_no_nul(what, "env", e);
    size_t eq = e.find('=');
    if (eq == std::string::npos || eq == 0)
      invalid(what, "env", "'" + printable(e) + "' is not of the form K=V");
  }
  // The path limits are generous: the kernel's own limits (PATH_MAX) apply inside the guest anyway.
  check_abs_path(what, "cwd", c.cwd);
  check_no_nul(what, "hostname", c.hostname);
  if (c.hostname.size() > kMaxHostname)
    invalid(what, "hostname",
            std::to_string(c.hostname.size()) + " bytes exceeds " + std::to_string(kMaxHostname));
  for (const auto& r : c.rlimits) {
    if (r.resource >= kRlimitCount)
      invalid(what, "rlimits", "unknown resource " + std::to_string(r.resource));
    if (r.soft > r.hard)
      invalid(what, "rlimits",
              "resource " + std::to_string(r.resource) + ": soft limit " + std::to_string(r.soft) +
                  " above hard limit " + std::to_string(r.hard));
  }
  for (const auto& o : c.outputs) check_abs_path(what, "outputs", o);
  for (const auto& n : c.counters) check_no_nul(what, "counters", n);
  check_abs_path(what, "root_device", c.root_device);
  if (c.seccomp_bpf.size() % 8 != 0)
    invalid(what, "seccomp_bpf",
            std::to_string(c.seccomp_bpf.size()) +
                " bytes is not a whole number of 8-byte instructions");
  if (c.seccomp_bpf.size() > kMaxSeccompBytes)
    invalid(what, "seccomp_bpf",
            std::to_string(c.seccomp_bpf.size() / 8) + " instructions exceed the kernel's 4096");
}

void validate(const FileChunk& f, std::string_view what) {
  check_abs_path(what, "path", f.path);
  // Written as subtraction so a hostile offset near 2^64 cannot wrap the sum.
  if (f.offset > f.size || f.data.size() > f.size - f.offset)
    invalid(what, "offset",
            "chunk [" + std::to_string(f.offset) + ", +" + std::to_string(f.data.size()) +
                ") runs past the file size " + std::to_string(f.size));
}

void validate(const FileMissing& f, std::string_view what) { check_abs_path(what, "path", f.path); }

void validate(const Exit& e, std::string_view what) {
  if (e.exit_code < -1 || e.exit_code > 255)
    invalid(what, "exit_code", std::to_string(e.exit_code) + " is outside [-1, 255]");
  if (e.signal < 0 || e.signal > kMaxSignal)
    invalid(what, "signal", std::to_string(e.signal) + " is outside [0, 64]");
  if ((e.exit_code == -1) != (e.signal != 0))
    invalid(what, "exit_code",
            "exit_code " + std::to_string(e.exit_code) + " with signal " +
                std::to_string(e.signal) + " (-1 exactly when killed by a signal)");
}

void validate(const Metrics& m, std::string_view what) {
  if (m.size() > metric::kMaxCount)
    invalid(
        what, "metrics",
        std::to_string(m.size()) + " entries (at most " + std::to_string(metric::kMaxCount) + ")");
  for (const auto& [name, metric] : m) {
    if (!valid_metric_name(name))
      invalid(what, "name", "'" + printable(name) + "' is not [a-z0-9_.]{1,64}");
    if (metric.unit.size() > metric::kMaxUnit)
      invalid(what, "unit", "of '" + name + "' is longer than 16 bytes");
    for (char c : metric.unit)
      if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e)
        invalid(what, "unit", "of '" + name + "' is not printable ASCII");
    if (!std::isfinite(metric.value))
      invalid(what, "value", "of '" + name + "' is not a finite number");
  }
}

void validate(const ErrorReport& e, std::string_view what) {
  if (e.err < 0) invalid(what, "err", std::to_string(e.err) + " is not an errno");
  if (e.origin != ErrorOrigin::kInit && e.origin != ErrorOrigin::kWorkload)
    invalid(what, "origin", std::to_string(static_cast<unsigned>(e.origin)) + " is not 0 or 1");
}

void write_strings(codec::Writer& w, const std::vector<std::string>& v) {
  w.count(v.size());
  for (const auto& s : v) w.bytes(s);
}

std::vector<std::string> read_strings(codec::Reader& r, std::string_view field) {
  std::vector<std::string> v(r.count(field, 4));
  for (auto& s : v) s = r.bytes(field);
  return v;
}

}  // namespace

std::string encode_hello(const Hello& h) {
  validate(h, "encode hello");
  codec::Writer w(FrameType::kHello);
  w.u16(h.version);
  w.bytes(h.init_version);
  w.bytes(h.kernel_release);
  w.u64(h.boot_ns);
  return std::move(w).finish();
}

Hello decode_hello(const Frame& f) {
  expect_type(f, FrameType::kHello);
  codec::Reader r(f.payload, "hello");
  Hello h;
  h.version = r.u16("version");
  h.init_version = r.bytes("init_version");
  h.kernel_release = r.bytes("kernel_release");
  h.boot_ns = r.u64("boot_ns");
  r.finish();
  validate(h, "decode hello");
  return h;
}

std::string encode_run_config(const RunConfig& c) {
  validate(c, "encode run_config");
  codec::Writer w(FrameType::kRunConfig);
  write_strings(w, c.argv);
  write_strings(w, c.env);
  w.bytes(c.cwd);
  w.u32(c.uid);
  w.u32(c.gid);
  w.count(c.groups.size());
  for (uint32_t g : c.groups) w.u32(g);
  w.bytes(c.hostname);
  w.count(c.rlimits.size());
  for (const auto& rl : c.rlimits) {
    w.u32(rl.resource);
    w.u64(rl.soft);
    w.u64(rl.hard);
  }
  w.u64(c.timeout_ms);
  w.u64(c.memory_bytes);
  w.u64(c.pids_max);
  write_strings(w, c.outputs);
  w.u64(c.max_output_bytes);
  w.u64(c.max_file_bytes);
  w.u32(c.max_files);
  w.bytes(c.root_device);
  w.bytes(c.seccomp_bpf);
  write_strings(w, c.counters);
  return std::move(w).finish();
}

RunConfig decode_run_config(const Frame& f) {
  expect_type(f, FrameType::kRunConfig);
  codec::Reader r(f.payload, "run_config");
  RunConfig c;
  c.argv = read_strings(r, "argv");
  c.env = read_strings(r, "env");
  c.cwd = r.bytes("cwd");
  c.uid = r.u32("uid");
  c.gid = r.u32("gid");
  c.groups.resize(r.count("groups", 4));
  for (auto& g : c.groups) g = r.u32("groups");
  c.hostname = r.bytes("hostname");
  c.rlimits.resize(r.count("rlimits", 20));
  for (auto& rl : c.rlimits) {
    rl.resource = r.u32("rlimits.resource");
    rl.soft = r.u64("rlimits.soft");
    rl.hard = r.u64("rlimits.hard");
  }
  c.timeout_ms = r.u64("timeout_ms");
  c.memory_bytes = r.u64("memory_bytes");
  c.pids_max = r.u64("pids_max");
  c.outputs = read_strings(r, "outputs");
  c.max_output_bytes = r.u64("max_output_bytes");
  c.max_file_bytes = r.u64("max_file_bytes");
  c.max_files = r.u32("max_files");
  c.root_device = r.bytes("root_device");
  c.seccomp_bpf = r.bytes("seccomp_bpf");
  c.counters = read_strings(r, "counters");
  r.finish();
  validate(c, "decode run_config");
  return c;
}

std::string encode_stdout(std::string_view data) { return encode_frame(FrameType::kStdout, data); }

std::string encode_stderr(std::string_view data) { return encode_frame(FrameType::kStderr, data); }

std::string encode_file(const FileChunk& fc) {
  validate(fc, "encode file");
  codec::Writer w(FrameType::kFile);
  w.bytes(fc.path);
  w.u64(fc.size);
  w.u64(fc.offset);
  w.bytes(fc.data);
  return std::move(w).finish();
}

FileChunk decode_file(const Frame& f) {
  expect_type(f, FrameType::kFile);
  codec::Reader r(f.payload, "file");
  FileChunk fc;
  fc.path = r.bytes("path");
  fc.size = r.u64("size");
  fc.offset = r.u64("offset");
  fc.data = r.bytes("data");
  r.finish();
  validate(fc, "decode file");
  return fc;
}

std::string encode_file_missing(const FileMissing& fm) {
  validate(fm, "encode file_missing");
  codec::Writer w(FrameType::kFileMissing);
  w.bytes(fm.path);
  w.bytes(fm.reason);
  return std::move(w).finish();
}

FileMissing decode_file_missing(const Frame& f) {
  expect_type(f, FrameType::kFileMissing);
  codec::Reader r(f.payload, "file_missing");
  FileMissing fm;
  fm.path = r.bytes("path");
  fm.reason = r.bytes("reason");
  r.finish();
  validate(fm, "decode file_missing");
  return fm;
}

std::string encode_exit(const Exit& e) {
  validate(e, "encode exit");
  codec::Writer w(FrameType::kExit);
  w.i32(e.exit_code);
  w.i32(e.signal);
  w.boolean(e.timed_out);
  w.boolean(e.oom_killed);
  w.boolean(e.stdout_truncated);
  w.boolean(e.stderr_truncated);
  return std::move(w).finish();
}

Exit decode_exit(const Frame& f) {
  expect_type(f, FrameType::kExit);
  codec::Reader r(f.payload, "exit");
  Exit e;
  e.exit_code = r.i32("exit_code");
  e.signal = r.i32("signal");
  e.timed_out = r.boolean("timed_out");
  e.oom_killed = r.boolean("oom_killed");
  e.stdout_truncated = r.boolean("stdout_truncated");
  e.stderr_truncated = r.boolean("stderr_truncated");
  r.finish();
  validate(e, "decode exit");
  return e;
}

std::string encode_metrics(const Metrics& m) {
  validate(m, "encode metrics");
  codec::Writer w(FrameType::kMetrics);
  w.u16(kMetricsSchema);
  w.count(m.size());
  for (const auto& [name, metric] : m) {
    w.bytes(name);
    w.bytes(metric.unit);
    w.f64(metric.value);
  }
  return std::move(w).finish();
}

Metrics decode_metrics(const Frame& f) {
  expect_type(f, FrameType::kMetrics);
  codec::Reader r(f.payload, "metrics");
  const uint16_t schema = r.u16("schema");
  if (schema != kMetricsSchema)
    invalid("decode metrics", "schema",
            std::to_string(schema) + " (this host reads " + std::to_string(kMetricsSchema) + ")");
  // Each entry takes at least 4 + 4 + 8 bytes: a count that cannot fit fails before the loop.
  const uint32_t n = r.count("metrics", 16);
  Metrics m;
  for (uint32_t i = 0; i < n; ++i) {
    std::string name = r.bytes("name");
    std::string unit = r.bytes("unit");
    const double value = r.f64("value");
    // Names in strictly increasing byte order (as the encoder writes them): one encoding per
    // map, and no duplicates.
    if (!m.empty() && name <= m.rbegin()->first)
      invalid("decode metrics", "name",
              "'" + printable(name) + "' is out of order or appears twice");
    m.emplace_hint(m.end(), std::move(name), Metric{value, std::move(unit)});
  }
  r.finish();
  validate(m, "decode metrics");
  return m;
}

std::string encode_error(const ErrorReport& e) {
  validate(e, "encode error");
  codec::Writer w(FrameType::kError);
  w.bytes(e.stage);
  w.i32(e.err);
  w.bytes(e.message);
  w.u8(static_cast<uint8_t>(e.origin));
  return std::move(w).finish();
}

ErrorReport decode_error(const Frame& f) {
  expect_type(f, FrameType::kError);
  codec::Reader r(f.payload, "error");
  ErrorReport e;
  e.stage = r.bytes("stage");
  e.err = r.i32("err");
  e.message = r.bytes("message");
  e.origin = static_cast<ErrorOrigin>(r.u8("origin"));
  r.finish();
  validate(e, "decode error");
  return e;
}

std::string encode_end() { return encode_frame(FrameType::kEnd, {}); }

}  // namespace benchrun::proto
