// workload.cpp: init's side of starting the workload: the sandbox's child (cpp/src/sandbox/
// child.cpp) with the same plan, steps, channels and error wording, cloned by init, the only other
// process.
//
// clone3(2) without a stack behaves like fork(2): the child continues on a copy of this stack and
// runs sandbox::child_main() on the plan prepared here. With CLONE_INTO_CGROUP (Linux >= 5.7) no
// process of the workload ever exists outside its cgroup, so its limits hold from the first
// instruction and its CPU time and peak memory are counted from there. As in the sandbox, the
// child sets up its root, sends it up and waits for "go": the wall clock starts there, so both
// backends time the same span (the last credential steps, exec and the workload). Setup errors
// come back over an O_CLOEXEC pipe whose EOF means execve succeeded.
#include "init/workload.hpp"

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "benchrun/common/error.hpp"
#include "benchrun/sandbox/spawn.hpp"
#include "init/cgroup.hpp"
#include "init/init_error.hpp"
#include "sandbox/caps.hpp"
#include "sandbox/child.hpp"
#include "sandbox/child_channel.hpp"
#include "sandbox/child_plan.hpp"
#include "sandbox/child_report.hpp"

namespace benchrun::guest {

namespace {

struct Pipe {
  UniqueFd read, write;
};

Pipe make_pipe(const char* what) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) throw_errno("pipe2", what);
  return {UniqueFd(p[0]), UniqueFd(p[1])};
}

// The child ended its setup without a report and without its root: killed (OOM, a signal).
std::string silent_exit(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, __WALL) < 0 && errno == EINTR) {
  }
  std::string how = "it exited during setup without reporting an error";
  if (WIFEXITED(status)) how = "it exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) how = "it was killed by signal " + std::to_string(WTERMSIG(status));
  return "sandbox setup failed: " + how;
}

// The run as the sandbox's spec; stdout/stderr fds are set on the plan once the pipes exist. The
// child shares the VM's network namespace, whose lo init brought up (network = true).
sandbox::SpawnSpec spawn_spec(const proto::RunConfig& c, const std::string& root) {
  // The host sends the program as the kernel reads it (docs/protocol.md).
  if (c.seccomp_bpf.size() % sizeof(sock_filter) != 0)
    throw ConfigError("run config: the seccomp program is not a whole number of instructions");
  std::vector<sock_filter> seccomp(c.seccomp_bpf.size() / sizeof(sock_filter));
  if (!seccomp.empty()) std::memcpy(seccomp.data(), c.seccomp_bpf.data(), c.seccomp_bpf.size());
  std::vector<sandbox::Rlimit> rlimits;
  for (const auto& r : c.rlimits) rlimits.push_back({static_cast<int>(r.resource), r.soft, r.hard});
  // /dev/shm (and init's /tmp) get half the workload's memory limit each; without one, the
  // kernel's default of half the guest's RAM, which bounds them.
  return {.merged = root,
          .tmpfs_bytes = c.memory_bytes / 2,
          .argv = c.argv,
          .env = c.env,
          .cwd = c.cwd,
          .uid = c.uid,
          .gid = c.gid,
          .groups = {c.groups.begin(), c.groups.end()},
          .hostname = c.hostname,
          .rlimits = std::move(rlimits),
          .seccomp = std::move(seccomp),
          .network = true};
}

void reap(pid_t pid) noexcept {
  int status;
  while (::waitpid(pid, &status, __WALL) < 0 && errno == EINTR) {
  }
}

}  // namespace

Workload start_workload(const proto::RunConfig& config, const std::string& root,
                        const WorkloadCgroup* cgroup) {
  const sandbox::SpawnSpec spec = spawn_spec(config, root);
  const std::vector<const perf::Counter*> counters = perf::resolve(config.counters);
  sandbox::PreparedChild prepared(spec, sandbox::read_cap_last_cap(), sandbox::RootKind::kPrepared);
  UniqueFd devnull(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!devnull) throw_errno("open", "/dev/null");
  Pipe out = make_pipe("workload stdout"), err = make_pipe("workload stderr");
  sandbox::FdPair status = sandbox::make_status_pipe();
  sandbox::FdPair sock = sandbox::make_socketpair();
  // The workload's user owns its ends of the pipes, so /dev/stdout and /dev/stderr (reopened
  // through /proc/self/fd) work for a non-root user too.
  for (int fd : {out.write.get(), err.write.get()})
    if (::fchown(fd, config.uid, config.gid) != 0) throw_errno("chown", "workload output pipe");
  sandbox::ChildPlan& plan = prepared.plan();
  plan.status_fd = status.child.get();
  plan.sock_fd = sock.child.get();
  plan.parent_status_fd = status.parent.get();
  plan.parent_sock_fd = sock.parent.get();
  plan.devnull_fd = devnull.get();
  plan.stdout_fd = out.write.get();
  plan.stderr_fd = err.write.get();

  clone_args args;
  std::memset(&args, 0, sizeof args);
  args.flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP |
               (cgroup ? CLONE_INTO_CGROUP : 0);
  args.exit_signal = SIGCHLD;
  if (cgroup) args.cgroup = static_cast<uint64_t>(cgroup->dir_fd());
  long pid = ::syscall(SYS_clone3, &args, sizeof args);
  if (pid < 0) throw_errno("clone3", "workload");
  if (pid == 0) sandbox::child_main(plan);

  status.child.reset();
  sock.child.reset();
  out.write.reset();
  err.write.reset();
  sandbox::StatusRecord rec{};
  bool failed;
  std::chrono::steady_clock::time_point start{};
  bool released = false;
  perf::CounterGroup group;
  try {
    // Its root (not needed here: init reads outputs through the mount) means the setup is done.
    if (sandbox::receive_fd(sock.parent.get())) {
      // Counting starts at its execve and follows its children (perf/counters.hpp).
      if (!counters.empty())
        group = perf::CounterGroup::open_on_exec(static_cast<pid_t>(pid), counters);
      start = sandbox::send_go(sock.parent.get());
      released = true;
    }
    failed = sandbox::read_status(status.parent.get(), rec);
  } catch (...) {
    ::kill(static_cast<pid_t>(pid), SIGKILL);
    reap(static_cast<pid_t>(pid));
    throw;
  }
  if (failed) {
    reap(static_cast<pid_t>(pid));
    const SandboxError e = sandbox::failure_error(rec, spec.argv.front(), prepared.search_path(),
                                                  prepared.exec_paths());
    throw InitError(e.stage(), rec.err, e.what(), proto::ErrorOrigin::kWorkload);
  }
  if (!released)
    throw InitError("setup", 0, silent_exit(static_cast<pid_t>(pid)),
                    proto::ErrorOrigin::kWorkload);
  Workload w;
  w.pid = static_cast<pid_t>(pid);
  w.stdout_fd = std::move(out.read);
  w.stderr_fd = std::move(err.read);
  w.released_at = start;
  w.counters = std::move(group);
  return w;
}

}  // namespace benchrun::guest
