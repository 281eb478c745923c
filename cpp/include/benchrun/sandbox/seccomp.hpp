// seccomp.hpp: the workload's seccomp policy, compiled to BPF before clone (nothing to allocate in
// the child: it only calls prctl with the prepared program).
#pragma once

#include <linux/filter.h>

#include <vector>

namespace benchrun::sandbox {

// Default-allow with EPERM for: reboot, kexec_load, kexec_file_load, mount, umount2, pivot_root,
// swapon, swapoff, init_module, finit_module, delete_module, bpf, keyctl, add_key, request_key,
// unshare, setns, acct, settimeofday, clock_settime, clock_adjtime, adjtimex, open_by_handle_at,
// name_to_handle_at, ptrace? (no: debuggers/profilers in benchmarks), iopl, ioperm, quotactl,
// lookup_dcookie, move_mount, fsopen, fsmount, fsconfig, fspick, open_tree, userfaultfd,
// syslog, vhangup, nfsservctl, personality (only non-default values); kills the process on a
// foreign architecture (x32/i386 ABI). perf_event_open stays allowed. Built with libseccomp.
std::vector<sock_filter> build_seccomp_program();

// The syscall names the policy denies (for docs and tests).
std::vector<const char*> denied_syscalls();

}  // namespace benchrun::sandbox
