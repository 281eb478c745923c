// vm_process.hpp: the QEMU process of one run (RAII: killed and reaped on destruction).
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "benchrun/common/unique_fd.hpp"

namespace benchrun::vm {

struct VmProcessOptions {
  std::vector<std::string>
      argv;              // argv[0]: a path, or a name looked up in /usr/local/bin:/usr/bin:/bin
  std::string tmpdir;    // QEMU's $TMPDIR: where its snapshot overlay is created
  std::string log_path;  // QEMU's own stdout/stderr
  // Called with the child's pid after fork and before it execs QEMU (e.g. joining the run's
  // cgroup, so every QEMU thread is accounted and confined from its first instruction).
  std::function<void(pid_t)> before_exec;
  // fds QEMU inherits, as 3, 4, ... in this order (the caller's copies stay the caller's).
  std::vector<int> pass_fds;
};

class VmProcess {
 public:
  using Deadline = std::chrono::steady_clock::time_point;

  // Starts QEMU. SysError(ENOENT, "exec", qemu) when it cannot be executed. The child dies with
  // the calling thread (PR_SET_PDEATHSIG), so a killed runner leaves no QEMU behind.
  static VmProcess spawn(const VmProcessOptions& options);

  VmProcess(VmProcess&& o) noexcept;
  VmProcess& operator=(VmProcess&&) = delete;
  VmProcess(const VmProcess&) = delete;
  ~VmProcess();

  pid_t pid() const noexcept { return pid_; }
  int pidfd() const noexcept { return pidfd_.get(); }
  bool exited() const noexcept { return reaped_; }
  int wait_status() const noexcept { return status_; }
  const rusage& usage() const noexcept { return usage_; }

  // Waits for QEMU to exit until deadline; true if it did (and it is reaped).
  bool wait_exit(Deadline deadline);
  // Ends QEMU: ask_quit (e.g. a QMP quit; may throw), up to grace for QEMU to exit, then SIGKILL;
  // reaps it.
  void stop(const std::function<void(Deadline)>& ask_quit,
            std::chrono::milliseconds grace) noexcept;
  // SIGKILL and reap.
  void kill() noexcept;

 private:
  VmProcess() = default;
  bool reap(int flags);
  pid_t pid_ = -1;
  UniqueFd pidfd_;
  bool reaped_ = true;
  int status_ = 0;
  rusage usage_{};
};

// "exited with status 1", "killed by signal 9" for a wait status.
std::string describe_status(int status);

}  // namespace benchrun::vm
