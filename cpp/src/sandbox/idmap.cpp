// idmap.cpp: subordinate id ranges for root runs, one locked slot per concurrent run.
#include "benchrun/sandbox/idmap.hpp"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <fstream>

#include "benchrun/common/error.hpp"
#include "benchrun/common/fs.hpp"

namespace benchrun::sandbox {

namespace {

bool parse_u64(std::string_view s, uint64_t& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size() && !s.empty();
}

}  // namespace

SubIdEntry read_subid(const std::string& path, const std::string& name) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name + ":", 0) != 0) continue;
    std::string_view rest(line);
    rest.remove_prefix(name.size() + 1);
    size_t colon = rest.find(':');
    SubIdEntry e;
    if (colon == std::string_view::npos || !parse_u64(rest.substr(0, colon), e.start) ||
        !parse_u64(rest.substr(colon + 1), e.count) || e.start == 0 ||
        e.start + e.count > 0xffffffffull)
      throw ConfigError("'" + path + "': malformed entry '" + line +
                        "' (want <name>:<first id>:<count>, ids below 2^32-1, first id > 0)");
    return e;
  }
  return {};
}

IdSlot acquire_id_slot(const IdMapConfig& config) {
  SubIdEntry u = read_subid(config.subuid, config.name);
  SubIdEntry g = read_subid(config.subgid, config.name);
  if (u.count == 0) u = {kDefaultBase, kDefaultCount};
  if (g.count == 0) g = {kDefaultBase, kDefaultCount};
  const uint64_t slots = std::min(u.count, g.count) / kSlotSize;
  if (slots == 0)
    throw ConfigError("the '" + config.name + "' ranges in '" + config.subuid + "'/'" +
                      config.subgid + "' hold fewer than " + std::to_string(kSlotSize) +
                      " ids: a root run needs " + std::to_string(kSlotSize));
  make_dirs(config.lock_dir);
  for (uint64_t i = 0; i < slots; ++i) {
    const std::string path = config.lock_dir + "/slot-" + std::to_string(i);
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd) throw_errno("open", path);
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
      if (errno == EWOULDBLOCK) continue;
      throw_errno("flock", path);
    }
    IdSlot slot;
    slot.lock_ = std::move(fd);
    slot.index_ = static_cast<int>(i);
    slot.range_ = {static_cast<uid_t>(u.start + i * kSlotSize),
                   static_cast<gid_t>(g.start + i * kSlotSize), kSlotSize};
    return slot;
  }
  throw SandboxError("all " + std::to_string(slots) + " id ranges for root runs are in use (" +
                         std::to_string(slots) + " concurrent runs; hint: a larger '" +
                         config.name + "' entry in '" + config.subuid + "' and '" + config.subgid +
                         "')",
                     "user namespace");
}

}  // namespace benchrun::sandbox
