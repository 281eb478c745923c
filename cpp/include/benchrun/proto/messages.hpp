// messages.hpp: the typed payloads of the host<->guest protocol (docs/protocol.md). Payload fields
// are little-endian integers and u32-length-prefixed byte strings, in the order declared here;
// decoders reject short, overlong (trailing bytes) and out-of-range payloads with ProtocolError.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "benchrun/common/metrics.hpp"
#include "benchrun/proto/frame.hpp"

namespace benchrun::proto {

// Data per stdout/stderr/file frame that always fits (a file frame also carries its path).
inline constexpr size_t kMaxChunkData = size_t{1} << 19;
// Longest path in file/file_missing frames (PATH_MAX).
inline constexpr size_t kMaxPathBytes = 4096;
// Version of the metrics frame's payload layout (its first field).
inline constexpr uint16_t kMetricsSchema = 1;
// Longest seccomp program in RunConfig (BPF_MAXINSNS instructions of 8 bytes).
inline constexpr size_t kMaxSeccompBytes = 4096 * 8;

struct Hello {
  uint16_t version = kVersion;
  std::string init_version;    // the guest init's build version
  std::string kernel_release;  // uname -r inside the guest
  uint64_t boot_ns = 0;        // CLOCK_BOOTTIME when init started (kernel boot time)
};

struct Rlimit {
  uint32_t resource = 0;  // RLIMIT_*
  uint64_t soft = 0, hard = 0;
};

struct RunConfig {
  std::vector<std::string> argv;  // argv[0] is resolved against PATH in env when it has no '/'
  std::vector<std::string> env;   // K=V
  std::string cwd = "/";
  uint32_t uid = 0, gid = 0;
  std::vector<uint32_t> groups;
  std::string hostname = "benchrun";
  std::vector<Rlimit> rlimits;
  uint64_t timeout_ms = 0;                  // 0: none
  uint64_t memory_bytes = 0;                // workload cgroup memory.max inside the guest; 0: none
  uint64_t pids_max = 0;                    // workload cgroup pids.max; 0: none
  std::vector<std::string> outputs;         // absolute paths inside the image to collect after exit
  uint64_t max_output_bytes = 64ull << 20;  // per stream
  uint64_t max_file_bytes = 64ull << 20;    // per file
  uint32_t max_files = 64;
  std::string root_device = "/dev/vda";  // ext4 root of the image
  std::string seccomp_bpf;  // the sandbox's compiled policy: sock_filter[] bytes (8 per instr)
  std::vector<std::string> counters;  // perf counters to open on the workload (perf/counters.hpp)
};

struct FileChunk {
  std::string path;
  uint64_t size = 0;    // whole file size
  uint64_t offset = 0;  // of this chunk; chunks come in order
  std::string data;
};

struct FileMissing {
  std::string path;
  std::string reason;
};

struct Exit {
  int32_t exit_code = -1;  // -1 when killed by a signal
  int32_t signal = 0;
  bool timed_out = false;
  bool oom_killed = false;
  bool stdout_truncated = false;
  bool stderr_truncated = false;
};

// Which part of the guest failed: init's own steps (the VM failed), or the workload's setup in the
// sandbox's child, whose stages ("exec", "setresuid", ...) are the sandbox backend's.
enum class ErrorOrigin : uint8_t { kInit = 0, kWorkload = 1 };

struct ErrorReport {
  std::string stage;  // e.g. "mount-root", "exec"
  int32_t err = 0;    // errno, 0 if none
  std::string message;
  ErrorOrigin origin = ErrorOrigin::kInit;
};

// Each encode_* returns a whole frame (header + payload); each decode_* takes a frame of the
// matching type (ProtocolError otherwise). Both directions check the field rules of
// docs/protocol.md (argv non-empty, absolute paths, no NUL, seccomp size, exit status ranges, ...),
// so a bad value fails with ProtocolError at the sender already. stdout/stderr frames need no
// decoder: their payload is the data; end has an empty payload, which Decoder checks.
std::string encode_hello(const Hello&);
std::string encode_run_config(const RunConfig&);
std::string encode_stdout(std::string_view data);
std::string encode_stderr(std::string_view data);
std::string encode_file(const FileChunk&);
std::string encode_file_missing(const FileMissing&);
std::string encode_exit(const Exit&);
std::string encode_metrics(const Metrics&);
std::string encode_error(const ErrorReport&);
std::string encode_end();

Hello decode_hello(const Frame&);
RunConfig decode_run_config(const Frame&);
FileChunk decode_file(const Frame&);
FileMissing decode_file_missing(const Frame&);
Exit decode_exit(const Frame&);
Metrics decode_metrics(const Frame&);
ErrorReport decode_error(const Frame&);

}  // namespace benchrun::proto
