// qmp.hpp: a minimal QEMU Machine Protocol client (JSON lines over QEMU's Unix socket) for status
// and shutdown.
#pragma once

#include <chrono>
#include <string>

#include "benchrun/common/unique_fd.hpp"

namespace benchrun::vm {

class QmpClient {
 public:
  using Deadline = std::chrono::steady_clock::time_point;
  // Connects (retrying while QEMU has not created the socket yet), reads the greeting and
  // negotiates capabilities. VmError / DeadlineExceeded.
  static QmpClient connect(const std::string& socket_path, Deadline deadline);
  // Over an already connected socket (e.g. a socketpair QEMU inherited).
  static QmpClient over(UniqueFd fd, Deadline deadline);

  // Runs a command without arguments; returns the "return" member as JSON text. VmError with
  // QEMU's error description.
  std::string execute(const std::string& command, Deadline deadline);
  // "running", "paused", "shutdown", ... (query-status).
  std::string status(Deadline deadline);
  // Asks QEMU to exit now. The reply may be lost when QEMU exits first: not an error.
  void quit(Deadline deadline) noexcept;

 private:
  explicit QmpClient(UniqueFd fd) : fd_(std::move(fd)) {}
  std::string read_line(Deadline deadline);  // one JSON document (QMP ends each with \r\n)
  std::string reply(Deadline deadline);      // skips asynchronous events
  UniqueFd fd_;
  std::string buf_;
};

}  // namespace benchrun::vm
