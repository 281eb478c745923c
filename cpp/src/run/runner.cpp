// runner.cpp: one sandboxed run, in order: prepare -> start -> run -> collect -> clean up.
// Only the steps are listed here; each lives in its own component (STYLE.md rule 1).
#include "benchrun/run/runner.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <chrono>
#include <optional>
#include <random>

#include "benchrun/common/error.hpp"
#include "benchrun/common/fs.hpp"
#include "benchrun/common/scope_exit.hpp"
#include "benchrun/sandbox/seccomp.hpp"
#include "benchrun/sandbox/spawn.hpp"
#include "run/capture.hpp"
#include "run/process_config.hpp"
#include "run/run_common.hpp"

namespace benchrun::run {

namespace {

std::pair<UniqueFd, UniqueFd> make_pipe() {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) throw_errno("pipe", "workload output");
  return {UniqueFd(p[0]), UniqueFd(p[1])};
}

// Reads output files through the run's root, after the workload exited. Symlinks resolve inside
// the root; only regular files on the run's own filesystems (overlay, tmpfs) are read.
void collect_outputs(int rootfd, const RunSpec& spec, const std::vector<std::string>& paths,
                     RunResult& r) {
  std::vector<char> buf(1 << 20);
  for (const auto& path : paths) {
    if (r.outputs.size() >= spec.max_files) {
      r.missing_outputs[path] = "more than " + std::to_string(spec.max_files) + " output files";
      continue;
    }
    struct open_how how {};
    how.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    int fd = static_cast<int>(::syscall(SYS_openat2, rootfd, path.c_str() + 1, &how, sizeof how));
    if (fd < 0) {
      r.missing_outputs[path] = std::strerror(errno);
      continue;
    }
    UniqueFd f(fd);
    struct stat st {};
    struct statfs sfs {};
    if (::fstat(fd, &st) != 0 || ::fstatfs(fd, &sfs) != 0) {
      r.missing_outputs[path] = std::strerror(errno);
      continue;
    }
    if (!S_ISREG(st.st_mode)) {
      r.missing_outputs[path] = "not a regular file";
      continue;
    }
    if (sfs.f_type == PROC_SUPER_MAGIC || sfs.f_type == SYSFS_MAGIC) {
      r.missing_outputs[path] = "resolves into /proc or /sys";
      continue;
    }
    if (static_cast<uint64_t>(st.st_size) > spec.max_file_bytes) {
      r.missing_outputs[path] = "larger than the limit of " + std::to_string(spec.max_file_bytes) + " bytes";
      continue;
    }
    std::string data;
    for (;;) {
      ssize_t n = ::read(fd, buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      if (data.size() + static_cast<size_t>(n) > spec.max_file_bytes) break;
      data.append(buf.data(), static_cast<size_t>(n));
    }
    r.outputs[path] = std::move(data);
  }
}

// The limits a run asked for, by name ("memory limit", "pids and cpus limits"), for the rootless
// error message.
std::string requested_limits(const host::CgroupLimits& l) {
  std::vector<std::string> names;
  if (l.memory_bytes) names.push_back("memory");
  if (l.pids_max) names.push_back("pids");
  if (!l.cpuset_cpus.empty()) names.push_back("cpus");
  if (l.cpu_quota_us) names.push_back("cpu quota");
  std::string out;
  for (size_t i = 0; i < names.size(); ++i)
    out += (i == 0 ? "" : i + 1 == names.size() ? " and " : ", ") + names[i];
  return names.empty() ? out : out + (names.size() == 1 ? " limit needs" : " limits need");
}

// The run's cgroup. Rootless, creating one works only in a subtree delegated to the user: without
// it the run goes on with none (and a notice) unless a limit needs one.
std::optional<host::Cgroup> create_cgroup(const RunSpec& spec, const std::string& name,
                                             const host::CgroupLimits& limits, bool rootless,
                                             RunResult& r) {
  try {
    return host::Cgroup::create(spec.cgroup, name, limits);
  } catch (const host::CgroupAccessDenied& e) {
    if (!rootless) throw;
    const std::string wanted = requested_limits(limits);
    if (!wanted.empty())
      throw SandboxError(
          "the " + wanted + " a cgroup, which this user cannot create: " + e.what(), "cgroup");
    r.notices.push_back("no cgroup (this user cannot create one under '" + spec.cgroup.root +
                        "'): limits, OOM detection and cgroup metrics are unavailable; CPU time "
                        "and peak memory come from wait4 (run as root or delegate a cgroup v2 "
                        "subtree)");
    return std::nullopt;
  }
}

// Kills every process of the run: through its cgroup, or without one by SIGKILLing the workload,
// init of its pid namespace, whose death kills everything else in it.
void kill_run_tree(std::optional<host::Cgroup>& cgroup, const sandbox::SandboxedChild& child) {
  if (cgroup) return cgroup->kill_all();
  ::syscall(SYS_pidfd_send_signal, child.pidfd(), SIGKILL, nullptr, 0);
}


}  // namespace

RunResult run_sandbox(const oci::ImageConfig& image, const std::string& rootfs, const RunSpec& spec) {
  RunResult r;
  const auto t_prepare = Clock::now();

  // 1. Prepare: everything validated and allocated before any process exists.
  UniqueFd image_root = open_file(rootfs, O_PATH | O_DIRECTORY);
  ProcessConfig proc = resolve_process(image, spec, image_root.get());
  std::vector<std::string> outputs;
  for (const auto& o : spec.outputs) outputs.push_back(checked_image_path(o, "output path"));
  if (spec.timeout_s < 0) throw ConfigError("timeout must not be negative");

  const std::string name = run_name();
  make_dirs(spec.run_dir);
  TempDir dir(spec.run_dir, name + "-");
  for (const char* sub : {"upper", "work", "merged"}) make_dirs(dir.path() / sub);
  // overlayfs leaves <workdir>/work mode 000: only root could remove it as it is.
  ScopeExit unlock_workdir{[&dir] { ::chmod((dir.path() / "work" / "work").c_str(), 0700); }};

  host::CgroupLimits limits;
  limits.memory_bytes = spec.memory_bytes;
  limits.pids_max = spec.pids_limit;
  limits.cpuset_cpus = cpu_list(spec.cpus);
  if (spec.cpu_quota) {
    if (*spec.cpu_quota <= 0) throw ConfigError("cpu quota must be positive");
    limits.cpu_quota_us = static_cast<uint64_t>(*spec.cpu_quota * static_cast<double>(limits.cpu_period_us));
  }
  const bool rootless = spec.rootless.value_or(::geteuid() != 0);
  std::optional<host::Cgroup> cgroup = create_cgroup(spec, name, limits, rootless, r);

  auto [out_r, out_w] = make_pipe();
  auto [err_r, err_w] = make_pipe();
  // The workload's user owns its end of the pipes, so /dev/stdout and /dev/stderr (which reopen
  // them through /proc/self/fd) work for a non-root user too. (Rootless: ours, i.e. root's inside.)
  for (int fd : {out_w.get(), err_w.get()})
    if (!rootless && ::fchown(fd, proc.uid, proc.gid) != 0)
      throw_errno("chown", "workload output pipe");
  sandbox::SpawnSpec ss;
  ss.lowerdir = rootfs;
  ss.upperdir = (dir.path() / "upper").string();
  ss.workdir = (dir.path() / "work").string();
  ss.merged = (dir.path() / "merged").string();
  ss.argv = proc.argv;
  ss.env = proc.env;
  ss.cwd = proc.cwd;
  ss.uid = proc.uid;
  ss.gid = proc.gid;
  ss.groups = proc.groups;
  ss.user_namespace = rootless;
  if (rootless &&
      std::any_of(proc.groups.begin(), proc.groups.end(), [](gid_t g) { return g != 0; }))
    r.notices.push_back("supplementary groups of the image's user are not set: a user namespace "
                        "without root cannot set them (run as root)");
  ss.hostname = spec.hostname;
  ss.rlimits = {{RLIMIT_NOFILE, spec.nofile, spec.nofile}, {RLIMIT_CORE, 0, 0}};
  ss.seccomp = sandbox::build_seccomp_program();
  ss.cgroup_fd = cgroup ? cgroup->dir_fd() : -1;
  ss.stdout_fd = out_w.get();
  ss.stderr_fd = err_w.get();
  ss.network = spec.network;
  r.phases.prepare_s = since(t_prepare);

  // 2. Start: clone into namespaces (and the v2 cgroup), v1 cgroup join, release to exec.
  const auto t_start = Clock::now();
  sandbox::SandboxedChild child = sandbox::spawn_sandboxed(ss);
  out_w.reset();
  err_w.reset();
  // Holding the mount namespace keeps the run's mounts (overlay, /tmp tmpfs) readable for output
  // collection after the workload exits; closing it frees them, also if we are killed.
  UniqueFd mount_ns = open_file("/proc/" + std::to_string(child.pid()) + "/ns/mnt", O_RDONLY);
  if (cgroup && cgroup->version() == host::CgroupVersion::kV1) cgroup->add_process(child.pid());
  child.release();
  const auto t_exec = Clock::now();
  r.start_time = unix_now();
  r.phases.start_s = std::chrono::duration<double>(t_exec - t_start).count();

  // 3. Run: drain output until exit or deadline; the whole run tree is killed either way.
  CapturedStream out{std::move(out_r), spec.max_output_bytes};
  CapturedStream err{std::move(err_r), spec.max_output_bytes};
  Clock::time_point deadline =
      spec.timeout_s > 0
          ? t_exec + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(spec.timeout_s))
          : Clock::time_point::max();
  CaptureOutcome outcome =
      capture_until_exit(out, err, child.pidfd(), deadline, [&] { kill_run_tree(cgroup, child); },
                         spec.interrupted);
  int status = child.wait();
  r.end_time = r.start_time + std::chrono::duration<double>(outcome.exited_at - t_exec).count();
  r.wall_s = std::chrono::duration<double>(outcome.exited_at - t_exec).count();
  r.phases.run_s = r.wall_s;
  r.timed_out = outcome.timed_out;
  r.interrupted = outcome.interrupted;
  if (WIFEXITED(status)) {
    r.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    r.signal = WTERMSIG(status);
  }
  r.stdout_data = std::move(out.data);
  r.stderr_data = std::move(err.data);
  r.stdout_truncated = out.truncated;
  r.stderr_truncated = err.truncated;

  // 4. Collect: cgroup metrics and output files, then release every resource of the run.
  const auto t_collect = Clock::now();
  kill_run_tree(cgroup, child);
  if (cgroup) {
    host::CgroupMetrics m = cgroup->metrics();
    r.cpu_user_s = static_cast<double>(m.cpu_user_ns) / 1e9;
    r.cpu_system_s = static_cast<double>(m.cpu_system_ns) / 1e9;
    r.peak_memory_bytes = m.memory_peak_bytes;
    r.oom_killed = m.oom_kills > 0;
  } else {  // the workload and what it reaped (the whole pid namespace, whose init it was)
    r.cpu_user_s = seconds(child.rusage().ru_utime);
    r.cpu_system_s = seconds(child.rusage().ru_stime);
    r.peak_memory_bytes = static_cast<uint64_t>(child.rusage().ru_maxrss) * 1024;  // KiB
  }
  collect_outputs(child.root_fd(), spec, outputs, r);
  UniqueFd root = child.take_root_fd();
  root.reset();
  mount_ns.reset();
  if (cgroup) cgroup->destroy();
  r.phases.collect_s = since(t_collect);
  return r;  // dir (upper/work) is removed by its destructor
}

int cleanup_leftovers(const std::string& run_dir, const host::CgroupConfig& cgroup) {
  int removed = host::cleanup_stale_cgroups(cgroup);
  DIR* d = ::opendir(run_dir.c_str());
  if (!d) return removed;
  std::vector<std::string> stale;
  while (struct dirent* de = ::readdir(d)) {
    std::string n = de->d_name;
    if (n.rfind("run-", 0) != 0) continue;
    long pid = std::strtol(n.c_str() + 4, nullptr, 10);
    if (pid > 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM)) continue;
    stale.push_back(n);
  }
  ::closedir(d);
  for (const auto& n : stale) {
    try {
      remove_tree(std::filesystem::path(run_dir) / n);
      ++removed;
    } catch (const Error&) {
      // Left for the next start; never fail a run over someone else's debris.
    }
  }
  return removed;
}

}  // namespace benchrun::run
