// limits.cpp: the run's limits with their defaults (run/limits.hpp).
#include "run/limits.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <charconv>
#include <string_view>

#include "benchrun/common/error.hpp"
#include "benchrun/common/fs.hpp"

namespace benchrun::run {

namespace {

Limit resolve(const std::optional<uint64_t>& given, std::optional<uint64_t> fallback) {
  if (!given) return {fallback, false};
  if (*given == kUnlimited) return {std::nullopt, true};
  return {*given, true};
}

}  // namespace

uint64_t host_memory_bytes(const std::string& meminfo) {
  UniqueFd fd = open_file(meminfo, O_RDONLY);
  char buf[4096];
  ssize_t n;
  do n = ::read(fd.get(), buf, sizeof buf);
  while (n < 0 && errno == EINTR);
  if (n < 0) throw_errno("read", meminfo);
  std::string_view text(buf, static_cast<size_t>(n));
  constexpr std::string_view key = "MemTotal:";
  const size_t at = text.find(key);
  if (at != std::string_view::npos) {
    size_t b = text.find_first_not_of(' ', at + key.size());
    uint64_t kib = 0;
    if (b != std::string_view::npos) {
      auto [end, ec] = std::from_chars(text.data() + b, text.data() + text.size(), kib);
      if (ec == std::errc() && kib > 0 && std::string_view(end, 3) == " kB") return kib << 10;
    }
  }
  throw ConfigError("read '" + meminfo +
                    "': no 'MemTotal: <n> kB' line (hint: pass /proc/meminfo)");
}

Limits resolve_limits(const RunSpec& spec, uint64_t ram_bytes) {
  Limits l;
  l.memory = resolve(spec.memory, ram_bytes / kDefaultMemoryDen * kDefaultMemoryNum);
  l.pids = resolve(spec.pids_limit, kDefaultPids);
  l.disk = resolve(spec.disk, kDefaultDisk);
  // tmpfs pages are charged to the writer's memory cgroup, so the memory limit bounds them anyway;
  // half of it each makes a full /tmp an ENOSPC rather than an OOM kill (both together fit), and
  // bounds them without a cgroup. Without a memory limit: the kernel's default, half of RAM.
  l.tmpfs = (l.memory.value ? *l.memory.value : ram_bytes) / 2;
  return l;
}

void record_limits(const Limits& l, const RunSpec& spec, RunResult& r) {
  r.limits["memory"] = l.memory.value;
  r.limits["pids"] = l.pids.value;
  r.limits["disk"] = l.disk.value;
  r.limits["tmpfs"] = l.tmpfs;
  r.limits["nofile"] = spec.nofile;
}

}  // namespace benchrun::run
