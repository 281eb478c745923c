// oci_backend.cpp: the "runc", "runsc", "crun" and "oci" (--runtime PATH) backends: the workload in
// a container of an OCI runtime, from a bundle benchrun writes (run/oci_bundle.cpp).
//
// Design note. The bundle's rootfs is an overlay mounted on the host over the image's cached tree
// (the lower layer, never written) with upper/work in the run dir; /tmp is a size-bounded tmpfs
// mounted on the host at rootfs/tmp and bound into the container, so output files under /tmp are
// still readable after the container is gone. The network namespace is made here (a thread
// unshares one and brings lo up) and handed to the runtime by path: loopback only, on every
// runtime (runc and crun would leave lo down in a namespace of their own). The cgroup is the
// run's own (run/run_cgroup.cpp), created before the runtime with the same limits and given to it
// as cgroupsPath, so the runtime joins it and benchrun reads CPU time, peak memory and OOM kills
// from it as for the sandbox (and kills through it, whatever the runtime does).
//
// The runtime is driven with `run` (create + start + wait + delete in one process, benchrun's
// child): its exit status is the container process's, which `create`/`start` would make the
// runtime's grandchild, orphaned to whoever is the subreaper (containerd's shim exists for this).
// `--pid-file` tells a container that started from a runtime that failed. Timeouts and
// interrupts use `kill <id> KILL` and the cgroup; `delete --force` runs when state is left. The
// run dir records the runtime and the id ("oci-runtime"), so sweep() can `delete --force` a
// killed runner's container and detach its mounts.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <thread>

#include "benchrun/common/dir.hpp"
#include "benchrun/common/error.hpp"
#include "benchrun/common/fs.hpp"
#include "benchrun/common/mount.hpp"
#include "benchrun/common/subprocess.hpp"
#include "benchrun/run/backend.hpp"
#include "run/capture.hpp"
#include "run/limits.hpp"
#include "run/oci_bundle.hpp"
#include "run/oci_runtime.hpp"
#include "run/outputs.hpp"
#include "run/process_config.hpp"
#include "run/run_cgroup.hpp"
#include "run/run_common.hpp"
#include "sandbox/child.hpp"

extern char** environ;

namespace benchrun::run {

namespace {

constexpr const char* kStateFile = "oci-runtime";  // in the run dir: kind, path, id (for sweep)
constexpr const char* kChild = "container";
constexpr uint64_t kRunscMinPids = 128;  // the runtime's cgroup, in the run's

// v1: the runtime also makes the container's cgroup in hierarchies benchrun does not use
// (devices, blkio, ...), and removes only the leaf: remove the run's directories there too.
void remove_runtime_cgroups(const std::string& root, const std::string& rel) noexcept {
  try {
    for (const auto& h : list_dir_if_exists(root)) {
      const std::string d = root + "/" + h + "/" + rel;
      ::rmdir((d + "/" + kChild).c_str());
      ::rmdir(d.c_str());
    }
  } catch (...) {
  }
}

// A network namespace with only lo, up, held by the returned fd: a thread unshares its own (a
// per-thread change), brings lo up and opens it.
UniqueFd make_loopback_netns() {
  int fd = -1, err = 0;
  const char* step = "unshare(CLONE_NEWNET)";
  std::thread([&] {
    if (::unshare(CLONE_NEWNET) != 0) {
      err = errno;
      return;
    }
    if ((err = sandbox::bring_loopback_up()) != 0) {
      step = "bring up lo";
      return;
    }
    fd = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      err = errno;
      step = "open";
    }
  }).join();
  if (fd < 0)
    throw SandboxError(
        std::string(step) + " 'network namespace': " + std::strerror(err) + " (hint: run as root)",
        "network");
  return UniqueFd(fd);
}

// The runtime's global flags, then the subcommand's.
std::vector<std::string> runtime_argv(const OciRuntime& rt, const std::string& state,
                                      std::vector<std::string> tail) {
  std::vector<std::string> argv = {rt.path, "--root", state};
  if (rt.kind == "runsc") {
    // --oci-seccomp: apply the bundle's seccomp inside the sandbox (runsc ignores it otherwise);
    // --network none: gVisor's netstack with loopback only (runsc refuses to configure its
    // netstack from a namespace it did not make itself).
    for (const char* a : {"--oci-seccomp", "--network", "none"}) argv.emplace_back(a);
    argv.push_back("--platform");
    argv.push_back(rt.platform);
  }
  argv.insert(argv.end(), tail.begin(), tail.end());
  return argv;
}

// `<runtime> --root state delete --force id`, bounded; true if it succeeded.
bool force_delete(const std::string& kind, const std::string& path, const std::string& state,
                  const std::string& id) noexcept {
  try {
    OciRuntime rt{kind, path, "", kind == "runsc" ? "ptrace" : ""};
    SubprocessOptions o;
    o.timeout = std::chrono::seconds(10);
    return run_subprocess(runtime_argv(rt, state, {"delete", "--force", id}), o).ok();
  } catch (...) {
    return false;
  }
}

bool dir_has_entries(const std::filesystem::path& p) {
  std::error_code ec;
  return std::filesystem::exists(p, ec) && !std::filesystem::is_empty(p, ec);
}

class OciExecution final : public Execution {
 public:
  // 1. Prepare: the runtime checked, the bundle written, rootfs mounted, cgroup made.
  OciExecution(const RunContext& ctx, RunResult& r, OciRuntime rt)
      : spec_(ctx.spec),
        interrupt_(ctx.interrupt),
        dir_(make_run_dir(ctx)),
        id_(ctx.name),
        rt_(std::move(rt)) {
    const std::filesystem::path& d = dir_.path();
    UniqueFd image_root = open_file(ctx.image.rootfs, O_PATH | O_DIRECTORY);
    BundlePlan plan;
    plan.process = resolve_process(ctx.image.config, spec_, image_root.get());
    for (const auto& o : spec_.outputs) outputs_.push_back(checked_image_path(o, "output path"));
    plan.limits = resolve_limits(spec_, host_memory_bytes(ctx.host.meminfo));
    plan.limits.disk.value = std::nullopt;  // validate() refused an explicit one
    {
      std::ofstream f(d / kStateFile);
      f << rt_.kind << "\n" << rt_.path << "\n" << id_ << "\n";
      if (!f) throw_errno("write", (d / kStateFile).string());
    }
    cgroup_ = create_cgroup(ctx.host, ctx.name, spec_, plan.limits, false, r);
    // The container's cgroup is a child of the run's: the runtime removes its own at exit, the
    // run's keeps the (hierarchical) counters for collect(). The memory limit is the run's only,
    // so an OOM kill happens, and is counted, there.
    if (cgroup_) plan.cgroups_path = "/" + ctx.host.cgroup.parent + "/" + ctx.name + "/" + kChild;
    plan.cgroup = cpu_limits(spec_);
    cgroup_root_ = ctx.host.cgroup.root;
    cgroup_rel_ = ctx.host.cgroup.parent + "/" + ctx.name;

    for (const char* sub : {"upper", "work", "rootfs", "state"}) make_dirs(d / sub);
    rootfs_ = (d / "rootfs").string();
    root_mount_ =
        Mount::make("overlay", rootfs_, "overlay", 0,
                    "lowerdir=" + ctx.image.rootfs + ",upperdir=" + (d / "upper").string() +
                        ",workdir=" + (d / "work").string());
    const std::string tmp = rootfs_ + "/tmp";
    if (::mkdir(tmp.c_str(), 01777) != 0 && errno != EEXIST) throw_errno("mkdir", tmp);
    tmp_mount_ = Mount::make("tmpfs", tmp, "tmpfs", MS_NOSUID | MS_NODEV,
                             "mode=1777,size=" + std::to_string(plan.limits.tmpfs));
    plan.rootfs = rootfs_;
    plan.tmp_source = tmp;
    if (rt_.kind != "runsc") {
      netns_ = make_loopback_netns();
      plan.netns_path =
          "/proc/" + std::to_string(::getpid()) + "/fd/" + std::to_string(netns_.get());
    }
    plan.hostname = spec_.hostname;
    plan.nofile = spec_.nofile;
    {
      std::ofstream f(d / "config.json");
      f << make_oci_config(plan).dump();
      if (!f) throw_errno("write", (d / "config.json").string());
    }
    record_limits(plan.limits, spec_, r);

    auto [out_r, out_w] = make_capture_pipe();
    auto [err_r, err_w] = make_capture_pipe();
    out_ = CapturedStream{std::move(out_r), OutputFile(d, spec_.max_output_bytes)};
    err_ = CapturedStream{std::move(err_r), OutputFile(d, spec_.max_output_bytes)};
    out_w_ = std::move(out_w);
    err_w_ = std::move(err_w);
    state_ = (d / "state").string();
    pid_file_ = (d / "container.pid").string();
    argv_ =
        runtime_argv(rt_, state_, {"run", "--bundle", d.string(), "--pid-file", pid_file_, id_});

    r.facts["oci_runtime"] = rt_.kind == "oci" ? rt_.path : rt_.kind;
    r.facts["oci_runtime_path"] = rt_.path;
    r.facts["oci_runtime_version"] = rt_.version;
    if (!rt_.platform.empty()) r.facts["runsc_platform"] = rt_.platform;
  }

  ~OciExecution() override {
    // Processes first (the runtime, then whatever is left in the cgroup), then the runtime's
    // state (only when `run` did not delete it: it was killed), then mounts, cgroup, run dir.
    if (pid_ > 0 && !reaped_) {
      kill_container();
      ::kill(pid_, SIGKILL);
      int st;
      while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
      }
    }
    if (dir_has_entries(state_)) force_delete(rt_.kind, rt_.path, state_, id_);
    if (cgroup_) cgroup_->destroy();
    if (!cgroup_root_.empty()) remove_runtime_cgroups(cgroup_root_, cgroup_rel_);
    // The mounts leave the host's mount table here (a run that returned has left nothing
    // behind), but the kernel tears the overlay down at the last reference, 10-50 ms on a loaded
    // host: an O_PATH fd of each, taken first, keeps them until a thread of their own closes it
    // (the sandbox's release_mounts does the same with its namespace).
    std::vector<UniqueFd> last_refs;
    for (Mount* m : {&tmp_mount_, &root_mount_})
      if (!m->target().empty()) {
        int fd = ::open(m->target().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (fd >= 0) last_refs.emplace_back(fd);
        m->detach();
      }
    try {
      std::thread([refs = std::move(last_refs), ns = std::move(netns_)]() mutable {
        refs.clear();
        ns.reset();
      }).detach();
    } catch (...) {
      // No thread: the references are dropped here, inline.
    }
    ::chmod((dir_.path() / "work" / "work").c_str(), 0700);
  }

  // 2. Start: `<runtime> run` as our child, its stdio the capture pipes (no terminal).
  void start() override {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out_w_.get(), 1);
    posix_spawn_file_actions_adddup2(&fa, err_w_.get(), 2);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    std::vector<char*> av;
    for (auto& a : argv_) av.push_back(a.data());
    av.push_back(nullptr);
    start_time_ = unix_now();
    t_exec_ = Clock::now();
    pid_t pid = -1;
    const int rc = ::posix_spawn(&pid, argv_[0].c_str(), &fa, &attr, av.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) throw_errno(rc, "exec", argv_[0]);
    pid_ = pid;
    const int pfd = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
    if (pfd < 0) throw_errno("pidfd_open", argv_[0]);
    pidfd_ = UniqueFd(pfd);
    out_w_.reset();
    err_w_.reset();
  }

  // 3. Run: drain output until the runtime exits or the deadline; kill the container either way.
  void wait() override {
    outcome_ = capture_until_exit(
        out_, err_, pidfd_.get(), deadline_after(t_exec_, spec_.timeout),
        [this] { kill_container(); }, interrupt_);
    while (::waitpid(pid_, &status_, 0) < 0 && errno == EINTR) {
    }
    reaped_ = true;
  }

  // 4. Collect: status (the runtime's exit status is the container's), output, metrics, files.
  void collect(RunResult& r) override {
    const bool started = ::access(pid_file_.c_str(), F_OK) == 0;
    if (!started && !outcome_.timed_out && !outcome_.interrupted)
      throw SandboxError(rt_.kind + " '" + rt_.path + "' failed to create the container (" +
                             status_text() + "): " + tail(err_.data.str()),
                         "oci-runtime");
    record_capture(out_, err_, outcome_, t_exec_, start_time_, r);
    if (WIFEXITED(status_)) {
      const int code = WEXITSTATUS(status_);
      // Runtimes report a container killed by signal N as exit status 128 + N.
      // (A workload exiting with such a status itself reads as that signal: the runtimes do not
      // tell the two apart.)
      if (code > 128 && code <= 128 + 64)
        r.signal = code - 128;
      else
        r.exit_code = code;
    } else if (WIFSIGNALED(status_)) {
      r.signal = WTERMSIG(status_);
    }
    if (cgroup_) {
      cgroup_->kill_all();
      const host::CgroupMetrics m = cgroup_->metrics();
      record_cgroup_metrics(m, r);
      // v1 counts an OOM kill only in the killed process's own cgroup, the container's, which
      // the runtime removed at exit: a SIGKILL after the run's memory limit was hit is one too.
      r.oom_killed = r.oom_killed || (r.signal == SIGKILL && !r.timed_out && !r.interrupted &&
                                      m.memory_limit_hits > 0);
    }
    UniqueFd root = open_file(rootfs_, O_PATH | O_DIRECTORY);
    collect_outputs(root.get(), spec_, outputs_, r);
  }

 private:
  // Ends the container while `run` still waits for it (a deadline or an interrupt): the
  // runtime's `kill`, then the cgroup (a runtime that did not act). Once `run` has exited the
  // runtime has ended the container itself; gVisor's sandbox may still be writing the last of
  // its output into the pipes then, so nothing is killed here (the capture's drain grace bounds
  // the wait; collect() and the destructor empty the cgroup). Never throws.
  void kill_container() noexcept {
    siginfo_t si{};
    const bool running =
        pid_ > 0 && !reaped_ &&
        ::waitid(P_PID, static_cast<id_t>(pid_), &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
        si.si_pid == 0;
    if (!running) return;
    {
      try {
        SubprocessOptions o;
        o.timeout = std::chrono::seconds(5);
        run_subprocess(runtime_argv(rt_, state_, {"kill", id_, "KILL"}), o);
      } catch (...) {
      }
    }
    try {
      if (cgroup_) cgroup_->kill_all();
    } catch (...) {
    }
  }

  std::string status_text() const {
    if (WIFEXITED(status_)) return "exit status " + std::to_string(WEXITSTATUS(status_));
    if (WIFSIGNALED(status_)) return "killed by signal " + std::to_string(WTERMSIG(status_));
    return "status " + std::to_string(status_);
  }

  static std::string tail(const std::string& s) {
    std::string t = s.size() > 600 ? s.substr(s.size() - 600) : s;
    while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
    for (char& c : t)
      if (c == '\n') c = ' ';
    return t.empty() ? "no message" : t;
  }

  const RunSpec& spec_;
  Interrupt interrupt_;
  TempDir dir_;  // declared first: everything below lives in it
  std::string id_;
  OciRuntime rt_;
  std::vector<std::string> outputs_;
  std::optional<host::Cgroup> cgroup_;
  Mount root_mount_, tmp_mount_;
  UniqueFd netns_;
  std::string rootfs_, state_, pid_file_;
  std::string cgroup_root_, cgroup_rel_;
  std::vector<std::string> argv_;
  CapturedStream out_, err_;
  UniqueFd out_w_, err_w_;
  pid_t pid_ = -1;
  UniqueFd pidfd_;
  bool reaped_ = false;
  Clock::time_point t_exec_;
  double start_time_ = 0;
  CaptureOutcome outcome_;
  int status_ = 0;
};

class OciBackend final : public Backend {
 public:
  explicit OciBackend(std::string kind) : kind_(std::move(kind)) {}
  std::string name() const override { return kind_; }

  void validate(const RunSpec& spec) const override {
    if (spec.rootless.value_or(::geteuid() != 0))
      throw ConfigError("backend '" + kind_ +
                        "': needs root (the runtime mounts the rootfs and makes the cgroup; "
                        "rootless OCI runtimes are not supported yet): use --backend sandbox");
    if (spec.disk && *spec.disk != kUnlimited)
      throw ConfigError("disk: not supported by backend '" + kind_ +
                        "' (the writable layer has no size limit there; omit --disk or use "
                        "--backend sandbox)");
    if (spec.network) throw ConfigError("network: backend '" + kind_ + "' is loopback only");
    // The runtime starts the workload, so benchrun cannot open counters on it before its exec
    // nor bind the Valgrind tools into its root: both are sandbox (and vm) features so far.
    if (!spec.secrets.empty())
      throw ConfigError("secrets: backend '" + kind_ +
                        "' does not deliver secrets yet (use --backend sandbox)");
    if (spec.init)
      throw ConfigError("init: backend '" + kind_ +
                        "' runs the workload as the runtime's PID 1 (use --backend sandbox)");
    if (!spec.instructions.empty())
      throw ConfigError("instructions: backend '" + kind_ +
                        "' does not count instructions (use --backend sandbox; see "
                        "docs/instructions.md)");
    if (spec.counters && !spec.counters->empty() && *spec.counters != Strings{"none"})
      throw ConfigError("counters: backend '" + kind_ +
                        "' does not open performance counters (use --backend sandbox or vm; see "
                        "docs/counters.md)");
    // gVisor's sandbox (the Sentry, its gofer threads) runs in the container's cgroup: a pids
    // limit counts its host threads, not the workload's processes, and a small one stops it.
    if (kind_ == "runsc" && spec.pids_limit && *spec.pids_limit < kRunscMinPids)
      throw ConfigError("pids_limit " + std::to_string(*spec.pids_limit) +
                        ": backend 'runsc' needs at least " + std::to_string(kRunscMinPids) +
                        " (the limit counts gVisor's own host threads); use runc or the sandbox "
                        "for a tight process limit");
  }

  std::string unavailable(const HostConfig& host) const override {
    if (kind_ == "oci") return "backend 'oci' drives the runtime given with --runtime";
    try {
      find_oci_runtime(kind_, RunSpec{}, host);
      return {};
    } catch (const RuntimeUnavailable& e) {
      return e.what();
    }
  }

  std::unique_ptr<Execution> prepare(const RunContext& ctx, RunResult& r) const override {
    OciRuntime rt = find_oci_runtime(kind_, ctx.spec, ctx.host);
    return std::make_unique<OciExecution>(ctx, r, std::move(rt));
  }

  // A killed runner's containers, mounts and cgroups: the common sweep does it all (see
  // sweep_oci_run_dir below), whichever backend's run triggers it.
  int sweep(const HostConfig& host) const override { return sweep_stale_runs(host); }

 private:
  std::string kind_;
};

}  // namespace

void sweep_oci_run_dir(const HostConfig& host, const std::filesystem::path& d) {
  std::ifstream f(d / kStateFile);
  std::string kind, path, id;
  if (!std::getline(f, kind) || !std::getline(f, path) || !std::getline(f, id)) return;
  if (dir_has_entries(d / "state")) force_delete(kind, path, (d / "state").string(), id);
  detach_mounts_under(d.string());
  remove_runtime_cgroups(host.cgroup.root, host.cgroup.parent + "/" + id);
}

std::unique_ptr<Backend> make_runc_backend() { return std::make_unique<OciBackend>("runc"); }
std::unique_ptr<Backend> make_runsc_backend() { return std::make_unique<OciBackend>("runsc"); }
std::unique_ptr<Backend> make_crun_backend() { return std::make_unique<OciBackend>("crun"); }
std::unique_ptr<Backend> make_oci_backend() { return std::make_unique<OciBackend>("oci"); }

}  // namespace benchrun::run
