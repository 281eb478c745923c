// config_test.cpp: QEMU command-line construction and the accelerator choice.
#include "benchrun/vm/config.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "benchrun/common/error.hpp"
#include "benchrun/common/fs.hpp"

namespace benchrun::vm {
namespace {

VmConfig base() {
  VmConfig c;
  c.kernel = "/k/vmlinuz";
  c.initramfs = "/k/initrd.cpio";
  c.root_disk = "/cache/ext4/abc.ext4";
  c.serial_log = "/run/x/console.log";
  c.channel_fd = 3;
  c.qmp_fd = 4;
  return c;
}

// The value following flag's n-th occurrence.
std::string arg_after(const std::vector<std::string>& a, const std::string& flag, int n = 0) {
  for (size_t i = 0; i + 1 < a.size(); ++i)
    if (a[i] == flag && n-- == 0) return a[i + 1];
  return "<missing>";
}

bool has(const std::vector<std::string>& a, const std::string& s) {
  return std::find(a.begin(), a.end(), s) != a.end();
}

TEST(VmConfig, MicrovmCommandLine) {
  VmConfig c = base();
  c.vcpus = 2;
  c.memory_mib = 768;
  c.tsc_khz = 2096007;
  auto a = qemu_argv(c);
  EXPECT_EQ(a[0], "qemu-system-x86_64");
  EXPECT_EQ(arg_after(a, "-M"), "microvm,accel=tcg,x-option-roms=off");
  EXPECT_EQ(arg_after(a, "-cpu"), "max");
  EXPECT_EQ(arg_after(a, "-smp"), "2");
  EXPECT_EQ(arg_after(a, "-m"), "768M");
  EXPECT_TRUE(has(a, "-nodefaults") && has(a, "-no-reboot") && has(a, "-no-user-config"));
  EXPECT_EQ(arg_after(a, "-kernel"), "/k/vmlinuz");
  EXPECT_EQ(arg_after(a, "-initrd"), "/k/initrd.cpio");
  // The cached image is never written: snapshot mode puts writes in QEMU's temporary overlay.
  EXPECT_EQ(arg_after(a, "-drive"),
            "id=root,file=/cache/ext4/abc.ext4,format=raw,if=none,snapshot=on,cache=unsafe");
  EXPECT_EQ(arg_after(a, "-device"), "virtio-blk-device,drive=root");
  EXPECT_EQ(arg_after(a, "-chardev"), "file,id=console,path=/run/x/console.log");
  EXPECT_EQ(arg_after(a, "-chardev", 1), "socket,id=qmp,fd=4");
  EXPECT_EQ(arg_after(a, "-chardev", 2), "socket,id=channel,fd=3");
  EXPECT_TRUE(has(a, "virtserialport,chardev=channel,name=benchrun.0"));
  EXPECT_EQ(arg_after(a, "-net"), "none");  // no NIC unless networking is asked for
  // QEMU filters itself; it keeps root only when nobody asked it to drop it.
  EXPECT_EQ(arg_after(a, "-sandbox"),
            "on,obsolete=deny,spawn=deny,resourcecontrol=deny,elevateprivileges=deny");
  EXPECT_FALSE(has(a, "-runas"));
  const std::string cmdline = arg_after(a, "-append");
  EXPECT_NE(cmdline.find("console=ttyS0"), std::string::npos);
  EXPECT_NE(cmdline.find("panic=-1"), std::string::npos);
  EXPECT_NE(cmdline.find("tsc_early_khz=2096007"), std::string::npos);
  EXPECT_EQ(cmdline.find("benchrun.transport"), std::string::npos);  // virtio-serial: default
}

TEST(VmConfig, KvmVsockAndNetwork) {
  VmConfig c = base();
  c.accel = Accel::kKvm;
  c.tsc_khz = 123;
  c.transport = Transport::kVsock;
  c.vsock_cid = 7;
  c.network = true;
  auto a = qemu_argv(c);
  EXPECT_EQ(arg_after(a, "-M"), "microvm,accel=kvm,x-option-roms=off");
  EXPECT_EQ(arg_after(a, "-cpu"), "host");
  EXPECT_TRUE(has(a, "vhost-vsock-device,guest-cid=7"));
  EXPECT_FALSE(has(a, "virtserialport,chardev=channel,name=benchrun.0"));
  EXPECT_TRUE(has(a, "virtio-net-device,netdev=net0"));
  c.run_as = "nobody";
  a = qemu_argv(c);
  EXPECT_EQ(arg_after(a, "-runas"), "nobody");
  EXPECT_EQ(arg_after(a, "-sandbox"), "on,obsolete=deny,spawn=deny,resourcecontrol=deny");
  c.confine = false;
  a = qemu_argv(c);
  EXPECT_FALSE(has(a, "-sandbox"));
  const std::string cmdline = arg_after(a, "-append");
  EXPECT_EQ(cmdline.find("tsc_early_khz"), std::string::npos);  // KVM has kvm-clock
  EXPECT_NE(cmdline.find("benchrun.transport=vsock benchrun.port=1024"), std::string::npos);
}

TEST(VmConfig, PathsWithSocketsWhenNoFds) {
  VmConfig c = base();
  c.channel_fd = -1;
  c.qmp_fd = -1;
  EXPECT_THROW(qemu_argv(c), ConfigError);  // neither fds nor paths
  c.channel_socket = "/run/x/ch.sock";
  c.qmp_socket = "/run/x/qmp.sock";
  auto a = qemu_argv(c);
  EXPECT_EQ(arg_after(a, "-qmp"), "unix:/run/x/qmp.sock,server=on,wait=off");
  EXPECT_TRUE(has(a, "socket,id=channel,path=/run/x/ch.sock"));
}

TEST(VmConfig, RefusesIncompleteOrUnsafeConfigs) {
  VmConfig c = base();
  c.kernel.clear();
  EXPECT_THROW(qemu_argv(c), ConfigError);
  c = base();
  c.root_disk = "/x,file=/etc/shadow";  // QEMU option injection through a comma
  EXPECT_THROW(qemu_argv(c), ConfigError);
  c = base();
  c.vcpus = 0;
  EXPECT_THROW(qemu_argv(c), ConfigError);
  c = base();
  c.memory_mib = 16;
  EXPECT_THROW(qemu_argv(c), ConfigError);
  c = base();
  c.accel = Accel::kAuto;
  EXPECT_THROW(qemu_argv(c), ConfigError);
}

class AccelTest : public ::testing::Test {
 protected:
  TempDir dir_{std::filesystem::temp_directory_path(), "accel-"};
  std::string cpuinfo(const std::string& flags) {
    std::string p = (dir_.path() / "cpuinfo").string();
    std::ofstream(p) << "processor\t: 0\nvendor_id\t: X\nflags\t\t: " << flags << "\n\n";
    return p;
  }
  std::string device(bool openable) {
    std::string p = (dir_.path() / "kvm").string();
    if (openable) std::ofstream(p) << "";
    return p;
  }
};

TEST_F(AccelTest, AutoPicksKvmOnlyWithHardwareVirtualisationAndADevice) {
  EXPECT_EQ(choose_accel(Accel::kAuto, cpuinfo("fpu vmx sse"), device(true)).accel, Accel::kKvm);
  EXPECT_EQ(choose_accel(Accel::kAuto, cpuinfo("fpu svm"), device(true)).accel, Accel::kKvm);
  AccelChoice nested = choose_accel(Accel::kAuto, cpuinfo("fpu sse hypervisor"), device(true));
  EXPECT_EQ(nested.accel, Accel::kTcg);  // e.g. a paravirtual KVM without vmx/svm
  EXPECT_NE(nested.notice.find("no hardware virtualisation"), std::string::npos);
  std::filesystem::remove(dir_.path() / "kvm");
  AccelChoice nodev = choose_accel(Accel::kAuto, cpuinfo("vmx"), device(false));
  EXPECT_EQ(nodev.accel, Accel::kTcg);
  EXPECT_NE(nodev.notice.find("not usable"), std::string::npos);
}

TEST_F(AccelTest, ForcedChoices) {
  EXPECT_EQ(choose_accel(Accel::kTcg, cpuinfo("vmx"), device(true)).accel, Accel::kTcg);
  EXPECT_TRUE(choose_accel(Accel::kTcg, cpuinfo("vmx"), device(true)).notice.empty());
  std::filesystem::remove(dir_.path() / "kvm");
  EXPECT_THROW(choose_accel(Accel::kKvm, cpuinfo("vmx"), device(false)), VmError);
  AccelChoice forced = choose_accel(Accel::kKvm, cpuinfo("sse"), device(true));
  EXPECT_EQ(forced.accel, Accel::kKvm);
  EXPECT_NE(forced.notice.find("slow"), std::string::npos);
}

TEST_F(AccelTest, HostTscRateIsPlausible) {
  EXPECT_EQ(host_tsc_khz(cpuinfo("fpu sse")), 0u);  // no constant_tsc: not measured
  const uint64_t khz = host_tsc_khz(cpuinfo("fpu constant_tsc sse"));
  EXPECT_GT(khz, 100'000u);     // > 100 MHz
  EXPECT_LT(khz, 10'000'000u);  // < 10 GHz
}

}  // namespace
}  // namespace benchrun::vm
