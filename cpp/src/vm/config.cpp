// config.cpp: accelerator choice and the QEMU microvm command line.
#include "benchrun/vm/config.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <time.h>
#include <x86intrin.h>

#include <algorithm>
#include <cerrno>
#include <mutex>
#include <cstring>
#include <iterator>
#include <set>
#include <sstream>

#include "benchrun/common/clock.hpp"
#include "benchrun/common/error.hpp"
#include "benchrun/common/fs.hpp"

namespace benchrun::vm {

namespace {

// The words of the first "flags" line of cpuinfo (x86 /proc/cpuinfo); none if it cannot be read.
std::set<std::string> cpu_flags(const std::string& cpuinfo) {
  std::string text;
  try {
    text = read_file(cpuinfo, 16u << 20);
  } catch (const Error&) {
    return {};
  }
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream words(line.substr(line.find(':') + 1));
    return {std::istream_iterator<std::string>(words), std::istream_iterator<std::string>()};
  }
  return {};
}

// vmx: Intel VT-x, svm: AMD-V.
bool has_hw_virt(const std::string& cpuinfo) {
  const std::set<std::string> flags = cpu_flags(cpuinfo);
  return flags.count("vmx") || flags.count("svm");
}

void require(const std::string& value, const char* what) {
  if (value.empty()) throw ConfigError(std::string("vm config: ") + what + " is not set");
  if (value.find(',') != std::string::npos && std::string(what) != "qemu")
    // QEMU's option syntax splits on commas; our own paths never contain one.
    throw ConfigError(std::string("vm config: ") + what + " '" + value +
                      "' contains a comma, which QEMU's option syntax cannot take");
}

int64_t raw_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// A (ns, tsc) pair whose two clock reads are closest together, so a preemption between them does
// not skew the sample.
std::pair<int64_t, uint64_t> sample() {
  std::pair<int64_t, uint64_t> best{0, 0};
  int64_t best_gap = INT64_MAX;
  for (int i = 0; i < 16; ++i) {
    const int64_t a = raw_ns();
    const uint64_t tsc = __rdtsc();
    const int64_t b = raw_ns();
    if (b - a < best_gap) best_gap = b - a, best = {a + (b - a) / 2, tsc};
  }
  return best;
}

uint64_t measure_tsc_khz() {
  const auto [t0, c0] = sample();
  sleep_for(std::chrono::milliseconds(20));
  const auto [t1, c1] = sample();
  if (t1 <= t0 || c1 <= c0) return 0;
  return static_cast<uint64_t>(static_cast<double>(c1 - c0) * 1e6 / static_cast<double>(t1 - t0));
}

}  // namespace

uint64_t host_tsc_khz(const std::string& cpuinfo) {
  if (!cpu_flags(cpuinfo).count("constant_tsc")) return 0;
  static std::once_flag once;
  static uint64_t khz = 0;
  std::call_once(once, [] { khz = measure_tsc_khz(); });
  return khz;
}

const char* accel_name(Accel accel) {
  switch (accel) {
    case Accel::kKvm:
      return "kvm";
    case Accel::kTcg:
      return "tcg";
    case Accel::kAuto:
      break;
  }
  return "auto";
}

AccelChoice choose_accel(Accel requested, const std::string& cpuinfo,
                         const std::string& kvm_device) {
  if (requested == Accel::kTcg) return {Accel::kTcg, ""};
  const bool hw = has_hw_virt(cpuinfo);
  int fd = ::open(kvm_device.c_str(), O_RDWR | O_CLOEXEC);
  const int open_errno = errno;
  if (fd >= 0) ::close(fd);
  if (requested == Accel::kKvm) {
    if (fd < 0)
      throw VmError("accel kvm: cannot open '" + kvm_device + "': " + std::strerror(open_errno));
    return {Accel::kKvm, hw ? ""
                            : "accel kvm forced without vmx/svm in " + cpuinfo +
                                  ": a nested paravirtual KVM may be very slow"};
  }
  if (hw && fd >= 0) return {Accel::kKvm, ""};
  std::string why = !hw ? "no hardware virtualisation (no vmx/svm in " + cpuinfo + ")"
                        : "'" + kvm_device + "' is not usable (" + std::strerror(open_errno) + ")";
  return {Accel::kTcg, "vm: " + why +
                           ": using QEMU's TCG emulator; CPU timings are not comparable with "
                           "native runs (force with --accel)"};
}

std::string kernel_cmdline(const VmConfig& c) {
  // quiet: printing boot messages through an emulated UART costs TCG guests hundreds of ms.
  // panic=-1 + reboot=t with -no-reboot: any guest failure ends QEMU at once instead of hanging.
  std::string s =
      "console=ttyS0 quiet loglevel=3 panic=-1 reboot=t tsc=reliable no_timer_check "
      "i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd 8250.nr_uarts=1 random.trust_cpu=on "
      "rdinit=/init";
  if (c.accel == Accel::kTcg && c.tsc_khz > 0) s += " tsc_early_khz=" + std::to_string(c.tsc_khz);
  if (c.transport == Transport::kVsock)
    s += " benchrun.transport=vsock benchrun.port=" + std::to_string(c.vsock_port);
  if (!c.extra_cmdline.empty()) s += " " + c.extra_cmdline;
  return s;
}

std::vector<std::string> qemu_argv(const VmConfig& c) {
  require(c.qemu, "qemu");
  require(c.kernel, "kernel");
  require(c.initramfs, "initramfs");
  require(c.root_disk, "root disk");
  if (c.qmp_fd < 0) require(c.qmp_socket, "QMP socket");
  require(c.serial_log, "serial log");
  if (c.transport == Transport::kVirtioSerial && c.channel_fd < 0)
    require(c.channel_socket, "channel socket");
  if (c.vcpus == 0 || c.vcpus > 255) throw ConfigError("vm config: vcpus must be 1..255");
  if (c.memory_mib < 64) throw ConfigError("vm config: memory must be at least 64 MiB");
  if (c.accel == Accel::kAuto) throw ConfigError("vm config: accel must be resolved");

  std::vector<std::string> a = {
      c.qemu,
      // The PIT and RTC stay: without them TCG guests cannot calibrate, and clocks read 1970.
      "-M",
      std::string("microvm,accel=") + accel_name(c.accel) + ",x-option-roms=off",
      "-cpu",
      c.accel == Accel::kKvm ? "host" : "max",
      "-smp",
      std::to_string(c.vcpus),
      "-m",
      std::to_string(c.memory_mib) + "M",
      "-nodefaults",
      "-no-user-config",
      "-display",
      "none",
      "-no-reboot",
      "-chardev",
      "file,id=console,path=" + c.serial_log,
      "-serial",
      "chardev:console",
      "-kernel",
      c.kernel,
      "-initrd",
      c.initramfs,
      "-append",
      kernel_cmdline(c),
      "-drive",
      "id=root,file=" + c.root_disk + ",format=raw,if=none,snapshot=on,cache=unsafe",
      "-device",
      "virtio-blk-device,drive=root",
  };
  if (c.qmp_fd >= 0) {
    a.insert(a.end(), {"-chardev", "socket,id=qmp,fd=" + std::to_string(c.qmp_fd), "-mon",
                       "chardev=qmp,mode=control"});
  } else {
    a.insert(a.end(), {"-qmp", "unix:" + c.qmp_socket + ",server=on,wait=off"});
  }
  if (c.transport == Transport::kVirtioSerial) {
    a.insert(a.end(), {"-chardev",
                       c.channel_fd >= 0 ? "socket,id=channel,fd=" + std::to_string(c.channel_fd)
                                         : "socket,id=channel,path=" + c.channel_socket,
                       "-device", "virtio-serial-device,max_ports=2", "-device",
                       "virtserialport,chardev=channel,name=benchrun.0"});
  } else {
    a.insert(a.end(), {"-device", "vhost-vsock-device,guest-cid=" + std::to_string(c.vsock_cid)});
  }
  if (c.network) {
    a.insert(a.end(), {"-netdev", "user,id=net0", "-device", "virtio-net-device,netdev=net0"});
  } else {
    a.insert(a.end(), {"-net", "none"});
  }
  // QEMU installs its filter before it drops root, so with -runas set*id stays allowed (after the
  // drop every id is the user's: there is nothing left to regain); without it, set*id is denied.
  if (c.confine)
    a.insert(a.end(), {"-sandbox", std::string("on,obsolete=deny,spawn=deny,resourcecontrol=deny") +
                                       (c.run_as.empty() ? ",elevateprivileges=deny" : "")});
  if (!c.run_as.empty()) a.insert(a.end(), {"-runas", c.run_as});
  return a;
}

}  // namespace benchrun::vm
