// runner.hpp: run one image in the sandbox backend and return its Result.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "benchrun/oci/manifest.hpp"
#include "benchrun/host/cgroup.hpp"
#include "benchrun/vm/config.hpp"

namespace benchrun::run {

struct RunSpec {
  // Docker semantics: a given entrypoint replaces the image's and clears its Cmd; a given command
  // replaces Cmd. Env = image Env overridden by env (K=V); nothing from the runner's environment.
  std::optional<std::vector<std::string>> entrypoint;
  std::optional<std::vector<std::string>> command;
  std::vector<std::string> env;
  std::optional<std::string> workdir;
  std::optional<std::string> user;  // name, uid, name:group, uid:gid (resolved in the image)
  std::optional<uint64_t> memory_bytes;
  std::optional<uint64_t> pids_limit;
  std::vector<int> cpus;                // pinned CPU set (empty: no pinning)
  std::optional<double> cpu_quota;      // CPUs' worth of time (e.g. 1.5); none = unlimited
  double timeout_s = 0;                 // wall-clock limit of the workload; 0 = none
  std::vector<std::string> outputs;     // absolute paths inside the image to collect after the run
  uint64_t max_output_bytes = 64ull << 20;  // per stream (stdout, stderr)
  uint64_t max_file_bytes = 64ull << 20;    // per collected file
  size_t max_files = 64;
  uint64_t nofile = 1024;
  bool network = false;
  std::string hostname = "benchrun";
  host::CgroupConfig cgroup;
  std::string run_dir;  // where per-run upper/work dirs go (created if missing)
  // Unprivileged mode: a user namespace maps the caller to root (the workload must run as root),
  // and the run has a cgroup only where one can be created (a delegated subtree); without one,
  // requesting a limit is a SandboxError and RunResult::notices says what is missing. Unset:
  // rootless exactly when geteuid() != 0.
  std::optional<bool> rootless;
  // Polled while the workload runs; returning true kills the run (RunResult::interrupted).
  std::function<bool()> interrupted;
};

struct Phases {
  double prepare_s = 0, start_s = 0, run_s = 0, collect_s = 0;
};

// What a microVM run adds to a Result.
struct VmInfo {
  std::string kernel_release;  // as the guest reports it (uname -r)
  std::string accel;           // "kvm" or "tcg"
  unsigned vcpus = 1;
  uint64_t memory_mib = 0;
  double boot_s = 0;           // QEMU start to the guest init's hello
  double guest_boot_s = 0;     // the guest kernel's own boot, to init (CLOCK_BOOTTIME)
  double rootfs_s = 0;         // ext4 image build, or cache lookup
  bool rootfs_cached = false;
  double vmm_cpu_s = 0;        // QEMU's CPU time (all threads) on the host
  uint64_t vmm_peak_memory_bytes = 0;
};

struct RunResult {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;
  std::string stdout_data, stderr_data;
  bool stdout_truncated = false, stderr_truncated = false;
  std::map<std::string, std::string> outputs;
  std::map<std::string, std::string> missing_outputs;  // path -> why
  bool timed_out = false;
  bool oom_killed = false;
  bool interrupted = false;  // RunSpec::interrupted stopped it (e.g. Ctrl-C)
  double wall_s = 0;  // from exec to exit of the workload
  double cpu_user_s = 0, cpu_system_s = 0;
  uint64_t peak_memory_bytes = 0;
  double start_time = 0, end_time = 0;  // unix seconds
  Phases phases;
  // What this run could not provide and why (e.g. no cgroup as an unprivileged user), a line each.
  std::vector<std::string> notices;
  std::optional<VmInfo> vm;  // set by run_vm
};

// The microVM backend's own settings (RunSpec holds the run's).
struct VmOptions {
  vm::Accel accel = vm::Accel::kAuto;
  std::string qemu = "qemu-system-x86_64";
  std::string kernel;          // a bzImage; empty: Debian's cloud kernel, provisioned in cache_dir
  std::string kernel_modules;  // lib/modules/<release> of a given kernel; empty: next to it
  std::string init_binary;     // the static guest init (benchrun-init)
  std::string cache_dir;       // kernels, initramfs and ext4 images, keyed by content
  unsigned vcpus = 0;          // 0: one per pinned CPU, or 1
  uint64_t memory_mib = 0;     // guest RAM; 0: --memory + 256 MiB, or 1024 MiB
  uint64_t disk_headroom_bytes = 256ull << 20;  // free space in the root filesystem
  double boot_timeout_s = 60;
  vm::Transport transport = vm::Transport::kVirtioSerial;
  std::string cpuinfo = "/proc/cpuinfo";
  std::string kvm_device = "/dev/kvm";
};

// Runs the image's process in the sandbox over rootfs (the image's unpacked, read-only tree).
// Throws ConfigError (bad spec / hostile image config), SandboxError{stage} (setup failed).
RunResult run_sandbox(const oci::ImageConfig& image, const std::string& rootfs, const RunSpec& spec);

// Runs the image's process in a QEMU microVM: rootfs (the unpacked tree) becomes a cached ext4
// image keyed by image_key (the image's chain id), booted read-only under a per-run overlay.
// Throws ConfigError, VmError (QEMU or the guest failed: with the console's tail), ProtocolError
// (the guest broke the protocol), SandboxError{stage="exec"} (the command cannot be executed).
RunResult run_vm(const oci::ImageConfig& image, const std::string& rootfs,
                 const std::string& image_key, const RunSpec& spec, const VmOptions& options);

// Removes what a SIGKILLed runner left: run dirs under run_dir and stale cgroups. Returns the count.
int cleanup_leftovers(const std::string& run_dir, const host::CgroupConfig& cgroup);

}  // namespace benchrun::run
