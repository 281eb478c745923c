// vm_backend.cpp: the "vm" backend: the workload in a QEMU microVM with its own kernel and
// benchrun's guest init. Prepare (kernel, initramfs, ext4 root, cgroup, run config) -> start (boot
// to the guest's hello, run config) -> wait (output until the exit frame) -> collect (files,
// shutdown): the steps of vm::Session (vm/launch.cpp). The workload's process config is resolved
// on the host exactly as for the sandbox, and the guest applies the same policy.
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include "benchrun/common/error.hpp"
#include "benchrun/common/fs.hpp"
#include "benchrun/perf/counters.hpp"
#include "benchrun/rootfs/ext4_image.hpp"
#include "benchrun/rootfs/initramfs.hpp"
#include "benchrun/run/backend.hpp"
#include "benchrun/sandbox/seccomp.hpp"
#include "benchrun/vm/kernel.hpp"
#include "benchrun/vm/launch.hpp"
#include "run/limits.hpp"
#include "run/process_config.hpp"
#include "run/run_common.hpp"
#include "vm/results.hpp"

namespace benchrun::run {

namespace {

// The modules the guest init loads, for the transport in use (the rest of what a virtio guest
// needs, e.g. ext4, is built into Debian's cloud kernel; modules.builtin entries are skipped).
std::vector<std::string> guest_modules(vm::Transport transport) {
  std::vector<std::string> m = {"virtio_mmio", "virtio_blk", "virtio_console"};
  if (transport == vm::Transport::kVsock) m.push_back("vmw_vsock_virtio_transport");
  return m;
}

// A user-named kernel's modules: as given, else the usual places for its release; none found
// means the kernel has virtio built in (else the guest reports that its channel is missing).
vm::Kernel kernel_for(const RunSpec& spec, const std::string& cache_dir) {
  if (spec.kernel.empty()) return vm::provision_debian_kernel(cache_dir);
  vm::Kernel k = vm::kernel_from_path(spec.kernel, spec.kernel_modules);
  if (!k.modules_dir.empty()) return k;
  const std::filesystem::path dir = std::filesystem::path(k.image).parent_path();
  for (const auto& candidate : {dir / "modules", dir / "lib" / "modules" / k.release,
                                std::filesystem::path("/lib/modules") / k.release}) {
    std::error_code ec;
    if (std::filesystem::is_directory(candidate / "kernel", ec)) {
      k.modules_dir = candidate.string();
      break;
    }
  }
  return k;
}

// The free space of an ext4 image, from its superblock (at 1024: free blocks at +12, log2 of the
// block size - 10 at +24, little-endian): what the guest can write to its root. 0 if unreadable.
uint64_t ext4_free_bytes(const std::string& image) {
  UniqueFd fd(::open(image.c_str(), O_RDONLY | O_CLOEXEC));
  unsigned char sb[28];
  if (!fd || ::pread(fd.get(), sb, sizeof sb, 1024) != static_cast<ssize_t>(sizeof sb)) return 0;
  auto le32 = [&](int at) {
    return uint64_t{sb[at]} | uint64_t{sb[at + 1]} << 8 | uint64_t{sb[at + 2]} << 16 |
           uint64_t{sb[at + 3]} << 24;
  };
  const uint64_t log = le32(24);
  return log > 6 ? 0 : le32(12) << (10 + log);
}

proto::RunConfig guest_config(const ProcessConfig& proc, const RunSpec& spec, const Limits& limits,
                              const std::vector<std::string>& outputs) {
  proto::RunConfig c;
  c.argv = proc.argv;
  c.env = proc.env;
  c.cwd = proc.cwd;
  c.uid = proc.uid;
  c.gid = proc.gid;
  c.groups.assign(proc.groups.begin(), proc.groups.end());
  c.hostname = spec.hostname;
  c.rlimits = {{RLIMIT_NOFILE, spec.nofile, spec.nofile}, {RLIMIT_CORE, 0, 0}};
  c.timeout_ms = timeout_ms(spec);
  // The guest's RAM bounds the workload; a memory limit it was given explicitly is its cgroup's.
  c.memory_bytes = limits.memory.explicit_ ? limits.memory.value.value_or(0) : 0;
  c.pids_max = limits.pids.value.value_or(0);
  c.outputs = outputs;
  c.max_output_bytes = spec.max_output_bytes;
  c.max_file_bytes = spec.max_file_bytes;
  c.max_files = spec.max_files;
  c.root_device = "/dev/vda";
  std::vector<sock_filter> prog = sandbox::build_seccomp_program();
  c.seccomp_bpf.assign(reinterpret_cast<const char*>(prog.data()),
                       prog.size() * sizeof(sock_filter));
  for (const perf::Counter* k : perf::resolve(spec.counters.value_or(perf::default_names())))
    c.counters.emplace_back(k->name);
  return c;
}

// The counters the guest was asked for but did not report (it could not open them: no virtual
// PMU under TCG, or a guest kernel without the event), named in one notice; never zero.
void note_absent_counters(const std::vector<const perf::Counter*>& counters,
                          const std::string& accel, RunResult& r) {
  std::string absent;
  for (const perf::Counter* k : counters)
    if (!r.metrics.count(k->metric))
      absent += (absent.empty() ? "" : ", ") + std::string(k->metric);
  if (absent.empty()) return;
  r.notices.push_back("counters absent: " + absent + ": the guest could not count them (" +
                      (accel == "tcg" ? "no hardware PMU in the guest: QEMU TCG has no virtual PMU"
                                      : "no virtual PMU for them in the guest, or not permitted") +
                      "; the guest console says why)");
}

vm::Accel parse_accel(const std::string& name) {
  if (name == "kvm") return vm::Accel::kKvm;
  if (name == "tcg") return vm::Accel::kTcg;
  if (name == "auto") return vm::Accel::kAuto;
  throw ConfigError("accel '" + name + "': unknown (choose auto, kvm or tcg)");
}

class VmExecution final : public Execution {
 public:
  // 1. Prepare: the process config (as for the sandbox), then the VM's parts, cached by content.
  VmExecution(const RunContext& ctx, RunResult& r)
      : dir_(make_run_dir(ctx)), cgroup_(make_cgroup(ctx)) {
    const RunSpec& spec = ctx.spec;
    const HostConfig& host = ctx.host;
    counters_ = perf::resolve(spec.counters.value_or(perf::default_names()));
    if (host.init_binary.empty()) throw ConfigError("vm: no guest init binary given");
    UniqueFd image_root = open_file(ctx.image.rootfs, O_PATH | O_DIRECTORY);
    ProcessConfig proc = resolve_process(ctx.image.config, spec, image_root.get());
    std::vector<std::string> outputs;
    for (const auto& p : spec.outputs) outputs.push_back(checked_image_path(p, "output path"));

    const std::string cache = host.vm_cache_dir();
    vm::AccelChoice accel =
        vm::choose_accel(parse_accel(spec.accel), host.cpuinfo, host.kvm_device);
    if (!accel.notice.empty()) r.notices.push_back(accel.notice);
    vm::Kernel kernel = kernel_for(spec, cache);
    const vm::Transport transport = vm::Transport::kVirtioSerial;
    rootfs::InitramfsSpec initramfs{
        host.init_binary, kernel.modules_dir,
        kernel.modules_dir.empty() ? std::vector<std::string>{} : guest_modules(transport)};
    const std::string initrd = rootfs::build_initramfs(initramfs, cache);
    const auto t_rootfs = Clock::now();
    rootfs::Ext4Options ext4;
    const std::string& key = ctx.image.chain_id;
    const std::string ext4_path =
        (std::filesystem::path(cache) / "ext4" / (key.substr(key.find(':') + 1) + ".ext4"))
            .string();
    const bool rootfs_cached = ::access(ext4_path.c_str(), F_OK) == 0;
    const std::string disk = rootfs::ext4_image(ctx.image.rootfs, key, cache, ext4);
    r.set_metric("rootfs_time", since(t_rootfs), "s");

    vm::LaunchSpec ls;
    ls.vm.qemu = host.qemu;
    ls.vm.accel = accel.accel;
    ls.vm.vcpus = spec.cpus.empty() ? 1u : static_cast<unsigned>(spec.cpus.size());
    const bool memory_given = spec.memory && *spec.memory != kUnlimited;
    ls.vm.memory_mib = spec.vm_memory ? *spec.vm_memory >> 20
                       : memory_given ? (*spec.memory >> 20) + 256
                                      : 1024;
    // Limits inside the guest: its RAM unless a memory limit was given, the pids default, /tmp
    // and /dev/shm half the memory limit each (else the kernel's half of RAM), and the root
    // disk's free space, which its image fixed when it was built.
    const uint64_t guest_ram = ls.vm.memory_mib << 20;
    Limits limits = resolve_limits(spec, guest_ram);
    if (!memory_given) limits.memory = {guest_ram, false};
    limits.tmpfs = (memory_given ? *spec.memory : guest_ram) / 2;
    limits.disk = {ext4_free_bytes(disk), false};
    if (spec.disk && *spec.disk != kUnlimited && *spec.disk != *limits.disk.value)
      r.notices.push_back("vm: the writable layer is the root disk's free space (" +
                          std::to_string(*limits.disk.value) +
                          " bytes, fixed when its image was built), not disk");
    record_limits(limits, spec, r);
    ls.vm.kernel = kernel.image;
    ls.vm.initramfs = initrd;
    ls.vm.root_disk = disk;
    ls.vm.transport = transport;
    if (accel.accel == vm::Accel::kTcg) ls.vm.tsc_khz = vm::host_tsc_khz(host.cpuinfo);
    ls.run = guest_config(proc, spec, limits, outputs);
    ls.run_dir = dir_.path().string();
    ls.boot_timeout_s = host.vm_boot_timeout;
    ls.timeout_s = spec.timeout;
    ls.place_qemu = [this](pid_t pid) { cgroup_.add_process(pid); };
    ls.vcpu_cpus = spec.cpus;
    ls.housekeeping = ctx.housekeeping;
    ls.interrupted = ctx.interrupt;
    r.facts["accel"] = std::string(vm::accel_name(accel.accel));
    r.facts["vcpus"] = static_cast<int64_t>(ls.vm.vcpus);
    r.facts["memory_mib"] = static_cast<int64_t>(ls.vm.memory_mib);
    r.facts["rootfs_cached"] = rootfs_cached;
    session_.emplace(ls);
  }

  // 2. Start: boot to the guest init's hello, then the run config (the workload starts).
  void start() override {
    booted_ = session_->boot();
    if (booted_) session_->start();
  }

  // 3. Run: the workload's output until its exit frame (the guest enforces the timeout; the host
  //    a hard deadline of boot + timeout + grace).
  void wait() override {
    if (booted_) session_->wait();
  }

  // 4. Collect: files until end-of-results, shutdown; the workload's figures as the guest
  //    measured them, the VMM's own from the host.
  void collect(RunResult& r) override {
    if (booted_) session_->finish();
    vm::LaunchResult& lr = session_->result();
    r.interrupted = lr.interrupted;
    r.facts["kernel_release"] = lr.hello.kernel_release;
    if (!lr.vcpu_threads.empty()) {
      std::string pins;
      for (const auto& [tid, cpu] : lr.vcpu_threads)
        pins += (pins.empty() ? "" : ",") + std::to_string(tid) + ":" + std::to_string(cpu);
      r.facts["vcpu_threads"] = pins;  // "<thread id>:<host CPU>,..."
      r.facts["qemu_threads_on_housekeeping"] = static_cast<int64_t>(lr.other_threads_pinned);
    }
    if (!lr.pin_notice.empty()) r.notices.push_back(lr.pin_notice);
    r.set_metric("boot_time", lr.start_s + lr.boot_s, "s");
    r.set_metric("guest_boot_time", static_cast<double>(lr.hello.boot_ns) / 1e9, "s");
    const host::CgroupMetrics m = cgroup_.metrics();
    r.set_metric("vmm_cpu",
                 m.cpu_usage_ns ? static_cast<double>(m.cpu_usage_ns) / 1e9
                                : seconds(lr.qemu_usage.ru_utime) + seconds(lr.qemu_usage.ru_stime),
                 "s");
    r.set_metric("vmm_peak_memory",
                 m.memory_peak_bytes ? static_cast<double>(m.memory_peak_bytes)
                                     : static_cast<double>(lr.qemu_usage.ru_maxrss) * 1024,
                 "bytes");
    if (lr.error) vm::throw_guest_error(*lr.error);
    r.start_time = lr.start_time;
    r.stdout_data = std::move(lr.stdout_data);
    r.stderr_data = std::move(lr.stderr_data);
    r.stdout_truncated = lr.stdout_truncated;
    r.stderr_truncated = lr.stderr_truncated;
    r.outputs = std::move(lr.outputs);
    r.missing_outputs = std::move(lr.missing_outputs);
    if (lr.exit) {
      r.exit_code = lr.exit->exit_code;
      r.signal = lr.exit->signal;
      r.timed_out = lr.exit->timed_out;
      r.oom_killed = lr.exit->oom_killed;
      // The guest's own measurements; never in place of one the host made (a guest could
      // otherwise report its VMM's cost or boot time as it liked).
      for (auto& [name, metric] : lr.metrics) r.metrics.emplace(name, std::move(metric));
      const auto accel = r.facts.find("accel");
      note_absent_counters(counters_,
                           accel == r.facts.end() ? "" : std::get<std::string>(accel->second), r);
    } else {  // the host ended the VM (deadline, interrupt): the workload did not report
      r.timed_out = lr.host_deadline;
      r.signal = 9;
      r.set_metric(metric::kWallTime, lr.run_s, "s");
      r.notices.push_back(lr.host_deadline
                              ? "vm: the guest overran its timeout by the host's grace period; the "
                                "VM was killed and its figures are the host's"
                              : "vm: interrupted; the VM was killed");
    }
    r.end_time = r.start_time + r.metric(metric::kWallTime);
  }

 private:
  // QEMU's cgroup: where its threads run and how much CPU they get.
  // QEMU's cgroup: the run's CPUs plus the housekeeping ones, where its own threads go (the vCPU
  // threads are pinned to the run's CPUs). Under a partition the run's cgroup cannot hold CPUs
  // outside it: the run's CPUs only, and QEMU's own threads share them.
  static host::Cgroup make_cgroup(const RunContext& ctx) {
    host::CgroupLimits limits = cpu_limits(ctx.spec);
    const host::CpuList both = host::cpu_union(ctx.spec.cpus, ctx.housekeeping);
    if (!ctx.spec.cpus.empty() && !ctx.housekeeping.empty() && host::cpu_subset(both, ctx.pool))
      limits.cpuset_cpus = host::format_cpu_list(both);
    return host::Cgroup::create(ctx.host.cgroup, ctx.name, limits);
  }

  TempDir dir_;  // sockets, console log, QEMU's snapshot overlay: removed after QEMU is gone
  host::Cgroup cgroup_;
  std::optional<vm::Session> session_;
  bool booted_ = false;
  std::vector<const perf::Counter*> counters_;  // what the guest was asked to count
};

class VmBackend final : public Backend {
 public:
  std::string name() const override { return "vm"; }
  void validate(const RunSpec& spec) const override {
    if (spec.network) throw ConfigError("vm: networking is not supported by the vm backend yet");
    if (!spec.secrets.empty())
      throw ConfigError(
          "secrets: the vm backend does not deliver secrets yet (use --backend sandbox; see "
          "docs/security.md \"Secrets\")");
    // Valgrind in a TCG guest would multiply two emulators' slowdowns, and its 50 MB tool
    // directory would have to reach every initramfs: refused (docs/instructions.md).
    if (!spec.instructions.empty())
      throw ConfigError(
          "instructions: the vm backend does not count instructions (use "
          "--backend sandbox; see docs/instructions.md)");
    // The guest init kills the workload at the timeout and does not forward signals to its
    // group yet (issue 19): refused rather than half done (docs/cli.md "--init").
    if (spec.init)
      throw ConfigError(
          "init: the vm backend has no --init yet (use --backend sandbox; see docs/cli.md)");
    parse_accel(spec.accel);
  }
  std::unique_ptr<Execution> prepare(const RunContext& ctx, RunResult& r) const override {
    return std::make_unique<VmExecution>(ctx, r);
  }
  int sweep(const HostConfig& host) const override { return sweep_stale_runs(host); }
};

}  // namespace

std::unique_ptr<Backend> make_vm_backend() { return std::make_unique<VmBackend>(); }

}  // namespace benchrun::run
