// child.hpp: the sandboxed child's plan (prepared by the parent), its stages, and its entry point.
// The one workload child of both backends: the sandbox's spawn and the microVM's init
// (guest/init/workload.cpp) run these steps, lists and credential drops.
//
// Everything here is read by code that runs between clone and exec (STYLE.md rule 6): plain
// pointers and numbers only, so that the child allocates nothing.
#pragma once

#include <linux/filter.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>

#include "benchrun/sandbox/spawn.hpp"

namespace benchrun::sandbox {

// The child's steps, in the order it takes them; a failure is reported as one of these.
enum class Stage : int32_t {
  kSetsid,
  kStdio,
  kCloseFds,
  kMountPrivate,
  kLayers,
  kMountOverlay,
  kEnterRoot,
  kSendRoot,
  kMountProc,
  kMountDev,
  kDevNodes,
  kMountDevPts,
  kMountDevShm,
  kDevLinks,
  kMountTmp,
  kMountSys,
  kMaskPaths,
  kReadonlyPaths,
  kPivotRoot,
  kSwitchRoot,
  kWorkdir,
  kHostname,
  kLoopback,
  kRlimits,
  kCapBounding,
  kSetgroups,
  kSetresgid,
  kSetresuid,
  kCaps,
  kNoNewPrivs,
  kChdir,
  kSeccomp,
  kExec,
  kIdmapLower,  // appended: the numbers travel from the guest
  kToolMounts,
  kPid1Mount,
  kSecrets,
  kCount,
};

// "mount overlay", "pivot_root", "exec", ...; "unknown" outside the enum.
const char* stage_name(int32_t stage) noexcept;

// Where the child's root comes from, and how it becomes "/".
//  kOverlay (the sandbox): the child mounts overlayfs on root, gives it a fresh tmpfs /tmp, and
//    pivot_roots into it.
//  kPrepared (the microVM's init): root is mounted already, with the /tmp that init collects
//    outputs from after the run (so the child leaves /tmp alone); the child switches into it as
//    switch_root(8) does, because pivot_root(2) refuses to move an initramfs root (EINVAL).
// Both get the same /proc, /dev, /sys, masked and read-only paths.
enum class RootKind : uint8_t { kOverlay, kPrepared };

// What the child writes to the status pipe before _exit(127). detail indexes the stage's list
// (masked path, device node, rlimit, exec candidate), or is -1.
struct StatusRecord {
  int32_t stage;
  int32_t err;
  int32_t detail;
};

// One secret file: name (a plain file name) and its content.
struct ChildSecret {
  const char* name;
  const char* data;
  size_t size;
};

// Everything the child reads. The pointers refer to storage the parent keeps alive across the
// clone (PreparedChild); the child sees its own copy of the address space.
struct ChildPlan {
  // Ends the child uses: the socket (sends the root fd, receives "go") and the status pipe's write
  // end. The parent's ends are closed first thing in the child. sock_fd -1: no parent waits for
  // the root or holds the child back (the guest clones straight into the workload's cgroup).
  int sock_fd = -1, status_fd = -1;
  int parent_sock_fd = -1, parent_status_fd = -1;
  int devnull_fd = -1, stdout_fd = -1, stderr_fd = -1;  // stdout/stderr -1: /dev/null

  RootKind root_kind = RootKind::kOverlay;
  const char* root = nullptr;             // kOverlay: where the overlay is mounted
  const char* overlay_options = nullptr;  // kOverlay only
  const char* layer_dir = nullptr;        // kOverlay: entered before the overlay; nullptr: none
  int upper_mount_fd = -1;                // attached at upper_mount (relative to layer_dir)
  const char* upper_mount = nullptr;
  const char* tmpfs_options = nullptr;  // of /tmp and /dev/shm ("mode=1777[,size=N]")
  const char* hostname = nullptr;
  size_t hostname_len = 0;
  bool loopback_up = false;  // own network namespace: bring lo up
  // In a new user namespace: wait for the parent's "maps written" byte before anything else, give
  // /dev/pts no gid= (gid 5 is not mapped), and leave the supplementary groups alone (setgroups is
  // denied there).
  bool user_namespace = false;
  // user_namespace with a mapped id range (root runs): enter layer_dir while still host uid 0 (its
  // ancestors need not be searchable by the range), become root of the namespace, attach the
  // idmapped lower tree the parent sends with its byte at lower_attach there and mount the overlay
  // with relative paths (root is then relative too); groups are set and /dev/pts gets gid=5 as
  // without a user namespace.
  bool id_mapped = false;
  const char* lower_attach = nullptr;

  const Rlimit* rlimits = nullptr;
  size_t rlimit_count = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  const gid_t* groups = nullptr;
  size_t group_count = 0;
  int cap_last = 0;                     // /proc/sys/kernel/cap_last_cap, read by the parent
  const sock_fprog* seccomp = nullptr;  // nullptr: no filter

  // SpawnSpec::tool_dir/tool_launcher/tool_out_options; tool_dir nullptr: no tool mounts.
  const char* tool_dir = nullptr;
  const char* tool_launcher = nullptr;
  const char* tool_out_options = nullptr;
  // SpawnSpec::pid1; nullptr: none.
  const char* pid1 = nullptr;

  // SpawnSpec::secrets (count 0: no /run/secrets tmpfs); secret_options: the tmpfs's options.
  const ChildSecret* secrets = nullptr;
  size_t secret_count = 0;
  const char* secret_options = nullptr;

  const char* cwd = nullptr;
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  const char* const* exec_paths = nullptr;  // argv[0] as found on PATH, tried in order
  size_t exec_path_count = 0;
};

// Runs the child's steps and execs; on failure writes a StatusRecord and _exits. Never returns.
[[noreturn]] void child_main(const ChildPlan& plan) noexcept;

// Sets IFF_UP on "lo" in the calling thread's network namespace; 0 or an errno (child dialect).
// Also used by the OCI backends for the network namespace they hand to the runtime.
int bring_loopback_up() noexcept;

}  // namespace benchrun::sandbox
