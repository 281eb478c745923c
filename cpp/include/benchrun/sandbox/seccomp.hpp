// seccomp.hpp: the workload's seccomp policy, compiled to BPF before clone (nothing to allocate in
// the child: it only calls prctl with the prepared program).
#pragma once

#include <linux/filter.h>

#include <cstdint>
#include <string>
#include <vector>

namespace benchrun::sandbox {

// One rule of the policy: syscall `name` fails with errno_ret when every argument comparison holds
// ((arg[index] & mask) == value); no comparisons: always. Rules for one syscall are OR-ed. The
// same list is compiled to BPF here and written as runtime-spec seccomp for OCI runtimes
// (run/oci_bundle.cpp), so the policy exists once.
struct SeccompArg {
  unsigned index;
  uint64_t mask;
  uint64_t value;
};
struct SeccompRule {
  std::string name;
  int errno_ret;
  std::vector<SeccompArg> args;
};
std::vector<SeccompRule> seccomp_rules();

// Default-allow with EPERM for: reboot, kexec_load, kexec_file_load, mount, umount2, mount_setattr,
// pivot_root, swapon, swapoff, init_module, finit_module, delete_module, bpf, keyctl, add_key,
// request_key, unshare, setns, acct, settimeofday, clock_settime, clock_adjtime, adjtimex,
// open_by_handle_at, name_to_handle_at, iopl, ioperm, quotactl, quotactl_fd, lookup_dcookie,
// move_mount, fsopen, fsmount, fsconfig, fspick, open_tree, userfaultfd, syslog, vhangup,
// nfsservctl; clone with any CLONE_NEW* flag; personality other than PER_LINUX/PER_LINUX32 with
// UNAME26/ADDR_NO_RANDOMIZE or the 0xffffffff query. clone3 fails with ENOSYS (its flags are out of
// BPF's reach; glibc falls back to clone). io_uring_setup/enter/register fail with ENOSYS (io_uring
// runs operations out of seccomp's view; libraries fall back). socket and socketpair fail with
// EAFNOSUPPORT unless the family is AF_UNIX, AF_INET, AF_INET6, or AF_NETLINK with protocol
// NETLINK_ROUTE (AF_VSOCK, AF_ALG, AF_PACKET, AF_KEY, other netlink protocols, ... are denied).
// Kills the process on a foreign architecture (x32/i386
// ABI). ptrace and perf_event_open stay allowed (debuggers, profilers). Built with libseccomp;
// names this libseccomp or architecture lacks are skipped.
std::vector<sock_filter> build_seccomp_program();

// The syscall names the policy denies (for docs and tests); personality and clone only for some
// arguments, clone3 with ENOSYS.
std::vector<const char*> denied_syscalls();

}  // namespace benchrun::sandbox
