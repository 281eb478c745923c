// qmp.cpp: QMP over a Unix socket (docs: qemu/docs/interop/qmp-spec). Replies are one JSON object
// per line; asynchronous {"event": ...} lines can arrive between them and are skipped.
#include "benchrun/vm/qmp.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <thread>

#include "benchrun/common/clock.hpp"
#include "benchrun/common/eintr.hpp"
#include "benchrun/common/error.hpp"

namespace benchrun::vm {

namespace {

constexpr size_t kMaxLine = 1 << 20;

}  // namespace

QmpClient QmpClient::connect(const std::string& path, Deadline deadline) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) throw ConfigError("QMP socket path too long: " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  for (;;) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) throw_errno("socket", "QMP");
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0)
      return over(std::move(fd), deadline);
    if (errno != ENOENT && errno != ECONNREFUSED) throw_errno("connect", path);
    if (Clock::now() >= deadline)
      throw DeadlineExceeded("QMP '" + path + "': QEMU did not open its control socket in time");
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

QmpClient QmpClient::over(UniqueFd fd, Deadline deadline) {
  QmpClient c(std::move(fd));
  auto greeting = nlohmann::json::parse(c.read_line(deadline), nullptr, false);
  if (!greeting.is_object() || !greeting.contains("QMP")) throw VmError("QMP: unexpected greeting");
  c.execute("qmp_capabilities", deadline);
  return c;
}

std::string QmpClient::read_line(Deadline deadline) {
  for (;;) {
    size_t nl = buf_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buf_.substr(0, nl);
      buf_.erase(0, nl + 1);
      return line;
    }
    if (buf_.size() > kMaxLine) throw VmError("QMP: reply line longer than 1 MiB");
    pollfd p{fd_.get(), POLLIN, 0};
    int n = retry_eintr([&] { return ::poll(&p, 1, poll_timeout_ms(deadline)); });
    if (n < 0) throw_errno("poll", "QMP");
    if (n == 0) throw DeadlineExceeded("QMP: no reply from QEMU in time");
    char chunk[4096];
    ssize_t r = retry_eintr([&] { return ::read(fd_.get(), chunk, sizeof chunk); });
    if (r < 0) throw_errno("read", "QMP");
    if (r == 0) throw VmError("QMP: QEMU closed the control socket");
    buf_.append(chunk, static_cast<size_t>(r));
  }
}

std::string QmpClient::reply(Deadline deadline) {
  for (;;) {
    auto doc = nlohmann::json::parse(read_line(deadline), nullptr, false);
    if (!doc.is_object()) throw VmError("QMP: reply is not a JSON object");
    if (doc.contains("event")) continue;
    if (doc.contains("error")) {
      const auto& e = doc["error"];
      std::string desc = e.is_object() && e.contains("desc") && e["desc"].is_string()
                             ? e["desc"].get<std::string>()
                             : e.dump();
      throw VmError("QMP: " + desc);
    }
    if (doc.contains("return")) return doc["return"].dump();
    throw VmError("QMP: reply has neither return nor error");
  }
}

std::string QmpClient::execute(const std::string& command, Deadline deadline) {
  std::string msg = nlohmann::json{{"execute", command}}.dump() + "\n";
  size_t off = 0;
  while (off < msg.size()) {
    ssize_t w = retry_eintr(
        [&] { return ::send(fd_.get(), msg.data() + off, msg.size() - off, MSG_NOSIGNAL); });
    if (w < 0) throw_errno("send", "QMP " + command);
    off += static_cast<size_t>(w);
  }
  return reply(deadline);
}

std::string QmpClient::status(Deadline deadline) {
  auto doc = nlohmann::json::parse(execute("query-status", deadline), nullptr, false);
  if (!doc.is_object() || !doc.contains("status") || !doc["status"].is_string())
    throw VmError("QMP query-status: unexpected reply");
  return doc["status"].get<std::string>();
}

void QmpClient::quit(Deadline deadline) noexcept {
  try {
    execute("quit", deadline);
  } catch (const Error&) {
    // QEMU may exit before its reply reaches us; the caller waits for the process either way.
  } catch (const std::exception&) {
  }
}

}  // namespace benchrun::vm
