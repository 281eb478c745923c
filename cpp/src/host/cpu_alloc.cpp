// cpu_alloc.cpp: per-CPU flock(2) leases; see cpu_alloc.hpp.
#include "benchrun/host/cpu_alloc.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <thread>

#include "benchrun/common/clock.hpp"
#include "benchrun/common/error.hpp"
#include "benchrun/common/fs.hpp"

namespace benchrun::host {

namespace {

std::string lock_path(const std::string& dir, int cpu) {
  return dir + "/cpu-" + std::to_string(cpu);
}

UniqueFd open_lock(const std::string& dir, int cpu) {
  const std::string path = lock_path(dir, cpu);
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644));
  if (!fd) throw_errno("open", path);
  return fd;
}

// Locks cpu without blocking: the fd, or an empty one when someone else holds it.
UniqueFd try_lock(const std::string& dir, int cpu, const std::string& holder) {
  UniqueFd fd = open_lock(dir, cpu);
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) return UniqueFd();
    throw_errno("flock", lock_path(dir, cpu));
  }
  // Who holds it, for the error another run gets (best effort: the lock is what counts).
  const std::string who = std::to_string(::getpid()) + " " + holder + "\n";
  if (::ftruncate(fd.get(), 0) == 0) (void)!::pwrite(fd.get(), who.data(), who.size(), 0);
  return fd;
}

// One attempt; the CPUs it could not have in busy.
bool try_acquire(const CpuList& available, const CpuRequest& req, const std::string& holder,
                 const std::string& dir, std::vector<UniqueFd>& locks, CpuList& got,
                 CpuList& busy) {
  locks.clear();
  got.clear();
  busy.clear();
  const CpuList& candidates = req.cpus.empty() ? available : req.cpus;
  const size_t want = req.cpus.empty() ? req.count : req.cpus.size();
  for (int cpu : candidates) {
    if (got.size() == want) break;
    UniqueFd fd = try_lock(dir, cpu, holder);
    if (!fd) {
      busy.push_back(cpu);
      if (!req.cpus.empty()) break;  // a listed CPU is taken: this attempt failed
      continue;
    }
    locks.push_back(std::move(fd));
    got.push_back(cpu);
  }
  if (got.size() == want) return true;
  for (UniqueFd& fd : locks) (void)::ftruncate(fd.get(), 0);  // our notes go with our locks
  locks.clear();
  got.clear();
  return false;
}

}  // namespace

void CpuLease::release() noexcept {
  // A note left behind would name this run as the holder of the next one's CPU while that one
  // has not written its own yet.
  for (UniqueFd& fd : locks_)
    if (fd) (void)::ftruncate(fd.get(), 0);
  locks_.clear();
  cpus_.clear();
}

CpuLease& CpuLease::operator=(CpuLease&& o) noexcept {
  if (this != &o) {
    release();
    locks_ = std::move(o.locks_);
    cpus_ = std::move(o.cpus_);
    o.locks_.clear();
    o.cpus_.clear();
  }
  return *this;
}

CpuLease::~CpuLease() { release(); }

std::string cpu_holder(const std::string& lock_dir, int cpu) {
  const std::string path = lock_path(lock_dir, cpu);
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) return "";
  if (::flock(fd.get(), LOCK_SH | LOCK_NB) == 0) return "";  // nobody holds it exclusively
  char buf[256];
  ssize_t n = ::pread(fd.get(), buf, sizeof buf - 1, 0);
  std::string text(buf, n > 0 ? static_cast<size_t>(n) : 0);
  while (!text.empty() && text.back() == '\n') text.pop_back();
  const size_t sp = text.find(' ');
  if (text.empty() || sp == std::string::npos) return "another run";
  return text.substr(sp + 1) + " (pid " + text.substr(0, sp) + ")";
}

CpuLease acquire_cpus(const CpuList& available, const CpuRequest& req, const std::string& holder,
                      const std::string& lock_dir, const std::function<bool()>& interrupted) {
  const std::string pool = available.empty() ? "none" : format_cpu_list(available);
  if (!req.cpus.empty()) {
    const CpuList outside = cpu_difference(req.cpus, available);
    if (!outside.empty())
      throw ConfigError("cpus " + format_cpu_list(req.cpus) + ": CPU " + format_cpu_list(outside) +
                        " is not among the CPUs runs may use (" + pool +
                        "; hint: pick from those, or change the partition)");
  } else {
    if (req.count == 0) throw ConfigError("cpu count: must be at least 1");
    if (req.count > available.size())
      throw ConfigError("cpu count " + std::to_string(req.count) + ": only " +
                        std::to_string(available.size()) + " CPUs are available to runs (" + pool +
                        ")");
  }
  make_dirs(lock_dir);
  const auto deadline =
      Clock::now() + std::chrono::duration_cast<Clock::duration>(
                         std::chrono::duration<double>(req.wait_s > 0 ? req.wait_s : 0));
  CpuLease lease;
  CpuList busy;
  for (;;) {
    if (try_acquire(available, req, holder, lock_dir, lease.locks_, lease.cpus_, busy))
      return lease;
    if (Clock::now() >= deadline) break;
    if (interrupted && interrupted()) return CpuLease();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::string holders;
  for (int cpu : busy) {
    std::string who = cpu_holder(lock_dir, cpu);
    holders += (holders.empty() ? "" : ", ") + std::string("CPU ") + std::to_string(cpu) +
               " is held by " + (who.empty() ? "a run that just ended" : who);
  }
  const std::string want = req.cpus.empty() ? std::to_string(req.count) + " free CPUs of " + pool
                                            : "CPUs " + format_cpu_list(req.cpus);
  throw SandboxError("cannot have " + want + ": " + holders +
                         (req.wait_s > 0 ? " (waited " + std::to_string(req.wait_s) + " s)" : "") +
                         " (hint: concurrent runs never share a CPU; wait for those runs, ask for "
                         "fewer CPUs, or set cpu_wait to queue)",
                     "cpu allocation");
}

}  // namespace benchrun::host
