// subprocess.hpp: run a short-lived helper program with bounded I/O and a deadline.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

namespace benchrun {

struct SubprocessOptions {
  std::string stdin_data;                // written to the child's stdin, which is then closed
  std::chrono::milliseconds timeout{0};  // 0: no deadline; on expiry the child gets SIGKILL
  size_t max_output = size_t{1} << 20;   // per stream; the rest is read and discarded
};

struct SubprocessResult {
  int exit_code = -1;  // exit status, or -1 when the child was killed by a signal
  int signal = 0;      // the terminating signal, 0 when the child exited
  std::string stdout_data;
  std::string stderr_data;
  bool stdout_truncated = false;
  bool stderr_truncated = false;
  bool timed_out = false;  // the deadline passed and the child was killed
  bool ok() const noexcept { return exit_code == 0 && !timed_out; }
};

// Runs argv (argv[0] containing '/' is a path, otherwise it is looked up in PATH) with stdin fed
// from options.stdin_data and stdout/stderr captured. Returns once the child has exited and been
// reaped; output written after that by leftover grandchildren is not waited for. Only the three
// standard fds are inherited; signal dispositions and the signal mask are reset in the child.
// Throws SysError(ENOENT/EACCES, "exec", argv[0]) when the program cannot be started, ConfigError
// for an empty argv.
SubprocessResult run_subprocess(const std::vector<std::string>& argv,
                                const SubprocessOptions& options = {});

}  // namespace benchrun
