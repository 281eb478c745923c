// spec.hpp: the options of one run, declared once. BENCHRUN_RUN_OPTIONS lists every option with
// its C++ type, default and a one-line doc; the struct, the Python binding (properties of
// benchrun._core.RunSpec) and the validation below derive from it. Python's option table
// (python/benchrun/options.py) adds what a user types (CLI flags, units like "512m"), nothing else.
// A new option: one line here, its check in validate(), its use in a backend.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "benchrun/host/cgroup.hpp"

namespace benchrun::run {

using Argv = std::vector<std::string>;
using Strings = std::vector<std::string>;
using Cpus = std::vector<int>;

// The value of memory, pids_limit and disk that asks for no limit at all (an absent value asks for
// the default; see run/limits.hpp).
inline constexpr uint64_t kUnlimited = UINT64_MAX;

// X(type, name, default, scope, doc): scope is the one backend that reads the option, or ""
// for every backend; a backend-specific option set for another backend is a ConfigError.
#define BENCHRUN_RUN_OPTIONS(X)                                                                    \
  X(std::string, backend, "sandbox", "", "where the workload runs (a registered backend name)")    \
  X(std::optional<Argv>, entrypoint, std::nullopt, "",                                             \
    "replaces the image's Entrypoint and clears its Cmd; None: the image's")                       \
  X(std::optional<Argv>, command, std::nullopt, "", "replaces the image's Cmd; None: the image's") \
  X(Strings, env, {}, "",                                                                          \
    "K=V entries over the image's Env (nothing from the caller's environment)")                    \
  X(std::optional<std::string>, workdir, std::nullopt, "",                                         \
    "absolute working directory in the image")                                                     \
  X(std::optional<std::string>, user, std::nullopt, "", "name, uid, name:group or uid:gid")        \
  X(std::optional<uint64_t>, memory, std::nullopt, "",                                             \
    "memory limit in bytes, no swap (>= 6 MiB); None: 3/4 of the host's RAM; UNLIMITED: none")     \
  X(std::optional<uint64_t>, pids_limit, std::nullopt, "",                                         \
    "maximum processes and threads; None: 1024; UNLIMITED: none")                                  \
  X(std::optional<uint64_t>, disk, std::nullopt, "",                                               \
    "size of the writable layer in bytes (>= 16 MiB); None: 10 GiB; UNLIMITED: none")              \
  X(Cpus, cpus, {}, "", "host CPUs the run is pinned to, locked for it alone; empty: no pinning")  \
  X(std::optional<uint64_t>, cpu_count, std::nullopt, "",                                          \
    "this many free CPUs of the runs' CPUs (the partition's), locked for the run alone")           \
  X(double, cpu_wait, 0.0, "", "seconds to wait for busy CPUs; 0: fail at once naming the holder") \
  X(std::optional<double>, cpu_quota, std::nullopt, "", "CPU time quota in CPUs' worth (1.5)")     \
  X(double, timeout, 0.0, "", "wall-clock limit of the workload in seconds; 0: none")              \
  X(Strings, outputs, {}, "", "absolute paths in the image to collect after the run")              \
  X(uint64_t, max_output_bytes, uint64_t{64} << 20, "", "cap on each of stdout and stderr, bytes") \
  X(uint64_t, max_file_bytes, uint64_t{64} << 20, "", "cap on each collected file, bytes")         \
  X(uint32_t, max_files, 64, "", "cap on the number of collected files")                           \
  X(uint64_t, nofile, 1024, "", "RLIMIT_NOFILE of the workload")                                   \
  X(bool, network, false, "", "network access (not supported yet: loopback only)")                 \
  X(std::string, hostname, "benchrun", "", "the workload's hostname")                              \
  X(std::string, accel, "auto", "vm", "auto, kvm or tcg")                                          \
  X(std::string, kernel, "", "vm", "a bzImage; empty: Debian's cloud kernel")                      \
  X(std::string, kernel_modules, "", "vm", "lib/modules/<release> of kernel; empty: next to it")   \
  X(std::optional<uint64_t>, vm_memory, std::nullopt, "vm",                                        \
    "guest RAM in bytes; None: memory + 256 MiB, or 1 GiB")                                        \
  X(std::string, instructions, "", "",                                                             \
    "count instructions under Valgrind (callgrind): count, cache or sections; empty: off")         \
  X(std::optional<Strings>, counters, std::nullopt, "",                                            \
    "performance counters over the workload (perf/counters.hpp); None: the default set; empty: "   \
    "none")                                                                                        \
  X(std::string, runtime, "", "oci", "the OCI runtime of backend oci: a path, or a name to look up") \
  X(std::string, runsc_platform, "auto", "runsc", "gVisor platform: auto, systrap, ptrace or kvm") \
  X(bool, init, false, "",                                                                         \
    "a minimal init as PID 1: forwards signals to the workload's group, reaps orphans")            \
  X(double, stop_timeout, 10.0, "",                                                                \
    "seconds between SIGTERM and the kill at the timeout (with init)")

struct RunSpec {
#define BENCHRUN_RUN_OPTION_FIELD(type, name, init, scope, doc) type name = init;
  BENCHRUN_RUN_OPTIONS(BENCHRUN_RUN_OPTION_FIELD)
#undef BENCHRUN_RUN_OPTION_FIELD
  // Unprivileged mode: a user namespace maps the caller to root; unset: exactly when not root.
  // (Not an option: how benchrun itself runs, set by tests.)
  std::optional<bool> rootless;
  // Secrets (docs/security.md "Secrets"): (name, content), files of /run/secrets in the run. Not an
  // option of the table: never a property, never echoed; set by run() from its own argument.
  std::vector<std::pair<std::string, std::string>> secrets;
};

// Bounds of RunSpec::secrets: a name is [A-Za-z0-9_.-]{1,kMaxSecretName}, not "." or "..".
inline constexpr size_t kMaxSecrets = 64;
inline constexpr size_t kMaxSecretName = 128;
inline constexpr size_t kMaxSecretBytes = size_t{1} << 20;  // each
inline constexpr size_t kMaxSecretTotal = size_t{4} << 20;

// Every rule of every option (ConfigError naming the option and the fix). Backend-specific
// refusals (e.g. the vm backend has no network yet) are the backend's own validate().
void validate(const RunSpec& spec);

// The run's deadline in milliseconds for a protocol or poll timeout: 0 = none, and a positive
// timeout never rounds down to "none".
uint64_t timeout_ms(const RunSpec& spec);

// Where things are on this host: parameters with defaults, never read from the environment
// (STYLE rule 7), so tests can point them elsewhere.
struct HostConfig {
  std::string store;  // the image store root; runs live in <store>/runs
  host::CgroupConfig cgroup;
  std::string vm_cache;  // kernels, initramfs, ext4 images; empty: <store>/vm
  std::string qemu = "qemu-system-x86_64";
  std::string init_binary;  // the static guest init (benchrun-init)
  std::string cpuinfo = "/proc/cpuinfo";
  std::string meminfo = "/proc/meminfo";  // MemTotal: the default memory limit's base
  std::string mkfs = "mkfs.ext4";         // formats the writable layer's filesystem (disk limit)
  std::string kvm_device = "/dev/kvm";
  // Per-CPU lock files of the CPU allocation (host/cpu_alloc.hpp): host-wide, shared by stores.
  std::string cpu_lock_dir = "/run/benchrun/cpus";
  std::string cpu_online = "/sys/devices/system/cpu/online";
  double vm_boot_timeout = 60;
  // Instruction counting (--instructions, run/instructions.hpp): Valgrind's tool directory
  // (Debian's valgrind package) and benchrun's static launcher (cpp/tools/vglaunch.c).
  std::string valgrind_dir = "/usr/libexec/valgrind";
  std::string valgrind_launcher;
  // --init: benchrun's static init (cpp/tools/pid1.c), bound at /.benchrun-pid1 of the run.
  std::string pid1_binary;

  std::string run_dir() const { return store + "/runs"; }
  std::string vm_cache_dir() const { return vm_cache.empty() ? store + "/vm" : vm_cache; }
};

}  // namespace benchrun::run
