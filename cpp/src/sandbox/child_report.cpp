// child_report.cpp: reading and wording the child's status record (parent side).
#include "sandbox/child_report.hpp"

#include <errno.h>
#include <unistd.h>

#include <cstring>

#include "sandbox/mounts.hpp"

namespace benchrun::sandbox {

namespace {

// What the failed step acted on, from the record's detail index.
std::string detail_object(const StatusRecord& rec) {
  const char* name = nullptr;
  switch (static_cast<Stage>(rec.stage)) {
    case Stage::kDevNodes:
      name = dev_node_path(rec.detail);
      break;
    case Stage::kDevLinks:
      name = dev_link_path(rec.detail);
      break;
    case Stage::kMaskPaths:
      name = masked_path(rec.detail);
      break;
    case Stage::kReadonlyPaths:
      name = readonly_path(rec.detail);
      break;
    case Stage::kRlimits:
      return rec.detail >= 0 ? "rlimit #" + std::to_string(rec.detail) : "";
    case Stage::kToolMounts:
      name = tool_mount_step(rec.detail);
      break;
    case Stage::kSecrets:
      name = secret_mount_step(rec.detail);
      break;
    default:
      break;
  }
  return name ? name : "";
}

std::string hint(const StatusRecord& rec) {
  auto stage = static_cast<Stage>(rec.stage);
  if (stage == Stage::kMountOverlay && rec.err == EINVAL)
    return " (hint: upperdir and workdir must be on the same filesystem and outside lowerdir; "
           "the kernel log names the problem)";
  if (stage == Stage::kMountOverlay && rec.err == ENOENT)
    return " (hint: lowerdir, upperdir, workdir and merged must exist)";
  if (stage == Stage::kMountProc && rec.err == EPERM)
    return " (hint: the host's /proc has paths mounted over, as inside another container)";
  if (stage == Stage::kRlimits && rec.err == EPERM)
    return " (hint: raising a hard limit needs CAP_SYS_RESOURCE)";
  if (rec.err == EPERM && stage <= Stage::kPivotRoot)
    return " (hint: run as root: the sandbox needs CAP_SYS_ADMIN)";
  return "";
}

}  // namespace

// True and rec filled if the child reported a failure; false on EOF (it exec'd, or died silently).
bool read_status(int fd, StatusRecord& rec) {
  auto* out = reinterpret_cast<char*>(&rec);
  size_t got = 0;
  while (got < sizeof rec) {
    ssize_t n = ::read(fd, out + got, sizeof rec - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno("read", "sandbox status pipe");
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  if (got == 0) return false;
  if (got != sizeof rec) throw SandboxError("sandbox setup: truncated status record", "setup");
  return true;
}

SandboxError failure_error(const StatusRecord& rec, const std::string& argv0,
                           const std::string& search_path,
                           const std::vector<std::string>& exec_paths) {
  std::string stage = stage_name(rec.stage);
  std::string cause = std::strerror(rec.err);
  if (static_cast<Stage>(rec.stage) == Stage::kExec) {
    std::string target = argv0;
    if (rec.err != ENOENT && rec.detail >= 0 && static_cast<size_t>(rec.detail) < exec_paths.size())
      target = exec_paths[static_cast<size_t>(rec.detail)];
    std::string msg = "exec '" + target + "': " + cause;
    if (rec.err == ENOENT) {
      msg += " in the image";
      if (argv0.find('/') == std::string::npos) msg += " (PATH=" + search_path + ")";
    }
    return SandboxError(msg, stage);
  }
  std::string object = detail_object(rec);
  return SandboxError("sandbox setup failed at '" + stage + "'" +
                          (object.empty() ? "" : " ('" + object + "')") + ": " + cause + hint(rec),
                      stage);
}

}  // namespace benchrun::sandbox
