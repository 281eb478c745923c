// cgroup.cpp: a run's cgroup on v2 (one directory) or v1 (one directory per controller hierarchy).
//
// Kernel behaviour this follows (Documentation/admin-guide/cgroup-v2.rst, cgroup-v1/*.rst):
// - v2: a child gets a controller's files only if its parent enables the controller in
//   cgroup.subtree_control, and a non-root cgroup that holds processes cannot enable any ("no
//   internal processes"), so runs are leaves under a process-free parent. cgroup.kill (5.14) kills
//   the whole subtree and stops forks racing the kill.
// - v1: every controller is its own tree, and a process must be written into each. A cpuset cgroup
//   accepts no process until cpuset.cpus and cpuset.mems are set, at every level. There is no
//   cgroup.kill: the freezer stops forks while we SIGKILL; the kill takes effect at thaw.
// - Zombies are not listed in cgroup.procs and do not keep a cgroup busy: "empty" means every
//   process has exited, reaped or not.
#include "benchrun/host/cgroup.hpp"

#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <map>
#include <set>
#include <string_view>
#include <utility>

#include "benchrun/common/clock.hpp"
#include "benchrun/common/dir.hpp"
#include "benchrun/common/eintr.hpp"
#include "benchrun/common/error.hpp"
#include "benchrun/common/run_name.hpp"
#include "benchrun/common/scope_exit.hpp"

namespace benchrun::host {

namespace {

using namespace std::chrono_literals;

constexpr auto kKillTimeout = 5s;    // kill_all: until the cgroup is empty
constexpr auto kFreezeTimeout = 1s;  // v1: until freezer.state reads FROZEN
constexpr int kRmdirTries = 50;      // rmdir on EBUSY (v1 memory cgroups settle asynchronously)
constexpr size_t kMaxRead = 4u << 20;

// The v1 hierarchies a run joins: accounting (cpuacct), limits, and the freezer for kill_all.
constexpr const char* kV1Controllers[] = {"cpu", "cpuacct", "cpuset", "memory", "pids", "freezer"};
// The v2 controllers enabled for runs when the host offers them (memory also gives memory.peak).
constexpr const char* kV2Controllers[] = {"cpu", "cpuset", "memory", "pids"};

// A controller that a requested limit cannot do without.
struct Need {
  const char* controller;
  const char* limit;
};

std::vector<Need> needs_of(const CgroupLimits& l) {
  std::vector<Need> out;
  if (l.memory_bytes) out.push_back({"memory", "memory"});
  if (l.pids_max) out.push_back({"pids", "pids"});
  if (!l.cpuset_cpus.empty()) out.push_back({"cpuset", "cpuset"});
  if (l.cpu_quota_us) out.push_back({"cpu", "cpu quota"});
  return out;
}

const Need* find_need(const std::vector<Need>& needs, std::string_view controller) {
  for (const Need& n : needs)
    if (controller == n.controller) return &n;
  return nullptr;
}

[[noreturn]] void fail(const std::string& message) { throw SandboxError(message, "cgroup"); }

std::string file_name(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

std::string hint_for(int err, const std::string& op, const std::string& path) {
  const std::string file = file_name(path);
  switch (err) {
    case EACCES:
    case EPERM:
    case EROFS:
      return "run as root, or have this cgroup subtree delegated to the user (systemd "
             "Delegate=yes)";
    case ENOENT:
      if (op == "mkdir") return "the directory above it does not exist: check the cgroup root";
      if (starts_with(file, "cgroup."))
        return "not a cgroup directory: check the cgroup root (and version, if one is forced)";
      return "the controller providing '" + file + "' is not enabled for this cgroup";
    case EEXIST:
      return "a cgroup of that name exists: a concurrent run, or a stale one that "
             "cleanup_stale_cgroups removes";
    case EBUSY:
      if (file == "cgroup.subtree_control")
        return "this cgroup holds processes itself (v2 no-internal-processes rule): move them "
               "into a leaf cgroup, or use a cgroup root without processes";
      if (starts_with(file, "memory."))
        return "the group already uses more memory than the new limit";
      return "the cgroup is in use";
    case EINVAL:
      if (starts_with(file, "cpuset."))
        return "the CPUs/memory nodes must exist and be a subset of the parent cgroup's";
      if (file == "cpu.max" || starts_with(file, "cpu.cfs_"))
        return "the period must be 1000..1000000 us and the quota at least 1000 us";
      if (file == "cgroup.procs") return "the process cannot move there (a kernel thread?)";
      return "the kernel rejected the value";
    case ENOSPC:
      if (file == "cgroup.procs") return "the cgroup's cpuset.cpus or cpuset.mems is empty";
      return "the kernel rejected the value";
    case ESRCH:
      return "the process already exited";
    case EOPNOTSUPP:
      return "the cgroup is not a domain cgroup (threaded, or invalid)";
    default:
      return "check that cgroupfs is mounted read-write at the configured root";
  }
}

[[noreturn]] void fail_for(int err, const std::string& message) {
  if (err == EACCES || err == EPERM || err == EROFS) throw CgroupAccessDenied(message, "cgroup");
  fail(message);
}

[[noreturn]] void fail_errno(int err, const std::string& op, const std::string& path) {
  fail_for(err, op + " '" + path + "': " + std::strerror(err) +
                    " (hint: " + hint_for(err, op, path) + ")");
}

[[noreturn]] void fail_write(int err, const std::string& path, const std::string& value) {
  fail_for(err, "write '" + path + "' = '" + value + "': " + std::strerror(err) +
                    " (hint: " + hint_for(err, "write", path) + ")");
}

// Writes value in one write(2), as cgroupfs requires; returns 0 or the errno. O_TRUNC changes
// nothing on cgroupfs (it is what the shell's `>` does) and lets a fake tree of plain files show
// exactly the last value written.
int try_write(const std::string& path, const std::string& value) noexcept {
  UniqueFd fd(retry_eintr([&] { return ::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC); }));
  if (!fd) return errno;
  ssize_t n = retry_eintr([&] { return ::write(fd.get(), value.data(), value.size()); });
  if (n < 0) return errno;
  return static_cast<size_t>(n) == value.size() ? 0 : EIO;
}

void write_value(const std::string& path, const std::string& value) {
  if (int err = try_write(path, value)) fail_write(err, path, value);
}

// A small kernel file's content; nullopt if it does not exist (the kernel lacks it, or the cgroup
// is gone). Throws on any other error.
std::optional<std::string> read_optional(const std::string& path) {
  UniqueFd fd(retry_eintr([&] { return ::open(path.c_str(), O_RDONLY | O_CLOEXEC); }));
  if (!fd) {
    const int err = errno;
    if (err == ENOENT || err == ENODEV) return std::nullopt;
    fail_errno(err, "read", path);
  }
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = retry_eintr([&] { return ::read(fd.get(), buf, sizeof buf); });
    if (n < 0) {
      const int err = errno;
      if (err == ENODEV) return std::nullopt;  // the cgroup was removed while we read
      fail_errno(err, "read", path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > kMaxRead)
      fail("read '" + path + "': more than " + std::to_string(kMaxRead) + " bytes");
  }
  return out;
}

std::string trim(std::string_view s) {
  const char* ws = " \t\n";
  size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(ws);
  return std::string(s.substr(b, e - b + 1));
}

std::string read_trimmed(const std::string& path) {
  std::optional<std::string> s = read_optional(path);
  if (!s) fail_errno(ENOENT, "read", path);
  return trim(*s);
}

std::set<std::string> words(const std::string& text) {
  std::set<std::string> out;
  size_t i = 0;
  while (i < text.size()) {
    size_t b = text.find_first_not_of(" \t\n", i);
    if (b == std::string::npos) break;
    size_t e = text.find_first_of(" \t\n", b);
    if (e == std::string::npos) e = text.size();
    out.insert(text.substr(b, e - b));
    i = e;
  }
  return out;
}

uint64_t parse_u64(std::string_view s, const std::string& path) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty())
    fail("read '" + path + "': expected a number, got '" + std::string(s) + "'");
  return v;
}

// The value of "key value" in a flat-keyed file such as cpu.stat; 0 when the key is absent.
uint64_t keyed(const std::string& text, std::string_view key, const std::string& path) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    std::string_view line(text.data() + pos, eol - pos);
    if (line.size() > key.size() && starts_with(line, key) && line[key.size()] == ' ')
      return parse_u64(trim(line.substr(key.size() + 1)), path);
    pos = eol + 1;
  }
  return 0;
}

bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

bool is_dir(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// Names of the subdirectories (child cgroups) of dir; empty if dir does not exist (ENODEV: the
// cgroup was removed between lookup and open).
std::vector<std::string> subdirs(const std::string& dir) {
  std::vector<std::string> out;
  try {
    std::optional<Dir> d = Dir::open_if_exists(dir);
    if (!d) return out;
    while (std::optional<DirEntry> e = d->next())
      if (d->is_dir(*e)) out.emplace_back(e->name);
  } catch (const SysError& e) {
    if (e.code() == ENODEV) return out;
    fail_errno(e.code(), e.op(), dir);
  }
  return out;
}

// Appends the pids in dir and in its descendant cgroups (v1 lists a member only in its own group).
void collect_pids(const std::string& dir, std::vector<pid_t>& out) {
  if (std::optional<std::string> text = read_optional(dir + "/cgroup.procs")) {
    size_t pos = 0;
    while (pos < text->size()) {
      size_t eol = text->find('\n', pos);
      if (eol == std::string::npos) eol = text->size();
      std::string_view line(text->data() + pos, eol - pos);
      pid_t pid = 0;
      auto [end, ec] = std::from_chars(line.data(), line.data() + line.size(), pid);
      if (ec == std::errc() && end == line.data() + line.size() && pid > 0) out.push_back(pid);
      pos = eol + 1;
    }
  }
  for (const std::string& sub : subdirs(dir)) collect_pids(dir + "/" + sub, out);
}

std::vector<pid_t> pids_in(const std::vector<std::string>& dirs) {
  std::vector<pid_t> pids;
  for (const std::string& d : dirs) collect_pids(d, pids);
  std::sort(pids.begin(), pids.end());
  pids.erase(std::unique(pids.begin(), pids.end()), pids.end());
  return pids;
}

void sigkill_all(const std::vector<pid_t>& pids) {
  for (pid_t pid : pids) ::kill(pid, SIGKILL);
}

// Polls until no process is left in dirs. signal_each re-sends SIGKILL to whatever is still listed:
// needed when nothing stopped forks during the first round (no cgroup.kill, freezer not FROZEN).
void wait_empty(const std::vector<std::string>& dirs, Clock::time_point deadline,
                bool signal_each) {
  auto pause = 1ms;
  for (;;) {
    std::vector<pid_t> pids = pids_in(dirs);
    if (pids.empty()) return;
    if (Clock::now() >= deadline)
      fail("kill cgroup '" + dirs.front() + "': " + std::to_string(pids.size()) +
           " process(es) still present after " + std::to_string(kKillTimeout.count()) +
           " s, e.g. pid " + std::to_string(pids.front()) +
           " (hint: a process in uninterruptible sleep (state D) dies only when its I/O ends; see "
           "/proc/<pid>/stack)");
    if (signal_each) sigkill_all(pids);
    sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(20));
  }
}

// Removes dir after its descendant cgroups. Returns whether dir is gone. rmdir fails with EBUSY
// while exiting processes are still being released; that settles within milliseconds.
bool remove_cgroup_dir(const std::string& dir) noexcept {
  try {
    for (const std::string& sub : subdirs(dir)) remove_cgroup_dir(dir + "/" + sub);
  } catch (...) {
    // Fall through: the rmdir below reports whether anything is left.
  }
  for (int i = 0; i < kRmdirTries; ++i) {
    if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) return true;
    if (errno != EBUSY) return false;
    sleep_for(std::chrono::milliseconds(std::min(1 + i, 10)));
  }
  return false;
}

bool valid_component(std::string_view s) {
  if (s.empty() || s == "." || s == "..") return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  });
}

std::vector<std::string> parent_components(const std::string& parent) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= parent.size()) {
    size_t slash = parent.find('/', pos);
    if (slash == std::string::npos) slash = parent.size();
    std::string comp = parent.substr(pos, slash - pos);
    if (!valid_component(comp))
      throw ConfigError("cgroup parent '" + parent +
                        "': each '/'-separated part must match [A-Za-z0-9_.-]+ (not '.' or '..')");
    out.push_back(std::move(comp));
    pos = slash + 1;
  }
  return out;
}

std::string normalized_root(const std::string& root) {
  std::string r = root;
  while (r.size() > 1 && r.back() == '/') r.pop_back();
  return r;
}

void mkdir_level(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0755) == 0 || errno == EEXIST) return;
  const int err = errno;
  fail_errno(err, "mkdir", dir);
}

// --- v2 ---------------------------------------------------------------------------------------

[[noreturn]] void fail_missing_v2(const Need& n, const std::string& dir) {
  const std::string limit = n.limit;
  throw CgroupControllerMissing(
      "enable cgroup controller '" + std::string(n.controller) + "' (for the " + limit +
          " limit) in '" + dir + "': not listed in cgroup.controllers (hint: the host does not " +
          "delegate it here; enable it in the parent's cgroup.subtree_control or with systemd " +
          "Delegate=, or drop the " + limit + " limit)",
      n.controller);
}

// Enables in dir/cgroup.subtree_control the controllers of kV2Controllers that dir offers. Failing
// to enable one that no requested limit needs is fine: its files are then just missing.
void enable_controllers_v2(const std::string& dir, const std::vector<Need>& needs) {
  const std::set<std::string> offered = words(read_trimmed(dir + "/cgroup.controllers"));
  for (const Need& n : needs)
    if (!offered.count(n.controller)) fail_missing_v2(n, dir);
  const std::string control = dir + "/cgroup.subtree_control";
  const std::set<std::string> enabled = words(read_trimmed(control));
  std::vector<std::string> todo;
  for (const char* c : kV2Controllers)
    if (offered.count(c) && !enabled.count(c)) todo.push_back(std::string("+") + c);
  if (todo.empty()) return;
  std::string all;
  for (const std::string& t : todo) all += (all.empty() ? "" : " ") + t;
  if (try_write(control, all) == 0) return;
  // The kernel applies all or none: enable them one by one to keep those that work.
  for (const std::string& t : todo) {
    int err = try_write(control, t);
    if (err != 0 && find_need(needs, std::string_view(t).substr(1))) fail_write(err, control, t);
  }
}

// --- v1 ---------------------------------------------------------------------------------------

[[noreturn]] void fail_missing_v1(const Need& n, const std::string& root) {
  const std::string controller = n.controller, limit = n.limit;
  throw CgroupControllerMissing(
      "join cgroup controller '" + controller + "' (for the " + limit + " limit) under '" + root +
          "': no '" + controller + "' hierarchy (hint: mount it: mount -t cgroup -o " + controller +
          " cgroup " + root + "/" + controller + ", or drop the " + limit + " limit)",
      controller);
}

// The distinct v1 hierarchies among kV1Controllers under root. A combined mount ("cpu,cpuacct")
// reached through the "cpu" and "cpuacct" symlinks, or a hierarchy bind-mounted twice, is the same
// directory (device and inode) and counts once.
std::vector<std::string> v1_hierarchies(const std::string& root, const std::vector<Need>& needs) {
  std::vector<std::pair<dev_t, ino_t>> seen;
  std::vector<std::string> out;
  for (const char* c : kV1Controllers) {
    const std::string dir = root + "/" + c;
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      if (const Need* n = find_need(needs, c)) fail_missing_v1(*n, root);
      continue;
    }
    std::pair<dev_t, ino_t> id{st.st_dev, st.st_ino};
    if (std::find(seen.begin(), seen.end(), id) != seen.end()) continue;
    seen.push_back(id);
    out.push_back(dir);
  }
  return out;
}

// v1 cpuset: a cgroup takes no process while cpuset.cpus or cpuset.mems is empty, and new groups
// start empty. Fills them from the parent level (cpus: the requested set when given). No-op in
// other hierarchies.
void init_cpuset_v1(const std::string& dir, const std::string& parent, const std::string& cpus) {
  if (!exists(dir + "/cpuset.cpus")) return;
  if (!cpus.empty())
    write_value(dir + "/cpuset.cpus", cpus);
  else if (read_trimmed(dir + "/cpuset.cpus").empty())
    write_value(dir + "/cpuset.cpus", read_trimmed(parent + "/cpuset.cpus"));
  if (read_trimmed(dir + "/cpuset.mems").empty())
    write_value(dir + "/cpuset.mems", read_trimmed(parent + "/cpuset.mems"));
}

// The path of file in whichever of dirs has it (each v1 controller's files live in its hierarchy).
std::string find_file(const std::vector<std::string>& dirs, const char* file) {
  for (const std::string& d : dirs) {
    std::string p = d + "/" + file;
    if (exists(p)) return p;
  }
  return {};
}

std::string v1_file(const std::vector<std::string>& dirs, const char* file, const Need& n) {
  std::string p = find_file(dirs, file);
  if (p.empty())
    fail("write '" + std::string(file) + "' (for the " + n.limit + " limit): none of the run's " +
         std::to_string(dirs.size()) + " cgroups has it (hint: the '" + n.controller +
         "' hierarchy is not a cgroup mount, or the kernel lacks the controller)");
  return p;
}

void apply_limits_v1(const std::vector<std::string>& dirs, const CgroupLimits& l) {
  if (l.memory_bytes) {
    const std::string value = std::to_string(*l.memory_bytes);
    const std::string limit = v1_file(dirs, "memory.limit_in_bytes", {"memory", "memory"});
    write_value(limit, value);
    // memory+swap = memory: no swap (the limit must be set first: memsw may not go below it).
    const std::string dir = limit.substr(0, limit.rfind('/'));
    int err = try_write(dir + "/memory.memsw.limit_in_bytes", value);
    if (err == ENOENT) {
      // Swap accounting is off (swapaccount=0): discourage swapping instead; best effort.
      (void)try_write(dir + "/memory.swappiness", "0");
    } else if (err != 0) {
      fail_write(err, dir + "/memory.memsw.limit_in_bytes", value);
    }
  }
  if (l.pids_max)
    write_value(v1_file(dirs, "pids.max", {"pids", "pids"}), std::to_string(*l.pids_max));
  if (l.cpu_quota_us) {
    const Need cpu{"cpu", "cpu quota"};
    write_value(v1_file(dirs, "cpu.cfs_period_us", cpu), std::to_string(l.cpu_period_us));
    write_value(v1_file(dirs, "cpu.cfs_quota_us", cpu), std::to_string(*l.cpu_quota_us));
  }
}

bool wait_frozen(const std::string& state, Clock::time_point deadline) {
  auto pause = 1ms;
  for (;;) {
    if (trim(read_optional(state).value_or("")) == "FROZEN") return true;
    if (Clock::now() >= deadline) return false;
    sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(10));
  }
}

}  // namespace

void detail::write_v2_limits(const std::string& dir, const std::string& parent,
                             const CgroupLimits& l) {
  if (l.memory_bytes) {
    write_value(dir + "/memory.max", std::to_string(*l.memory_bytes));
    // No swap: a run over its limit is OOM-killed instead of swapping (which would skew timings).
    // ENOENT: the kernel has no swap accounting, so there is no swap to limit per cgroup.
    if (int err = try_write(dir + "/memory.swap.max", "0"); err != 0 && err != ENOENT)
      fail_write(err, dir + "/memory.swap.max", "0");
  }
  if (l.pids_max) write_value(dir + "/pids.max", std::to_string(*l.pids_max));
  if (!l.cpuset_cpus.empty()) {
    write_value(dir + "/cpuset.cpus", l.cpuset_cpus);
    std::string mems = trim(read_optional(parent + "/cpuset.mems.effective").value_or(""));
    if (!mems.empty()) write_value(dir + "/cpuset.mems", mems);
  }
  if (l.cpu_quota_us)
    write_value(dir + "/cpu.max",
                std::to_string(*l.cpu_quota_us) + " " + std::to_string(l.cpu_period_us));
}

CgroupVersion detect_cgroup_version(const std::string& root) {
  struct statfs sf {};
  if (::statfs(root.c_str(), &sf) != 0) {
    const int err = errno;
    fail("statfs '" + root + "': " + std::strerror(err) +
         " (hint: cgroupfs is not mounted there; pass the host's cgroup root)");
  }
  if (static_cast<unsigned long>(sf.f_type) == CGROUP2_SUPER_MAGIC) return CgroupVersion::kV2;
  for (const char* c : kV1Controllers)
    if (is_dir(normalized_root(root) + "/" + c)) return CgroupVersion::kV1;
  fail("detect cgroup version '" + root + "': neither a cgroup2 mount nor a directory of v1 " +
       "controller hierarchies (hint: mount one, e.g. mount -t cgroup2 none " + root +
       ", or pass the right cgroup root)");
}

Cgroup Cgroup::create(const CgroupConfig& config, const std::string& name,
                      const CgroupLimits& limits) {
  if (!valid_component(name))
    throw ConfigError("cgroup name '" + name + "': must match [A-Za-z0-9_.-]+ (not '.' or '..')");
  const std::vector<std::string> parents = parent_components(config.parent);
  const std::string root = normalized_root(config.root);
  const std::vector<Need> needs = needs_of(limits);

  Cgroup cg;
  cg.version_ = config.version ? *config.version : detect_cgroup_version(root);
  if (cg.version_ == CgroupVersion::kV2) {
    enable_controllers_v2(root, needs);
    std::string dir = root;
    for (const std::string& p : parents) {
      dir += "/" + p;
      mkdir_level(dir);
      enable_controllers_v2(dir, needs);
    }
    const std::string leaf = dir + "/" + name;
    if (::mkdir(leaf.c_str(), 0755) != 0) {
      const int err = errno;
      fail_errno(err, "mkdir", leaf);
    }
    cg.paths_.push_back(leaf);
    cg.destroyed_ = false;  // from here on, a throw removes the directory again
    detail::write_v2_limits(leaf, dir, limits);
    int fd = ::open(leaf.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
      const int err = errno;
      fail_errno(err, "open", leaf);
    }
    cg.dir_fd_.reset(fd);
    return cg;
  }

  const std::vector<std::string> hierarchies = v1_hierarchies(root, needs);
  if (hierarchies.empty())
    fail("create cgroup '" + name + "' under '" + root + "': no v1 controller hierarchy found " +
         "(hint: pass the host's cgroup root)");
  for (const std::string& h : hierarchies) {
    std::string dir = h;
    for (const std::string& p : parents) {
      const std::string next = dir + "/" + p;
      mkdir_level(next);
      init_cpuset_v1(next, dir, "");
      dir = next;
    }
    const std::string leaf = dir + "/" + name;
    if (::mkdir(leaf.c_str(), 0755) != 0) {
      const int err = errno;
      fail_errno(err, "mkdir", leaf);
    }
    cg.paths_.push_back(leaf);
    cg.destroyed_ = false;
    init_cpuset_v1(leaf, dir, limits.cpuset_cpus);
  }
  apply_limits_v1(cg.paths_, limits);
  return cg;
}

Cgroup::Cgroup(Cgroup&& o) noexcept
    : version_(o.version_),
      paths_(std::move(o.paths_)),
      dir_fd_(std::move(o.dir_fd_)),
      destroyed_(std::exchange(o.destroyed_, true)) {
  o.paths_.clear();
}

Cgroup& Cgroup::operator=(Cgroup&& o) noexcept {
  if (this != &o) {
    destroy();
    version_ = o.version_;
    paths_ = std::move(o.paths_);
    o.paths_.clear();
    dir_fd_ = std::move(o.dir_fd_);
    destroyed_ = std::exchange(o.destroyed_, true);
  }
  return *this;
}

Cgroup::~Cgroup() { destroy(); }

void Cgroup::add_process(pid_t pid) {
  if (destroyed_) fail("add process " + std::to_string(pid) + " to cgroup: it was destroyed");
  for (const std::string& dir : paths_) write_value(dir + "/cgroup.procs", std::to_string(pid));
}

void Cgroup::kill_all() {
  if (destroyed_ || paths_.empty()) return;
  // Nothing inside means nothing can fork inside: done (the common case once the workload exited).
  if (pids_in(paths_).empty()) return;
  const Clock::time_point deadline = Clock::now() + kKillTimeout;

  if (version_ == CgroupVersion::kV2) {
    const std::string kill_file = paths_.front() + "/cgroup.kill";
    int err = try_write(kill_file, "1");
    if (err != 0 && err != ENOENT) fail_write(err, kill_file, "1");
    // Without cgroup.kill (kernel < 5.14), SIGKILL whatever is listed until nothing is.
    wait_empty(paths_, deadline, err == ENOENT);
    return;
  }

  const std::string state = find_file(paths_, "freezer.state");
  if (state.empty()) {
    wait_empty(paths_, deadline, true);
    return;
  }
  // Frozen processes cannot fork (or exit, so their pids stay theirs); SIGKILL is queued and acts
  // at thaw. If freezing does not finish in time (a task in D state), kill anyway and keep killing.
  write_value(state, "FROZEN");
  ScopeExit thaw([&state] { (void)try_write(state, "THAWED"); });
  const bool frozen = wait_frozen(state, std::min(deadline, Clock::now() + kFreezeTimeout));
  sigkill_all(pids_in(paths_));
  thaw.release();
  write_value(state, "THAWED");
  wait_empty(paths_, deadline, !frozen);
}

CgroupMetrics Cgroup::metrics() const {
  if (destroyed_) fail("read cgroup metrics: the cgroup was destroyed");
  CgroupMetrics m;
  if (version_ == CgroupVersion::kV2) {
    const std::string& dir = paths_.front();
    if (auto s = read_optional(dir + "/cpu.stat")) {
      const std::string p = dir + "/cpu.stat";
      m.cpu_usage_ns = keyed(*s, "usage_usec", p) * 1000;
      m.cpu_user_ns = keyed(*s, "user_usec", p) * 1000;
      m.cpu_system_ns = keyed(*s, "system_usec", p) * 1000;
    }
    if (auto s = read_optional(dir + "/memory.peak"))
      m.memory_peak_bytes = parse_u64(trim(*s), dir + "/memory.peak");
    if (auto s = read_optional(dir + "/memory.events")) {
      m.oom_kills = keyed(*s, "oom_kill", dir + "/memory.events");
      m.memory_limit_hits = keyed(*s, "max", dir + "/memory.events");
    }
    return m;
  }
  for (const std::string& dir : paths_) {
    if (auto s = read_optional(dir + "/cpuacct.usage"))
      m.cpu_usage_ns = parse_u64(trim(*s), dir + "/cpuacct.usage");
    // cpuacct.usage_user/usage_sys (Linux 4.7+) count nanoseconds; cpuacct.stat converts the same
    // counters to USER_HZ ticks (sysconf(_SC_CLK_TCK), 100 on Linux, whatever HZ is), truncating
    // to 10 ms: a short run would read 0. The older kernels have only cpuacct.stat.
    auto user = read_optional(dir + "/cpuacct.usage_user");
    auto sys = read_optional(dir + "/cpuacct.usage_sys");
    if (user && sys) {
      m.cpu_user_ns = parse_u64(trim(*user), dir + "/cpuacct.usage_user");
      m.cpu_system_ns = parse_u64(trim(*sys), dir + "/cpuacct.usage_sys");
    } else if (auto s = read_optional(dir + "/cpuacct.stat")) {
      const long tck = ::sysconf(_SC_CLK_TCK);
      const uint64_t ns_per_tick =
          tck > 0 ? 1'000'000'000ull / static_cast<uint64_t>(tck) : 10'000'000ull;
      m.cpu_user_ns = keyed(*s, "user", dir + "/cpuacct.stat") * ns_per_tick;
      m.cpu_system_ns = keyed(*s, "system", dir + "/cpuacct.stat") * ns_per_tick;
    }
    if (auto s = read_optional(dir + "/memory.max_usage_in_bytes"))
      m.memory_peak_bytes = parse_u64(trim(*s), dir + "/memory.max_usage_in_bytes");
    if (auto s = read_optional(dir + "/memory.oom_control"))
      m.oom_kills = keyed(*s, "oom_kill", dir + "/memory.oom_control");
    // memory+swap is charged first: with swap limited too, its counter is the one that fails,
    // and recent kernels keep no failcnt for it: a peak at the limit counts as one hit.
    for (const char* f : {"/memory.failcnt", "/memory.memsw.failcnt"})
      if (auto s = read_optional(dir + f)) m.memory_limit_hits += parse_u64(trim(*s), dir + f);
    for (const char* c : {"/memory", "/memory.memsw"}) {
      auto peak = read_optional(dir + c + ".max_usage_in_bytes");
      auto limit = read_optional(dir + c + ".limit_in_bytes");
      if (m.memory_limit_hits == 0 && peak && limit &&
          parse_u64(trim(*peak), dir + c) >= parse_u64(trim(*limit), dir + c))
        m.memory_limit_hits = 1;
    }
  }
  return m;
}

void Cgroup::destroy() noexcept {
  if (destroyed_) return;
  try {
    kill_all();
  } catch (...) {
    // Remove what can be removed; a group left busy is for cleanup_stale_cgroups.
  }
  dir_fd_.reset();
  for (auto it = paths_.rbegin(); it != paths_.rend(); ++it) remove_cgroup_dir(*it);
  paths_.clear();
  destroyed_ = true;
}

int cleanup_stale_cgroups(const CgroupConfig& config) {
  const std::vector<std::string> parents = parent_components(config.parent);
  const std::string root = normalized_root(config.root);
  const CgroupVersion version = config.version ? *config.version : detect_cgroup_version(root);
  const std::vector<std::string> tops =
      version == CgroupVersion::kV2 ? std::vector<std::string>{root} : v1_hierarchies(root, {});

  std::map<std::string, std::vector<std::string>> stale;  // run name -> its dir in each hierarchy
  for (const std::string& top : tops) {
    std::string dir = top;
    for (const std::string& p : parents) dir += "/" + p;
    for (const std::string& name : subdirs(dir))
      if (run_name_is_stale(name)) stale[name].push_back(dir + "/" + name);
  }
  int removed = 0;
  for (auto& [name, dirs] : stale) {
    Cgroup cg;
    cg.version_ = version;
    cg.paths_ = dirs;
    cg.destroyed_ = false;
    cg.destroy();
    if (std::none_of(dirs.begin(), dirs.end(), [](const std::string& d) { return exists(d); }))
      ++removed;
  }
  return removed;
}

}  // namespace benchrun::host
