// spawn.hpp: start the workload in fresh namespaces inside its root filesystem.
//
// Everything the child needs is prepared here, in the parent, as plain C strings and numbers; the
// code between clone and exec allocates nothing, throws nothing, logs nothing: each step returns an
// errno and on failure writes {stage, errno} to a CLOEXEC pipe and _exits (STYLE.md rule 6).
#pragma once

#include <linux/filter.h>
#include <sys/resource.h>
#include <sys/types.h>

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "benchrun/common/unique_fd.hpp"
#include "benchrun/sandbox/idmap.hpp"

namespace benchrun::sandbox {

struct Rlimit {
  int resource;
  rlim_t soft, hard;
};

struct SpawnSpec {
  // Root filesystem: overlay of lowerdir (the cached, read-only unpacked image) with
  // upperdir/workdir (per run, on the same filesystem as each other), mounted at merged (an empty
  // dir) inside the child's mount namespace.
  std::string lowerdir, upperdir, workdir, merged;
  // When set, lowerdir, upperdir and workdir are relative to this directory, which the child
  // enters before it mounts the overlay: the overlay's options, which /proc/self/mountinfo shows
  // inside the run, then name no host path.
  std::string layer_dir;
  // A detached mount (fsmount, e.g. host::ScratchFs) that the child attaches at
  // layer_dir/upper_mount in its own mount namespace before the overlay: the size-bounded
  // filesystem of upperdir and workdir. -1: none.
  int upper_mount_fd = -1;
  std::string upper_mount;
  uint64_t tmpfs_bytes = 0;       // size= of /tmp and /dev/shm, each; 0: the kernel's (half of RAM)
  std::vector<std::string> argv;  // argv[0] resolved by the child against PATH in env (execvpe)
  std::vector<std::string> env;
  std::string cwd = "/";  // inside the root; created if missing (as Docker does)
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
  std::string hostname = "benchrun";
  std::vector<Rlimit> rlimits;
  std::vector<sock_filter> seccomp;  // empty = none
  int cgroup_fd = -1;                // v2: clone3(CLONE_INTO_CGROUP); -1: parent adds the pid (v1)
  // The child's stdio: stdin is /dev/null; stdout/stderr are these (write ends of pipes).
  int stdout_fd = -1, stderr_fd = -1;
  bool network = false;  // false: a new network namespace with only loopback up
  // Also a new user namespace in which the caller's euid/egid are mapped to 0 (and nothing else):
  // how an unprivileged caller gets the mounts above. The workload must then run as 0:0 (the only
  // mapped ids; SandboxError otherwise), and supplementary groups cannot be set (setgroups is
  // denied, as unprivileged gid maps require): the caller's own stay, unmapped. The overlay is
  // mounted with "userxattr" (Linux >= 5.11).
  bool user_namespace = false;
  // With user_namespace, for a root caller: map ids 0..count-1 to this host range instead of the
  // caller only, so the image's users (uid, gid, groups < count) exist inside and none is a host
  // id of its own. Needs layer_dir, with merged in it: the image tree idmapped_lower is then
  // presented through an idmapped mount (on-disk id n appears as host id range.uid + n, i.e. as n
  // inside) that the child attaches at layer_dir/lowerdir (an empty directory) in its mount
  // namespace. layer_dir, upperdir and workdir must belong to range.uid/range.gid. The child
  // enters layer_dir while it is still host root, so the directories above it need not be
  // searchable by the range.
  IdRange id_range;
  std::string idmapped_lower;
  // Instruction counting (run/instructions.hpp): a read-only tmpfs at kToolRoot
  // ("/.benchrun-tools", hiding whatever the image has there) holding tool_dir (a host directory,
  // e.g. Valgrind's) bound read-only at "valgrind", tool_launcher (a host file) bound read-only at
  // "launch", and a private tmpfs at "out" mounted with tool_out_options (owner, mode, size) for
  // the tool's output. Host paths, bound by the child before pivot_root: they must be searchable by
  // the run's root (the id range's uid). Empty tool_dir: none of it.
  std::string tool_dir, tool_launcher, tool_out_options;
  // --init (run/pid1.hpp): a host file (benchrun-pid1) bound read-only at kPid1Path
  // ("/.benchrun-pid1") before pivot_root; argv then starts with that path. Empty: none.
  std::string pid1;
  // Secrets (docs/security.md "Secrets"): (name, content) pairs the child writes, after
  // pivot_root, into a fresh tmpfs at kSecretRoot as files of mode 0400 owned by uid:gid; the
  // tmpfs then goes read-only. The bytes reach the child in its copy of the parent's memory only:
  // never a file on the host. Names are checked by run::validate (no '/', not '.' or '..').
  std::vector<std::pair<std::string, std::string>> secrets;
};

// Where the child mounts the secrets of SpawnSpec::secrets, inside the run's root.
inline constexpr const char* kSecretRoot = "/run/secrets";

// Where the child mounts the tools of SpawnSpec::tool_dir, inside the run's root.
inline constexpr const char* kToolRoot = "/.benchrun-tools";

// A started sandboxed child. The child sets up its root (mounts, pivot_root, hostname, lo) and then
// waits, before rlimits, credentials and exec, until release() — the parent uses that window to
// put it into a v1 cgroup. Destruction kills (SIGKILL via pidfd) and reaps it if still running.
// root_fd() is an O_PATH fd of the child's root (the overlay), received over a socket: it keeps the
// overlay readable after the child's mount namespace is gone (output collection), and frees it when
// closed.
class SandboxedChild {
 public:
  SandboxedChild(SandboxedChild&&) noexcept;
  SandboxedChild& operator=(SandboxedChild&&) = delete;
  ~SandboxedChild();

  pid_t pid() const noexcept { return pid_; }
  int pidfd() const noexcept { return pidfd_.get(); }
  // Lets the child continue to exec. Throws SandboxError{stage} if setup failed in the child.
  void release();
  // When release() sent the "go" byte: the start of the workload's wall time. The child's last
  // steps (rlimits, credentials, seccomp) and execve count as part of the run, as fork+exec does
  // for hyperfine; taking the time after exec was confirmed would start the clock late.
  std::chrono::steady_clock::time_point released_at() const noexcept { return released_at_; }
  // Waits for exit (blocking); returns the raw wait status (later calls return it again).
  int wait();
  // Resource usage of the child and the descendants reaped in its pid namespace (wait4's rusage),
  // valid after wait() returned: CPU times and ru_maxrss, for runs without a cgroup.
  const struct rusage& rusage() const noexcept { return rusage_; }
  // The overlay root, valid after release() returned.
  int root_fd() const noexcept { return root_fd_.get(); }
  UniqueFd take_root_fd() noexcept { return std::move(root_fd_); }

 private:
  friend SandboxedChild spawn_sandboxed(const SpawnSpec& spec);
  SandboxedChild() = default;
  pid_t pid_ = -1;
  UniqueFd pidfd_;
  UniqueFd status_fd_;  // child writes {stage, errno, detail} on failure; EOF at exec = success
  UniqueFd sock_fd_;    // SOCK_SEQPACKET: receives root_fd, then carries the parent's "go" byte
  UniqueFd root_fd_;
  std::chrono::steady_clock::time_point released_at_{};
  bool reaped_ = false;
  int status_ = 0;  // the wait status, once reaped
  struct rusage rusage_ {};
  // For exec error messages: argv[0], the PATH searched, and the candidates tried.
  std::string argv0_, search_path_;
  std::vector<std::string> exec_paths_;
};

// Clones the child with CLONE_NEWNS|NEWPID|NEWNET|NEWIPC|NEWUTS|NEWCGROUP (+ CLONE_INTO_CGROUP when
// cgroup_fd >= 0, + CLONE_NEWUSER when user_namespace; then the child waits until this function
// has written its setgroups "deny", uid_map and gid_map before it mounts anything). The child:
// makes / private, mounts the overlay, sends an fd of it, mounts /proc, a minimal /dev (null zero
// full random urandom tty, pts, shm, ptmx, fd/stdin/stdout/stderr links), /tmp tmpfs, /sys
// read-only, masks runc's /proc paths and makes runc's read-only ones read-only, pivot_root,
// sets hostname, brings lo up, waits for release, sets rlimits, groups/gid/uid, drops every
// capability (bounding, inheritable, ambient, effective, permitted), sets no_new_privs,
// chdir(cwd), installs the seccomp program, execvpe (argv[0] searched on the PATH in env, not the
// caller's). Throws ConfigError for an invalid spec, SandboxError{stage="user namespace"} for a
// non-root uid/gid with user_namespace or a failed id map write (the caller must be dumpable: a
// process that changed its uid without exec'ing since is not), SandboxError{stage="clone"} if
// clone3 fails; failures inside the child surface from release() as SandboxError{stage}.
SandboxedChild spawn_sandboxed(const SpawnSpec& spec);

}  // namespace benchrun::sandbox
