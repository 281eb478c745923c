// vm_runner.cpp: one microVM run, in order: prepare (kernel, initramfs, ext4 root, cgroup, run
// config) -> launch (boot, run, collect: vm/launch.cpp) -> Result. The workload's process config is
// resolved on the host exactly as for the sandbox, and the guest applies the same policy.
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <random>

#include "benchrun/common/error.hpp"
#include "benchrun/common/fs.hpp"
#include "benchrun/rootfs/ext4_image.hpp"
#include "benchrun/rootfs/initramfs.hpp"
#include "benchrun/run/runner.hpp"
#include "benchrun/sandbox/seccomp.hpp"
#include "benchrun/vm/kernel.hpp"
#include "benchrun/vm/launch.hpp"
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
vm::Kernel kernel_for(const VmOptions& o) {
  if (o.kernel.empty()) return vm::provision_debian_kernel(o.cache_dir);
  vm::Kernel k = vm::kernel_from_path(o.kernel, o.kernel_modules);
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

proto::RunConfig guest_config(const ProcessConfig& proc, const RunSpec& spec,
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
  c.timeout_ms = static_cast<uint64_t>(spec.timeout_s * 1000.0);
  if (spec.timeout_s > 0 && c.timeout_ms == 0) c.timeout_ms = 1;
  c.memory_bytes = spec.memory_bytes.value_or(0);
  c.pids_max = spec.pids_limit.value_or(0);
  c.outputs = outputs;
  c.max_output_bytes = spec.max_output_bytes;
  c.max_file_bytes = spec.max_file_bytes;
  c.max_files = static_cast<uint32_t>(spec.max_files);
  c.root_device = "/dev/vda";
  std::vector<sock_filter> prog = sandbox::build_seccomp_program();
  c.seccomp_bpf.assign(reinterpret_cast<const char*>(prog.data()), prog.size() * sizeof(sock_filter));
  return c;
}


}  // namespace

RunResult run_vm(const oci::ImageConfig& image, const std::string& rootfs,
                 const std::string& image_key, const RunSpec& spec, const VmOptions& o) {
  RunResult r;
  VmInfo info;
  const auto t_prepare = Clock::now();

  // 1. Prepare: the process config (as for the sandbox), then the VM's parts, cached by content.
  if (o.init_binary.empty()) throw ConfigError("vm: no guest init binary given");
  if (o.cache_dir.empty()) throw ConfigError("vm: no cache directory given");
  if (spec.timeout_s < 0) throw ConfigError("timeout must not be negative");
  if (spec.network) throw ConfigError("vm: networking is not supported by the vm backend yet");
  UniqueFd image_root = open_file(rootfs, O_PATH | O_DIRECTORY);
  ProcessConfig proc = resolve_process(image, spec, image_root.get());
  std::vector<std::string> outputs;
  for (const auto& p : spec.outputs) outputs.push_back(checked_image_path(p, "output path"));

  vm::AccelChoice accel = vm::choose_accel(o.accel, o.cpuinfo, o.kvm_device);
  if (!accel.notice.empty()) r.notices.push_back(accel.notice);
  vm::Kernel kernel = kernel_for(o);
  rootfs::InitramfsSpec initramfs{
      o.init_binary, kernel.modules_dir,
      kernel.modules_dir.empty() ? std::vector<std::string>{} : guest_modules(o.transport)};
  const std::string initrd = rootfs::build_initramfs(initramfs, o.cache_dir);
  const auto t_rootfs = Clock::now();
  rootfs::Ext4Options ext4;
  ext4.headroom_bytes = o.disk_headroom_bytes;
  const std::string ext4_path = (std::filesystem::path(o.cache_dir) / "ext4" /
                                 (image_key.substr(image_key.find(':') + 1) + ".ext4"))
                                    .string();
  info.rootfs_cached = ::access(ext4_path.c_str(), F_OK) == 0;
  const std::string disk = rootfs::ext4_image(rootfs, image_key, o.cache_dir, ext4);
  info.rootfs_s = since(t_rootfs);

  const std::string name = run_name();
  make_dirs(spec.run_dir);
  TempDir dir(spec.run_dir, name + "-");

  sandbox::CgroupLimits limits;  // QEMU's: where its threads run and how much CPU they get
  limits.cpuset_cpus = cpu_list(spec.cpus);
  if (spec.cpu_quota) {
    if (*spec.cpu_quota <= 0) throw ConfigError("cpu quota must be positive");
    limits.cpu_quota_us =
        static_cast<uint64_t>(*spec.cpu_quota * static_cast<double>(limits.cpu_period_us));
  }
  sandbox::Cgroup cgroup = sandbox::Cgroup::create(spec.cgroup, name, limits);

  vm::LaunchSpec ls;
  ls.vm.qemu = o.qemu;
  ls.vm.accel = accel.accel;
  ls.vm.vcpus = o.vcpus ? o.vcpus : spec.cpus.empty() ? 1u : static_cast<unsigned>(spec.cpus.size());
  ls.vm.memory_mib = o.memory_mib             ? o.memory_mib
                     : spec.memory_bytes ? (*spec.memory_bytes >> 20) + 256
                                         : 1024;
  ls.vm.kernel = kernel.image;
  ls.vm.initramfs = initrd;
  ls.vm.root_disk = disk;
  ls.vm.transport = o.transport;
  if (accel.accel == vm::Accel::kTcg) ls.vm.tsc_khz = vm::host_tsc_khz(o.cpuinfo);
  ls.run = guest_config(proc, spec, outputs);
  ls.run_dir = dir.path().string();
  ls.boot_timeout_s = o.boot_timeout_s;
  ls.timeout_s = spec.timeout_s;
  ls.place_qemu = [&cgroup](pid_t pid) { cgroup.add_process(pid); };
  ls.interrupted = spec.interrupted;
  info.accel = vm::accel_name(accel.accel);
  info.vcpus = ls.vm.vcpus;
  info.memory_mib = ls.vm.memory_mib;
  r.phases.prepare_s = since(t_prepare);

  // 2-4. Boot, run, collect (QEMU is gone when launch returns).
  vm::LaunchResult lr = vm::launch(ls);

  // 5. The Result: the workload's figures as the guest measured them, the VMM's from the host.
  r.phases.start_s = lr.start_s + lr.boot_s;
  r.phases.run_s = lr.run_s;
  r.phases.collect_s = lr.collect_s + lr.shutdown_s;
  r.interrupted = lr.interrupted;
  info.boot_s = lr.start_s + lr.boot_s;
  info.guest_boot_s = static_cast<double>(lr.hello.boot_ns) / 1e9;
  info.kernel_release = lr.hello.kernel_release;
  const sandbox::CgroupMetrics m = cgroup.metrics();
  info.vmm_cpu_s = m.cpu_usage_ns ? static_cast<double>(m.cpu_usage_ns) / 1e9
                                  : seconds(lr.qemu_usage.ru_utime) + seconds(lr.qemu_usage.ru_stime);
  info.vmm_peak_memory_bytes =
      m.memory_peak_bytes ? m.memory_peak_bytes : static_cast<uint64_t>(lr.qemu_usage.ru_maxrss) * 1024;
  cgroup.destroy();
  r.vm = info;
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
    r.wall_s = static_cast<double>(lr.exit->wall_ns) / 1e9;
    r.cpu_user_s = static_cast<double>(lr.exit->cpu_user_ns) / 1e9;
    r.cpu_system_s = static_cast<double>(lr.exit->cpu_system_ns) / 1e9;
    r.peak_memory_bytes = lr.exit->peak_memory_bytes;
  } else {  // the host ended the VM (deadline, interrupt): the workload did not report
    r.timed_out = lr.host_deadline;
    r.signal = 9;
    r.wall_s = lr.run_s;
    r.notices.push_back(lr.host_deadline
                            ? "vm: the guest overran its timeout by the host's grace period; the VM "
                              "was killed and its figures are the host's"
                            : "vm: interrupted; the VM was killed");
  }
  r.end_time = r.start_time + r.wall_s;
  return r;  // dir (sockets, console log, QEMU's overlay) is removed by its destructor
}

}  // namespace benchrun::run
