// workload_child.hpp: the workload's child process from clone3 to execve: its plan (prepared by
// init), its stages, and its entry point.
//
// Everything here is read between clone and exec (STYLE.md rule 6): plain pointers and numbers
// only, so the child allocates nothing, throws nothing and logs nothing.
#pragma once

#include <linux/filter.h>
#include <sys/resource.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>

namespace benchrun::guest {

// The child's steps, in order; a failure is reported as one of these. The names match the sandbox
// backend's stages where the step is the same (cpp/src/sandbox/child.cpp).
enum class ChildStage : int32_t {
  kSetsid,
  kStdio,
  kCloseFds,
  kMountPrivate,
  kSwitchRoot,
  kMountProc,
  kMaskPaths,
  kReadonlyPaths,
  kWorkdir,
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
  kCount,
};

// "setsid", "switch root", "exec", ...; "unknown" outside the enum.
const char* child_stage_name(int32_t stage) noexcept;

// Written to the status pipe before _exit(127). detail: the index of the exec candidate, rlimit or
// path that failed, or -1.
struct ChildStatus {
  int32_t stage;
  int32_t err;
  int32_t detail;
};

struct ChildRlimit {
  int resource;
  rlim_t soft, hard;
};

struct ChildPlan {
  int status_fd = -1;  // write end, CLOEXEC: EOF at the parent means execve succeeded
  int devnull_fd = -1, stdout_fd = -1, stderr_fd = -1;
  const char* root = nullptr;  // init's path of the workload's root (its mounts are in place)

  const ChildRlimit* rlimits = nullptr;
  size_t rlimit_count = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  const gid_t* groups = nullptr;
  size_t group_count = 0;
  int cap_last = 0;
  const sock_fprog* seccomp = nullptr;  // nullptr: no filter

  const char* cwd = nullptr;
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  const char* const* exec_paths = nullptr;  // argv[0] as found on PATH, tried in order
  size_t exec_path_count = 0;
};

// Runs the steps and execs; on failure writes a ChildStatus and _exits(127). Never returns.
[[noreturn]] void child_main(const ChildPlan& plan) noexcept;

// Names for messages (detail of kMaskPaths / kReadonlyPaths); nullptr out of range.
const char* child_masked_path(int index) noexcept;
const char* child_readonly_path(int index) noexcept;

}  // namespace benchrun::guest
