// config.hpp: one microVM's configuration and the QEMU command line built from it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace benchrun::vm {

enum class Accel { kAuto, kKvm, kTcg };
enum class Transport { kVirtioSerial, kVsock };

struct VmConfig {
  std::string qemu = "qemu-system-x86_64";
  Accel accel = Accel::kTcg;  // resolved (choose_accel), never kAuto here
  unsigned vcpus = 1;
  uint64_t memory_mib = 1024;
  std::string kernel;     // bzImage
  std::string initramfs;  // newc cpio with the guest init
  std::string root_disk;  // ext4 image of the image's rootfs: opened read-only, never written
  // virtio-serial: QEMU's end of the channel, a connected Unix socket. channel_fd >= 0: an fd QEMU
  // inherits (one end of a socketpair: no path, no listener anyone else could reach); otherwise
  // channel_socket, a path QEMU connects to.
  int channel_fd = -1;
  std::string channel_socket;
  uint32_t vsock_cid = 3;      // vsock transport: the guest's CID (vhost-vsock-device)
  uint32_t vsock_port = 1024;  // vsock transport: the port the guest connects to on the host
  Transport transport = Transport::kVirtioSerial;
  int qmp_fd = -1;         // QMP over an inherited connected socket, or
  std::string qmp_socket;  // a Unix socket path QEMU listens on
  std::string serial_log;  // the guest console (ttyS0) is appended here
  bool network = false;    // a user-mode NIC; none by default
  // QEMU confines itself once its devices are open: its own seccomp filter (-sandbox: no
  // obsolete syscalls, no fork/exec, no scheduler or resource changes, no set*id beyond its own
  // drop), and, when run_as names a user, it drops root for that user (-runas). A guest that
  // escapes into the emulator then holds an unprivileged, filtered process, not host root.
  bool confine = true;
  std::string run_as;
  std::string extra_cmdline;
  // TCG: the guest's TSC is the host's, but a loaded host makes the guest's own calibration
  // against the emulated PIT fail, and the kernel then hangs early in boot. Passing the host's
  // TSC rate (tsc_early_khz=) skips that calibration. 0: not passed.
  uint64_t tsc_khz = 0;
};

// Picks the accelerator: KVM only when asked for or when kAuto finds hardware virtualisation (vmx
// or svm among /proc/cpuinfo's flags) and a usable /dev/kvm; TCG otherwise, with a one-line notice
// saying why. Forcing KVM where it cannot work is a VmError.
struct AccelChoice {
  Accel accel = Accel::kTcg;
  std::string notice;  // empty when nothing needs saying
};
AccelChoice choose_accel(Accel requested, const std::string& cpuinfo = "/proc/cpuinfo",
                         const std::string& kvm_device = "/dev/kvm");

// The guest kernel's command line for this config.
std::string kernel_cmdline(const VmConfig& config);

// The full argv (argv[0] = config.qemu) for a `-M microvm` guest: no default devices, no NIC
// unless network, kernel + initramfs direct boot, the root disk as a virtio-blk-device in snapshot
// mode (writes go to a temporary overlay QEMU creates under $TMPDIR, the run's directory), the
// result channel, QMP, the console to serial_log, -no-reboot so a guest power-off or reboot ends
// QEMU. ConfigError for an incomplete config.
std::vector<std::string> qemu_argv(const VmConfig& config);

const char* accel_name(Accel accel);

// The host's TSC rate in kHz, measured against CLOCK_MONOTONIC_RAW over ~20 ms (once per process:
// a hardware constant). 0 where the TSC is not constant (no constant_tsc in cpuinfo).
uint64_t host_tsc_khz(const std::string& cpuinfo = "/proc/cpuinfo");

}  // namespace benchrun::vm
