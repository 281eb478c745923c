// cgroup.cpp: the workload's cgroup v2 (Documentation/admin-guide/cgroup-v2.rst): the root may
// hold processes (init stays there) while its child "workload" has controllers enabled.
#include "init/cgroup.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <string_view>

#include "benchrun/common/error.hpp"
#include "init/init_error.hpp"

namespace benchrun::guest {

namespace {

constexpr const char* kName = "workload";

// Writes value to dirfd/name in one write(2), as cgroupfs requires. Returns 0 or an errno.
int write_at(int dirfd, const char* name, std::string_view value) noexcept {
  int fd = ::openat(dirfd, name, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  ssize_t n;
  do n = ::write(fd, value.data(), value.size());
  while (n < 0 && errno == EINTR);
  int err = n < 0 ? errno : 0;
  ::close(fd);
  return err;
}

// A limit's file is missing when the kernel lacks its controller (or it was disabled with
// cgroup_disable=): say so rather than leave a bare ENOENT.
void write_limit(int dirfd, const std::string& dir, const char* name, std::string_view value,
                 const char* controller) {
  int err = write_at(dirfd, name, value);
  if (err == 0) return;
  if (err != ENOENT) throw_errno(err, "write", dir + "/" + name);
  throw InitError("cgroup", err,
                  "write '" + dir + "/" + name + "': " + std::strerror(err) +
                      " (hint: the guest kernel has no " + controller +
                      " cgroup controller; check cgroup_disable= on its command line)");
}

// The whole (small) file, or "" if it cannot be read.
std::string read_at(int dirfd, const char* name) {
  int fd = ::openat(dirfd, name, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  UniqueFd owner(fd);
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || out.size() > (1 << 20)) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

uint64_t parse_u64(std::string_view s) {
  uint64_t v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

// The value of "key N" in a flat-keyed file (cpu.stat, memory.events); 0 if absent.
uint64_t keyed_value(const std::string& text, std::string_view key) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    if (line.size() > key.size() && line.substr(0, key.size()) == key && line[key.size()] == ' ')
      return parse_u64(line.substr(key.size() + 1));
    pos = end + 1;
  }
  return 0;
}

}  // namespace

WorkloadCgroup WorkloadCgroup::create(const std::string& mount_point, const CgroupLimits& limits) {
  if (::mount("cgroup2", mount_point.c_str(), "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC,
              nullptr) != 0 &&
      errno != EBUSY)
    throw_errno("mount cgroup2", mount_point);
  UniqueFd root(::open(mount_point.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root) throw_errno("open", mount_point);
  // One controller at a time: a kernel without one of them still gives us the others.
  for (const char* c : {"+memory", "+pids", "+cpu"})
    write_at(root.get(), "cgroup.subtree_control", c);
  if (::mkdirat(root.get(), kName, 0755) != 0 && errno != EEXIST)
    throw_errno("mkdir", mount_point + "/" + kName);
  const std::string path = mount_point + "/" + kName;
  UniqueFd dir(::openat(root.get(), kName, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) throw_errno("open", path);
  if (limits.memory_bytes) {
    write_limit(dir.get(), path, "memory.max", std::to_string(limits.memory_bytes), "memory");
    // No swap in the guest today; should the host ever add some, the limit still means RAM.
    int err = write_at(dir.get(), "memory.swap.max", "0");
    if (err != 0 && err != ENOENT) throw_errno(err, "write", path + "/memory.swap.max");
  }
  if (limits.pids_max)
    write_limit(dir.get(), path, "pids.max", std::to_string(limits.pids_max), "pids");
  return WorkloadCgroup(path, std::move(dir));
}

WorkloadCgroup::~WorkloadCgroup() {
  if (dir_) kill_all();
}

void WorkloadCgroup::kill_all() noexcept {
  if (write_at(dir_.get(), "cgroup.kill", "1") != ENOENT) return;
  // Before Linux 5.14: SIGKILL what cgroup.procs lists until it is empty (a fork racing the
  // sweep lands in the list and is caught by the next pass).
  for (int pass = 0; pass < 100; ++pass) {
    std::string procs;
    try {
      procs = read_at(dir_.get(), "cgroup.procs");
    } catch (...) {
      return;
    }
    if (procs.empty()) return;
    size_t pos = 0;
    while (pos < procs.size()) {
      size_t end = procs.find('\n', pos);
      if (end == std::string::npos) end = procs.size();
      pid_t pid = static_cast<pid_t>(parse_u64(std::string_view(procs).substr(pos, end - pos)));
      if (pid > 0) ::kill(pid, SIGKILL);
      pos = end + 1;
    }
    ::usleep(1000);
  }
}

CgroupMetrics WorkloadCgroup::metrics() const {
  CgroupMetrics m;
  const std::string cpu = read_at(dir_.get(), "cpu.stat");
  m.cpu_user_ns = keyed_value(cpu, "user_usec") * 1000;
  m.cpu_system_ns = keyed_value(cpu, "system_usec") * 1000;
  const std::string peak = read_at(dir_.get(), "memory.peak");
  m.has_memory_peak = !peak.empty();
  m.memory_peak_bytes = parse_u64(peak);
  m.oom_kills = keyed_value(read_at(dir_.get(), "memory.events"), "oom_kill");
  return m;
}

std::optional<WorkloadCgroup> create_workload_cgroup(const std::string& mount_point,
                                                     const CgroupLimits& limits,
                                                     std::string& why_not) {
  try {
    return WorkloadCgroup::create(mount_point, limits);
  } catch (const Error& e) {
    if (limits.memory_bytes || limits.pids_max) throw;  // InitError or SysError: step() names it
    why_not = e.what();
    return std::nullopt;
  }
}

}  // namespace benchrun::guest
