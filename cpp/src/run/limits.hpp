// limits.hpp: the limits a run gets. Every run is bounded, also without flags: an option that is
// not given gets a default that a benchmark does not reach and a runaway does (memory, processes,
// the writable layer's size, /tmp and /dev/shm); kUnlimited asks for none. The limits that applied
// are recorded in the result (RunResult::limits).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "benchrun/run/result.hpp"
#include "benchrun/run/spec.hpp"

namespace benchrun::run {

inline constexpr uint64_t kDefaultPids = 1024;
inline constexpr uint64_t kDefaultDisk = uint64_t{10} << 30;
// The default memory limit is this fraction of the host's RAM (MemTotal): a benchmark rarely needs
// more, and the host keeps a quarter for itself when a run does not stop growing.
inline constexpr uint64_t kDefaultMemoryNum = 3, kDefaultMemoryDen = 4;

// One limit: its value (nullopt: none) and whether the user asked for it (false: a default, which
// a rootless run without a cgroup or loop devices may have to go without).
struct Limit {
  std::optional<uint64_t> value;
  bool explicit_ = false;
};

struct Limits {
  Limit memory;  // bytes
  Limit pids;
  Limit disk;          // bytes of the writable layer's filesystem
  uint64_t tmpfs = 0;  // size= of /tmp and of /dev/shm, each: half the memory limit, or of RAM
};

// MemTotal of a /proc/meminfo-format file, in bytes. SysError/ConfigError when unreadable.
uint64_t host_memory_bytes(const std::string& meminfo);

// The spec's limits with the defaults filled in, for a host (or guest) of ram_bytes.
Limits resolve_limits(const RunSpec& spec, uint64_t ram_bytes);

// Records what applied in r.limits: memory, pids, disk, tmpfs, nofile (nullopt = unlimited).
void record_limits(const Limits& l, const RunSpec& spec, RunResult& r);

}  // namespace benchrun::run
