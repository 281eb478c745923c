// workload.cpp: init's side of starting the workload (the sandbox's spawn.cpp + child_plan.cpp,
// for a guest where init is the only other process).
//
// clone3(2) without a stack behaves like fork(2): the child continues on a copy of this stack and
// runs child_main() on the plan prepared here. With CLONE_INTO_CGROUP (Linux >= 5.7) no process
// of the workload ever exists outside its cgroup, so its limits hold from the first instruction
// and its CPU time and peak memory are counted from there. Setup errors come back over an
// O_CLOEXEC pipe whose EOF means execve succeeded.
#include "init/workload.hpp"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/filter.h>
#include <linux/sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "benchrun/common/error.hpp"
#include "benchrun/common/text.hpp"
#include "init/cgroup.hpp"
#include "init/init_error.hpp"
#include "init/workload_child.hpp"
#include "sandbox/caps.hpp"

namespace benchrun::guest {

namespace {

// Docker's default PATH, used when the environment has none (the sandbox's kDefaultPath).
constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

std::string find_path_variable(const std::vector<std::string>& env) {
  for (const auto& kv : env)
    if (kv.rfind("PATH=", 0) == 0) return kv.substr(5);  // the first, as getenv would
  return kDefaultPath;
}

// argv[0] as execvpe would try it: itself when it contains '/', else PATH entry + "/" + it.
std::vector<std::string> exec_candidates(const std::string& file, const std::string& path) {
  if (file.find('/') != std::string::npos) return {file};
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    size_t end = path.find(':', start);
    std::string dir = path.substr(start, end == std::string::npos ? end : end - start);
    out.push_back(dir.empty() ? file : dir + "/" + file);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

struct Pipe {
  UniqueFd read, write;
};

Pipe make_pipe(const char* what) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) throw_errno("pipe2", what);
  return {UniqueFd(p[0]), UniqueFd(p[1])};
}

// Everything child_main reads, owned here and kept alive across the clone.
class PreparedChild {
 public:
  PreparedChild(const proto::RunConfig& c, const std::string& root, int cap_last) : root_(root) {
    if (c.argv.empty() || c.argv.front().empty())
      throw ConfigError("run config: argv is empty (nothing to execute)");
    if (c.cwd.empty() || c.cwd.front() != '/' || c.cwd.size() >= PATH_MAX)
      throw ConfigError("run config: cwd '" + printable(c.cwd) + "' is not an absolute path");
    if (c.seccomp_bpf.size() % sizeof(sock_filter) != 0 ||
        c.seccomp_bpf.size() / sizeof(sock_filter) > BPF_MAXINSNS)
      throw ConfigError(
          "run config: the seccomp program is not a whole number of instructions "
          "(8 bytes each) or has more than " +
          std::to_string(BPF_MAXINSNS));
    argv_ = c.argv;
    env_ = c.env;
    cwd_ = c.cwd;
    search_path_ = find_path_variable(env_);
    exec_paths_ = exec_candidates(argv_.front(), search_path_);
    for (const auto& r : c.rlimits)
      rlimits_.push_back({static_cast<int>(r.resource), r.soft, r.hard});
    groups_.assign(c.groups.begin(), c.groups.end());
    filter_.resize(c.seccomp_bpf.size() / sizeof(sock_filter));
    if (!filter_.empty()) std::memcpy(filter_.data(), c.seccomp_bpf.data(), c.seccomp_bpf.size());

    for (auto& s : argv_) argv_ptrs_.push_back(s.data());
    argv_ptrs_.push_back(nullptr);
    for (auto& s : env_) env_ptrs_.push_back(s.data());
    env_ptrs_.push_back(nullptr);
    for (auto& s : exec_paths_) exec_path_ptrs_.push_back(s.c_str());

    plan_.root = root_.c_str();
    plan_.rlimits = rlimits_.data();
    plan_.rlimit_count = rlimits_.size();
    plan_.uid = c.uid;
    plan_.gid = c.gid;
    plan_.groups = groups_.data();
    plan_.group_count = groups_.size();
    plan_.cap_last = cap_last;
    if (!filter_.empty()) {
      fprog_.len = static_cast<unsigned short>(filter_.size());
      fprog_.filter = filter_.data();
      plan_.seccomp = &fprog_;
    }
    plan_.cwd = cwd_.c_str();
    plan_.argv = argv_ptrs_.data();
    plan_.envp = env_ptrs_.data();
    plan_.exec_paths = exec_path_ptrs_.data();
    plan_.exec_path_count = exec_path_ptrs_.size();
  }

  ChildPlan& plan() { return plan_; }

  // The child's failure as the sandbox words it (cpp/src/sandbox/spawn.cpp failure_error).
  InitError error(const ChildStatus& rec) const {
    const std::string stage = child_stage_name(rec.stage);
    const std::string cause = std::strerror(rec.err);
    if (static_cast<ChildStage>(rec.stage) == ChildStage::kExec) {
      std::string target = argv_.front();
      if (rec.err != ENOENT && rec.detail >= 0 &&
          static_cast<size_t>(rec.detail) < exec_paths_.size())
        target = exec_paths_[static_cast<size_t>(rec.detail)];
      std::string msg = "exec '" + target + "': " + cause;
      if (rec.err == ENOENT) {
        msg += " in the image";
        if (argv_.front().find('/') == std::string::npos) msg += " (PATH=" + search_path_ + ")";
      }
      return InitError(stage, rec.err, msg);
    }
    std::string object;
    if (static_cast<ChildStage>(rec.stage) == ChildStage::kMaskPaths &&
        child_masked_path(rec.detail))
      object = child_masked_path(rec.detail);
    if (static_cast<ChildStage>(rec.stage) == ChildStage::kReadonlyPaths &&
        child_readonly_path(rec.detail))
      object = child_readonly_path(rec.detail);
    if (static_cast<ChildStage>(rec.stage) == ChildStage::kRlimits && rec.detail >= 0)
      object = "rlimit #" + std::to_string(rec.detail);
    if (static_cast<ChildStage>(rec.stage) == ChildStage::kWorkdir ||
        static_cast<ChildStage>(rec.stage) == ChildStage::kChdir)
      object = cwd_;
    return InitError(stage, rec.err,
                     "guest setup failed at '" + stage + "'" +
                         (object.empty() ? "" : " ('" + printable(object) + "')") + ": " + cause);
  }

 private:
  std::string root_;
  std::vector<std::string> argv_, env_, exec_paths_;
  std::string cwd_, search_path_;
  std::vector<ChildRlimit> rlimits_;
  std::vector<gid_t> groups_;
  std::vector<sock_filter> filter_;
  sock_fprog fprog_{};
  std::vector<char*> argv_ptrs_, env_ptrs_;
  std::vector<const char*> exec_path_ptrs_;
  ChildPlan plan_;
};

// A record if the child reported one; false at EOF (it exec'd, or died without a word).
bool read_status(int fd, ChildStatus& rec) {
  auto* out = reinterpret_cast<char*>(&rec);
  size_t got = 0;
  while (got < sizeof rec) {
    ssize_t n = ::read(fd, out + got, sizeof rec - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno("read", "workload status pipe");
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  if (got != 0 && got != sizeof rec)
    throw InitError("spawn", 0, "workload setup: truncated status record");
  return got != 0;
}

void reap(pid_t pid) noexcept {
  int status;
  while (::waitpid(pid, &status, __WALL) < 0 && errno == EINTR) {
  }
}

}  // namespace

Workload start_workload(const proto::RunConfig& config, const std::string& root,
                        const WorkloadCgroup* cgroup) {
  PreparedChild prepared(config, root, sandbox::read_cap_last_cap());
  UniqueFd devnull(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!devnull) throw_errno("open", "/dev/null");
  Pipe out = make_pipe("workload stdout"), err = make_pipe("workload stderr");
  Pipe status = make_pipe("workload status");
  // The workload's user owns its ends of the pipes, so /dev/stdout and /dev/stderr (reopened
  // through /proc/self/fd) work for a non-root user too.
  for (int fd : {out.write.get(), err.write.get()})
    if (::fchown(fd, config.uid, config.gid) != 0) throw_errno("chown", "workload output pipe");
  ChildPlan& plan = prepared.plan();
  plan.status_fd = status.write.get();
  plan.devnull_fd = devnull.get();
  plan.stdout_fd = out.write.get();
  plan.stderr_fd = err.write.get();

  clone_args args;
  std::memset(&args, 0, sizeof args);
  args.flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWCGROUP |
               (cgroup ? CLONE_INTO_CGROUP : 0);
  args.exit_signal = SIGCHLD;
  if (cgroup) args.cgroup = static_cast<uint64_t>(cgroup->dir_fd());
  long pid = ::syscall(SYS_clone3, &args, sizeof args);
  if (pid < 0) throw_errno("clone3", "workload");
  if (pid == 0) child_main(plan);

  status.write.reset();
  out.write.reset();
  err.write.reset();
  ChildStatus rec{};
  bool failed;
  try {
    failed = read_status(status.read.get(), rec);
  } catch (...) {
    ::kill(static_cast<pid_t>(pid), SIGKILL);
    reap(static_cast<pid_t>(pid));
    throw;
  }
  if (failed) {
    reap(static_cast<pid_t>(pid));
    throw prepared.error(rec);
  }
  Workload w;
  w.pid = static_cast<pid_t>(pid);
  w.stdout_fd = std::move(out.read);
  w.stderr_fd = std::move(err.read);
  w.exec_time = std::chrono::steady_clock::now();
  return w;
}

}  // namespace benchrun::guest
