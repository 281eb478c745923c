// cpu_partition.cpp: the benchmark CPUs as an exclusive cpuset (v2 partition / v1 cpu_exclusive).
//
// Kernel behaviour this follows (Documentation/admin-guide/cgroup-v2.rst "cpuset.cpus.partition",
// cgroup-v1/cpusets.rst, kernel/cgroup/cpuset.c validate_change()):
// - v2: writing "root" or "isolated" to cpuset.cpus.partition succeeds even when the kernel cannot
//   honour it; the file then reads "<type> invalid (<reason>)". So every write is read back.
// - v1: cpu_exclusive=1 fails with EINVAL when a sibling's cpus overlap ours (either side being
//   exclusive forbids overlap), and changing cpus fails with EBUSY when a child cpuset uses a CPU
//   outside the new set, EINVAL when an exclusive sibling overlaps it or a CPU is offline.
#include "benchrun/host/cpu_partition.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "benchrun/common/dir.hpp"
#include "benchrun/common/eintr.hpp"
#include "benchrun/common/error.hpp"
#include "benchrun/common/unique_fd.hpp"

namespace benchrun::host {

namespace {

constexpr const char* kStage = "cpu partition";

[[noreturn]] void fail(const std::string& message) { throw SandboxError(message, kStage); }

int try_write(const std::string& path, const std::string& value) noexcept {
  UniqueFd fd(retry_eintr([&] { return ::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC); }));
  if (!fd) return errno;
  ssize_t n = retry_eintr([&] { return ::write(fd.get(), value.data(), value.size()); });
  if (n < 0) return errno;
  return static_cast<size_t>(n) == value.size() ? 0 : EIO;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  size_t b = s.find_first_not_of(' ');
  return b == std::string::npos ? std::string() : s.substr(b);
}

// A small kernel file's content, trimmed; nullopt if it does not exist.
std::optional<std::string> read_opt(const std::string& path) {
  UniqueFd fd(retry_eintr([&] { return ::open(path.c_str(), O_RDONLY | O_CLOEXEC); }));
  if (!fd) {
    if (errno == ENOENT || errno == ENODEV) return std::nullopt;
    throw_errno("open", path);
  }
  char buf[4096];
  ssize_t n = retry_eintr([&] { return ::read(fd.get(), buf, sizeof buf); });
  if (n < 0) throw_errno("read", path);
  return trim(std::string(buf, static_cast<size_t>(n)));
}

std::string read_or(const std::string& path, const std::string& fallback) {
  return read_opt(path).value_or(fallback);
}

bool is_dir(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string root_of(const std::string& root) {
  std::string r = root;
  while (r.size() > 1 && r.back() == '/') r.pop_back();
  return r;
}

struct Layout {
  CgroupVersion version;
  std::string top;  // the cpuset hierarchy's root directory
  std::string dir;  // the partition's directory
};

Layout layout(const PartitionConfig& c) {
  const std::string& n = c.name;
  if (n.empty() || n == "." || n == ".." ||
      n.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") !=
          std::string::npos)
    throw ConfigError("cpu partition name '" + n + "': must match [A-Za-z0-9_.-]+");
  const std::string root = root_of(c.root);
  const CgroupVersion v = c.version ? *c.version : detect_cgroup_version(root);
  const std::string top = v == CgroupVersion::kV2 ? root : root + "/cpuset";
  if (!is_dir(top))
    fail("cpu partition under '" + root + "': no cpuset hierarchy at '" + top +
         "' (hint: mount -t cgroup -o cpuset cgroup " + top + ")");
  return {v, top, top + "/" + n};
}

CpuList online_cpus(const PartitionConfig& c, const Layout& l) {
  if (auto s = read_opt(c.online)) return parse_cpu_list(*s, c.online);
  const std::string f = l.version == CgroupVersion::kV2 ? "/cpuset.cpus.effective" : "/cpuset.cpus";
  if (auto s = read_opt(l.top + f)) return parse_cpu_list(*s, l.top + f);
  return thread_affinity(0);
}

CpuList cpus_of(const std::string& dir) {
  return parse_cpu_list(read_or(dir + "/cpuset.cpus", ""), dir + "/cpuset.cpus");
}

std::vector<std::string> child_dirs(const std::string& dir) {
  std::vector<std::string> out;
  std::optional<Dir> d = Dir::open_if_exists(dir);
  if (!d) return out;
  while (std::optional<DirEntry> e = d->next())
    if (d->is_dir(*e)) out.emplace_back(e->name);
  return out;
}

bool overlaps(const CpuList& a, const CpuList& b) {
  return cpu_difference(a, b).size() != a.size();
}

// The sibling cgroups (of dir, in top) whose cpus overlap cpus: "'docker' (cpus 0-1)".
std::string overlapping_siblings(const Layout& l, const std::string& name, const CpuList& cpus) {
  std::string out;
  for (const std::string& s : child_dirs(l.top)) {
    if (s == name) continue;
    CpuList theirs;
    try {
      theirs = cpus_of(l.top + "/" + s);
    } catch (const Error&) {
      continue;
    }
    if (overlaps(theirs, cpus))
      out += (out.empty() ? "" : ", ") + std::string("'") + l.top + "/" + s + "' (cpus " +
             format_cpu_list(theirs) + ")";
  }
  return out;
}

// The child cgroups (runs) of dir using CPUs outside cpus.
std::string children_outside(const std::string& dir, const CpuList& cpus) {
  std::string out;
  for (const std::string& s : child_dirs(dir)) {
    CpuList theirs;
    try {
      theirs = cpus_of(dir + "/" + s);
    } catch (const Error&) {
      continue;
    }
    if (!cpu_subset(theirs, cpus))
      out += (out.empty() ? "" : ", ") + std::string("'") + dir + "/" + s + "' (cpus " +
             format_cpu_list(theirs) + ")";
  }
  return out;
}

// Puts the directory back as it was before create_partition touched it.
void roll_back(const std::string& dir, bool created, const std::string& old_cpus) {
  if (created) {
    (void)::rmdir(dir.c_str());
    return;
  }
  (void)try_write(dir + "/cpuset.cpus", old_cpus);
}

PartitionStatus create_v1(const PartitionConfig& c, const Layout& l, const CpuList& cpus,
                          bool require) {
  const bool created = ::mkdir(l.dir.c_str(), 0755) == 0;
  if (!created && errno != EEXIST) throw_errno("mkdir", l.dir);
  const std::string old_cpus = read_or(l.dir + "/cpuset.cpus", "");
  if (read_or(l.dir + "/cpuset.mems", "").empty()) {
    const std::string mems = read_or(l.top + "/cpuset.mems", "0");
    if (int err = try_write(l.dir + "/cpuset.mems", mems)) {
      roll_back(l.dir, created, old_cpus);
      fail("write '" + l.dir + "/cpuset.mems' = '" + mems + "': " + std::strerror(err));
    }
  }
  const std::string want = format_cpu_list(cpus);
  if (int err = try_write(l.dir + "/cpuset.cpus", want)) {
    roll_back(l.dir, created, old_cpus);
    std::string why = std::strerror(err);
    if (err == EBUSY) {
      why += " (hint: runs still use other CPUs: " + children_outside(l.dir, cpus) +
             "; wait for them to end)";
    } else if (err == EINVAL) {
      const std::string sib = overlapping_siblings(l, c.name, cpus);
      why += sib.empty() ? " (hint: a CPU is offline or missing)"
                         : " (hint: an exclusive sibling cpuset overlaps: " + sib + ")";
    }
    fail("write '" + l.dir + "/cpuset.cpus' = '" + want + "': " + why);
  }
  PartitionStatus st;
  if (int err = try_write(l.dir + "/cpuset.cpu_exclusive", "1")) {
    const std::string sib = overlapping_siblings(l, c.name, cpus);
    const std::string why = "write '" + l.dir +
                            "/cpuset.cpu_exclusive' = '1': " + std::strerror(err) +
                            (sib.empty() ? std::string()
                                         : " (sibling cpusets use the same CPUs: " + sib +
                                               "; hint: shrink their cpuset.cpus to the "
                                               "housekeeping CPUs, or create without exclusivity)");
    if (require) {
      (void)try_write(l.dir + "/cpuset.cpu_exclusive", "0");
      roll_back(l.dir, created, old_cpus);
      fail(why);
    }
    (void)try_write(l.dir + "/cpuset.cpu_exclusive", "0");
    st.note = why;
  }
  PartitionStatus now = partition_status(c);
  now.note = st.note;
  return now;
}

// v2: "isolated" or "root", read back; the kernel's verdict.
std::string set_partition_v2(const std::string& file, const std::string& type) {
  if (try_write(file, type) != 0) return "";
  return read_or(file, "");
}

PartitionStatus create_v2(const PartitionConfig& c, const Layout& l, const CpuList& cpus,
                          bool require, bool isolated) {
  const std::string controllers = read_or(l.top + "/cgroup.controllers", "");
  if ((" " + controllers + " ").find(" cpuset ") == std::string::npos)
    fail("cpu partition: '" + l.top +
         "/cgroup.controllers' does not offer cpuset (hint: the "
         "host does not delegate the cpuset controller here)");
  const std::string control = l.top + "/cgroup.subtree_control";
  if ((" " + read_or(control, "") + " ").find(" cpuset ") == std::string::npos)
    if (int err = try_write(control, "+cpuset"))
      fail("write '" + control + "' = '+cpuset': " + std::strerror(err));
  const bool created = ::mkdir(l.dir.c_str(), 0755) == 0;
  if (!created && errno != EEXIST) throw_errno("mkdir", l.dir);
  const std::string old_cpus = read_or(l.dir + "/cpuset.cpus", "");
  const std::string want = format_cpu_list(cpus);
  if (int err = try_write(l.dir + "/cpuset.cpus", want)) {
    roll_back(l.dir, created, old_cpus);
    fail("write '" + l.dir + "/cpuset.cpus' = '" + want + "': " + std::strerror(err));
  }
  // Linux 6.7+: claim the CPUs for this partition alone (best effort: older kernels lack it).
  (void)try_write(l.dir + "/cpuset.cpus.exclusive", want);
  const std::string file = l.dir + "/cpuset.cpus.partition";
  std::string note;
  std::string got = isolated ? set_partition_v2(file, "isolated") : std::string();
  if (!isolated || got != "isolated") {
    if (isolated)
      note = "isolated refused (" + (got.empty() ? std::string("write failed") : got) + ")";
    got = set_partition_v2(file, "root");
    if (got != "root") {
      note += std::string(note.empty() ? "" : "; ") + "root refused (" +
              (got.empty() ? std::string("write failed") : got) + ")";
      (void)try_write(file, "member");
      const std::string sib = overlapping_siblings(l, c.name, cpus);
      if (!sib.empty()) note += "; sibling cgroups use the same CPUs: " + sib;
      if (require) {
        (void)try_write(l.dir + "/cpuset.cpus.exclusive", "");
        roll_back(l.dir, created, old_cpus);
        fail("cpu partition '" + l.dir + "': " + note);
      }
    }
  }
  PartitionStatus st = partition_status(c);
  st.note = note;
  return st;
}

}  // namespace

PartitionStatus partition_status(const PartitionConfig& c) {
  const Layout l = layout(c);
  PartitionStatus st;
  st.version = l.version;
  st.path = l.dir;
  const CpuList online = online_cpus(c, l);
  st.housekeeping = online;
  if (!is_dir(l.dir)) return st;
  const CpuList cpus = cpus_of(l.dir);
  if (l.version == CgroupVersion::kV1) {
    try {
      st.exclusive = read_or(l.dir + "/cpuset.cpu_exclusive", "0") == "1";
    } catch (const Error&) {
      st.exclusive = false;  // unreadable: nothing guarantees exclusivity
    }
    st.mode = st.exclusive ? "exclusive" : "shared";
    // A runs' parent that merely copied the root's CPUs is no partition.
    st.exists = !cpus.empty() && (st.exclusive || cpus != online);
  } else {
    st.mode = read_or(l.dir + "/cpuset.cpus.partition", "member");
    st.exclusive = st.mode == "root" || st.mode == "isolated";
    st.exists = !cpus.empty();
  }
  if (!st.exists) return st;
  st.cpus = cpus;
  st.housekeeping = cpu_difference(online, cpus);
  return st;
}

PartitionStatus create_partition(const PartitionConfig& c, const CpuList& cpus, bool require,
                                 bool isolated) {
  const Layout l = layout(c);
  const CpuList online = online_cpus(c, l);
  if (cpus.empty()) throw ConfigError("cpu partition: no CPUs given");
  if (!cpu_subset(cpus, online))
    throw ConfigError("cpu partition " + format_cpu_list(cpus) + ": CPU " +
                      format_cpu_list(cpu_difference(cpus, online)) +
                      " is not online (online: " + format_cpu_list(online) + ")");
  if (cpus == online)
    throw ConfigError("cpu partition " + format_cpu_list(cpus) +
                      ": leaves no housekeeping CPU for the system, the runner and QEMU's own "
                      "threads (hint: keep at least one CPU out, e.g. " +
                      format_cpu_list(CpuList(online.begin() + 1, online.end())) + ")");
  return l.version == CgroupVersion::kV1 ? create_v1(c, l, cpus, require)
                                         : create_v2(c, l, cpus, require, isolated);
}

void remove_partition(const PartitionConfig& c) {
  const Layout l = layout(c);
  if (!is_dir(l.dir)) return;
  if (l.version == CgroupVersion::kV1) {
    (void)try_write(l.dir + "/cpuset.cpu_exclusive", "0");
    const std::string all = read_or(l.top + "/cpuset.cpus", "");
    if (int err = try_write(l.dir + "/cpuset.cpus", all); err != 0 && err != ENOENT)
      fail("write '" + l.dir + "/cpuset.cpus' = '" + all + "': " + std::strerror(err));
  } else {
    (void)try_write(l.dir + "/cpuset.cpus.partition", "member");
    (void)try_write(l.dir + "/cpuset.cpus.exclusive", "");
    if (int err = try_write(l.dir + "/cpuset.cpus", ""); err != 0 && err != ENOENT)
      fail("write '" + l.dir + "/cpuset.cpus' = '': " + std::strerror(err));
  }
  // Runs still in it keep the directory (it is their parent): it is emptied of CPUs only.
  (void)::rmdir(l.dir.c_str());
  if (l.version == CgroupVersion::kV1) {
    // Runs made the same parent in every other v1 hierarchy (cpu, memory, pids, ...): empty ones
    // go too (rmdir fails on a cgroup that still has children or tasks).
    const std::string root = root_of(c.root);
    for (const std::string& h : child_dirs(root))
      if (h != "cpuset") (void)::rmdir((root + "/" + h + "/" + c.name).c_str());
  }
}

CpuList run_cpus(const PartitionConfig& c) {
  try {
    const PartitionStatus st = partition_status(c);
    if (st.exists) {
      if (st.version == CgroupVersion::kV2)
        if (auto eff = read_opt(st.path + "/cpuset.cpus.effective"); eff && !eff->empty())
          return parse_cpu_list(*eff, st.path + "/cpuset.cpus.effective");
      return st.cpus;
    }
    const Layout l = layout(c);
    const std::string f =
        l.version == CgroupVersion::kV2 ? "/cpuset.cpus.effective" : "/cpuset.cpus";
    if (auto s = read_opt(l.top + f); s && !s->empty()) return parse_cpu_list(*s, l.top + f);
  } catch (const Error&) {
    // No cgroupfs we can read (rootless, a container): the CPUs this thread may use.
  }
  return thread_affinity(0);
}

}  // namespace benchrun::host
