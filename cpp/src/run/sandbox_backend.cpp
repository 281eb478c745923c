// sandbox_backend.cpp: the "sandbox" backend: the workload in namespaces + cgroup + seccomp on this
// host, over an overlay of the image's cached tree. Only the steps are listed here; each lives in
// its own component (STYLE.md rule 1): sandbox/ (spawn, mounts, caps, seccomp), host/ (cgroup),
// run/capture (output and deadline), run/process_config (Docker's process semantics).
#include "benchrun/run/backend.hpp"

#include <fcntl.h>
#include <string.h>
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
#include <chrono>
#include <cstring>
#include <optional>
#include <thread>

#include "benchrun/common/error.hpp"
#include "benchrun/common/fs.hpp"
#include "benchrun/host/cpus.hpp"
#include "benchrun/host/scratch_fs.hpp"
#include "benchrun/perf/counters.hpp"
#include "benchrun/sandbox/idmap.hpp"
#include "benchrun/sandbox/seccomp.hpp"
#include "benchrun/sandbox/spawn.hpp"
#include "run/capture.hpp"
#include "run/instructions.hpp"
#include "run/limits.hpp"
#include "run/outputs.hpp"
#include "run/run_cgroup.hpp"
#include "run/process_config.hpp"
#include "run/run_common.hpp"

namespace benchrun::run {

namespace {

// Drops the last references to a finished run's mounts (the root fd, the mount namespace, the
// upper filesystem) on a thread of their own: the kernel unmounts the overlay and the ext4 below
// it, lets the loop device go and frees the image's blocks in the context of whoever closes the
// last fd, and that took 10-100 ms on a loaded host (more with the store mounted -o discard), after
// the run has ended. Nothing of it is visible to the host meanwhile (the mounts are in no
// namespace of its); a process exiting first closes them itself.
void release_mounts(UniqueFd root, UniqueFd mount_ns, std::optional<host::ScratchFs> scratch) {
  try {
    std::thread([root = std::move(root), ns = std::move(mount_ns),
                 fs = std::move(scratch)]() mutable {
      root.reset();
      ns.reset();
      fs.reset();
    }).detach();
  } catch (...) {
    // No thread: the captures were not moved (or are destroyed here, inline).
  }
}

// --init's binary must exist before anything is created (a clear error, not a failed bind).
void check_pid1(const HostConfig& host) {
  struct stat st;
  if (host.pid1_binary.empty() || host.pid1_binary.front() != '/' ||
      ::stat(host.pid1_binary.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
    throw ConfigError("--init: benchrun's init is missing ('" + host.pid1_binary +
                      "'); reinstall benchrun, or set BENCHRUN_PID1 to a benchrun-pid1 binary");
}

// Kills every process of the run: through its cgroup, or without one by SIGKILLing the workload,
// init of its pid namespace, whose death kills everything else in it.
void kill_run_tree(std::optional<host::Cgroup>& cgroup, const sandbox::SandboxedChild& child) {
  if (cgroup) return cgroup->kill_all();
  ::syscall(SYS_pidfd_send_signal, child.pidfd(), SIGKILL, nullptr, 0);
}

class SandboxExecution final : public Execution {
 public:
  // 1. Prepare: everything validated and allocated before any process exists.
  SandboxExecution(const RunContext& ctx, RunResult& r)
      : spec_(ctx.spec),
        interrupt_(ctx.interrupt),
        dir_(make_run_dir(ctx)),
        rootless_(spec_.rootless.value_or(::geteuid() != 0)) {
    UniqueFd image_root = open_file(ctx.image.rootfs, O_PATH | O_DIRECTORY);
    ProcessConfig proc = resolve_process(ctx.image.config, spec_, image_root.get());
    for (const auto& o : spec_.outputs) outputs_.push_back(checked_image_path(o, "output path"));
    Limits limits = resolve_limits(spec_, host_memory_bytes(ctx.host.meminfo));
    // Root runs: a user namespace mapped to a host range of their own (finding 4), so the
    // workload is not host root (per-user quotas, identity); prepare_layers gives the range what
    // the overlay needs.
    if (!rootless_) id_slot_.emplace(sandbox::acquire_id_slot());

    cgroup_ = create_cgroup(ctx.host, ctx.name, spec_, limits, rootless_, r);
    prepare_layers(ctx, limits, r);

    auto [out_r, out_w] = make_capture_pipe();
    auto [err_r, err_w] = make_capture_pipe();
    // The workload's user owns its end of the pipes, so /dev/stdout and /dev/stderr (which reopen
    // them through /proc/self/fd) work for a non-root user too. (Rootless: ours, i.e. root's
    // inside.)
    for (int fd : {out_w.get(), err_w.get()})
      if (!rootless_ &&
          ::fchown(fd, id_slot_->range().uid + proc.uid, id_slot_->range().gid + proc.gid) != 0)
        throw_errno("chown", "workload output pipe");
    // Captured output goes to anonymous files in the run directory, not the runner's memory.
    out_ = CapturedStream{std::move(out_r), OutputFile(dir_.path(), spec_.max_output_bytes)};
    err_ = CapturedStream{std::move(err_r), OutputFile(dir_.path(), spec_.max_output_bytes)};
    out_w_ = std::move(out_w);
    err_w_ = std::move(err_w);
    // The layers by names relative to the run dir (prepare_layers): mountinfo shows these.
    ss_.layer_dir = dir_.path().string();
    ss_.lowerdir = "lower";
    ss_.upperdir = "rw/upper";
    ss_.workdir = "rw/work";
    ss_.merged = (dir_.path() / "merged").string();
    if (id_slot_) ss_.idmapped_lower = ctx.image.rootfs;
    if (scratch_) {
      ss_.upper_mount_fd = scratch_->mount_fd();
      ss_.upper_mount = "rw";
    }
    ss_.tmpfs_bytes = limits.tmpfs;
    record_limits(limits, spec_, r);
    ss_.argv = proc.argv;
    if (!spec_.instructions.empty()) {  // under callgrind, from the host (run/instructions.hpp)
      check_valgrind(ctx.host);
      ss_.argv = instrumented_argv(spec_.instructions, proc.argv);
      ss_.tool_dir = ctx.host.valgrind_dir;
      ss_.tool_launcher = ctx.host.valgrind_launcher;
      ss_.tool_out_options = instruction_output_options(proc.uid, proc.gid);
      if (spec_.counters && !perf::resolve(*spec_.counters).empty())
        r.notices.push_back("--counters under --instructions count Valgrind's work too, not the "
                            "workload's alone");
    }
    if (spec_.init) {  // our init first, the workload as its child (cpp/tools/pid1.c)
      check_pid1(ctx.host);
      ss_.pid1 = ctx.host.pid1_binary;
      Argv argv = {"/.benchrun-pid1", "--"};
      argv.insert(argv.end(), ss_.argv.begin(), ss_.argv.end());
      ss_.argv = std::move(argv);
    }
    ss_.env = proc.env;
    ss_.secrets = spec_.secrets;  // wiped once the child is spawned
    ss_.cwd = proc.cwd;
    ss_.uid = proc.uid;
    ss_.gid = proc.gid;
    ss_.groups = proc.groups;
    ss_.user_namespace = true;
    if (id_slot_) ss_.id_range = id_slot_->range();
    if (rootless_ &&
        std::any_of(proc.groups.begin(), proc.groups.end(), [](gid_t g) { return g != 0; }))
      r.notices.push_back(
          "supplementary groups of the image's user are not set: a user namespace "
          "without root cannot set them (run as root)");
    ss_.hostname = spec_.hostname;
    ss_.rlimits = {{RLIMIT_NOFILE, spec_.nofile, spec_.nofile}, {RLIMIT_CORE, 0, 0}};
    ss_.seccomp = sandbox::build_seccomp_program();
    ss_.cgroup_fd = cgroup_ ? cgroup_->dir_fd() : -1;
    ss_.stdout_fd = out_w_.get();
    ss_.stderr_fd = err_w_.get();
    ss_.network = spec_.network;
  }

  ~SandboxExecution() override {
    // Order matters: processes first (cgroup), then the mounts (the root fd and the namespace
    // fd keep them alive, and they the upper filesystem and its loop device), then the cgroup
    // directories; dir_ (upper/work or the disk image) goes last.
    if (child_) kill_run_tree(cgroup_, *child_);
    UniqueFd root = child_ ? child_->take_root_fd() : UniqueFd();
    child_.reset();
    release_mounts(std::move(root), std::move(mount_ns_), std::move(scratch_));
    if (cgroup_) cgroup_->destroy();
    // overlayfs leaves <workdir>/work mode 000: only root could remove it as it is.
    ::chmod((dir_.path() / "rw" / "work" / "work").c_str(), 0700);
  }

  // The run dir as the overlay's layers are named in it: "lower", a symlink to the image's tree;
  // "rw", the upper filesystem (a size-bounded ext4 attached there by the child, or a plain
  // directory without a disk limit) with "upper" and "work"; "merged", the mount point.
  // With an id range, "lower" is an empty directory where the child attaches the image's idmapped
  // tree, and the range owns the run dir (the child enters it as the range's root), upper and work.
  void prepare_layers(const RunContext& ctx, Limits& limits, RunResult& r) {
    const std::filesystem::path& d = dir_.path();
    if (id_slot_) {
      make_dirs(d / "lower");
    } else if (::symlink(ctx.image.rootfs.c_str(), (d / "lower").c_str()) != 0) {
      throw_errno("symlink", (d / "lower").string());
    }
    make_dirs(d / "merged");
    make_dirs(d / "rw");
    int rw = AT_FDCWD;
    std::string rw_path = (d / "rw").string() + "/";
    if (limits.disk.value) {
      try {
        scratch_.emplace(host::ScratchFs::create((d / "disk.img").string(), *limits.disk.value,
                                                 ctx.host.store + "/scratch", ctx.host.mkfs));
        rw = scratch_->mount_fd();
        rw_path.clear();
      } catch (const Error& e) {
        if (limits.disk.explicit_) throw;
        limits.disk.value = std::nullopt;
        r.notices.push_back(std::string("no disk limit on the writable layer: ") + e.what());
      }
    }
    if (!scratch_) {
      make_dirs(d / "rw" / "upper");
      make_dirs(d / "rw" / "work");
    }
    if (!id_slot_) return;
    const sandbox::IdRange& ids = id_slot_->range();
    if (::chown(d.c_str(), ids.uid, ids.gid) != 0) throw_errno("chown", d.string());
    for (const char* sub : {"upper", "work"})
      if (::fchownat(rw, (rw_path + sub).c_str(), ids.uid, ids.gid, 0) != 0)
        throw_errno("chown", (d / "rw" / sub).string());
  }

  // 2. Start: clone into namespaces (and the v2 cgroup), v1 cgroup join, release to exec.
  void start() override {
    child_.emplace(sandbox::spawn_sandboxed(ss_));
    for (auto& [name, value] : ss_.secrets) explicit_bzero(value.data(), value.size());
    ss_.secrets.clear();
    out_w_.reset();
    err_w_.reset();
    // Holding the mount namespace keeps the run's mounts (overlay, /tmp tmpfs) readable for
    // output collection after the workload exits; closing it frees them, also if we are killed.
    mount_ns_ = open_file("/proc/" + std::to_string(child_->pid()) + "/ns/mnt", O_RDONLY);
    if (cgroup_ && cgroup_->version() == host::CgroupVersion::kV1)
      cgroup_->add_process(child_->pid());
    // The run's CPUs, explicitly: the child inherited the runner thread's housekeeping CPUs, and
    // a v2 clone into the cgroup keeps them on kernels before 6.2 (cpuset_fork copied the
    // parent's mask); a v1 join resets them to the cpuset's. Best effort: rootless runs have no
    // cpuset, and then this pinning is all they get.
    if (!spec_.cpus.empty()) (void)host::try_set_thread_affinity(child_->pid(), spec_.cpus);
    // Performance counters on the waiting child: they count from its execve, over every process
    // and thread it creates (perf/counters.hpp); opening them is set-up, before the clock starts.
    // Under --instructions the processes are Valgrind's, whose counts are not the workload's:
    // no default set then (an explicit one comes with a notice, see prepare).
    const auto counters = perf::resolve(spec_.counters.value_or(
        spec_.instructions.empty() ? perf::default_names() : Strings{}));
    if (!counters.empty()) counters_ = perf::CounterGroup::open_on_exec(child_->pid(), counters);
    start_time_ = unix_now();
    child_->release();
    t_exec_ = child_->released_at();
  }

  // 3. Run: drain output until exit or deadline; the whole run tree is killed either way.
  void wait() override {
    GracefulStop graceful;
    if (spec_.init)  // SIGTERM to our init, which forwards it to the workload's group
      graceful = {
          [this] { ::syscall(SYS_pidfd_send_signal, child_->pidfd(), SIGTERM, nullptr, 0); },
          std::chrono::duration_cast<Clock::duration>(
              std::chrono::duration<double>(spec_.stop_timeout))};
    outcome_ = capture_until_exit(
        out_, err_, child_->pidfd(), deadline_after(t_exec_, spec_.timeout),
        [this] { kill_run_tree(cgroup_, *child_); }, interrupt_, graceful);
    status_ = child_->wait();
  }

  // 4. Collect: status, output, cgroup metrics, counters and output files.
  void collect(RunResult& r) override {
    record_capture(out_, err_, outcome_, t_exec_, start_time_, r);
    if (WIFEXITED(status_)) {
      r.exit_code = WEXITSTATUS(status_);
    } else if (WIFSIGNALED(status_)) {
      r.signal = WTERMSIG(status_);
    }
    kill_run_tree(cgroup_, *child_);
    if (cgroup_) {
      record_cgroup_metrics(cgroup_->metrics(), r);
    } else {  // the workload and what it reaped (the whole pid namespace, whose init it was)
      const struct rusage& ru = child_->rusage();
      r.set_metric(metric::kCpuUser, seconds(ru.ru_utime), "s");
      r.set_metric(metric::kCpuSystem, seconds(ru.ru_stime), "s");
      r.set_metric(metric::kPeakMemory, static_cast<double>(ru.ru_maxrss) * 1024, "bytes");
    }
    // The workload (init of its pid namespace) was reaped in wait(), after every other process of
    // its namespace: the inherited counts are all folded in.
    counters_.read_into(r.metrics, r.notices);
    collect_outputs(child_->root_fd(), spec_, outputs_, r);
    if (!spec_.instructions.empty())
      collect_instruction_metrics(child_->root_fd(), spec_.instructions, r);
  }

 private:
  const RunSpec& spec_;
  std::optional<sandbox::IdSlot> id_slot_;  // root runs: the locked host id range, until the end
  Interrupt interrupt_;
  TempDir dir_;  // declared before the rest: upper/work outlive every mount of them
  bool rootless_;
  std::optional<host::ScratchFs> scratch_;  // the upper filesystem under a disk limit
  std::vector<std::string> outputs_;
  std::optional<host::Cgroup> cgroup_;
  CapturedStream out_, err_;
  UniqueFd out_w_, err_w_;
  sandbox::SpawnSpec ss_;
  std::optional<sandbox::SandboxedChild> child_;
  perf::CounterGroup counters_;
  UniqueFd mount_ns_;
  Clock::time_point t_exec_;
  double start_time_ = 0;
  CaptureOutcome outcome_;
  int status_ = 0;
};

class SandboxBackend final : public Backend {
 public:
  std::string name() const override { return "sandbox"; }
  void validate(const RunSpec&) const override {}
  std::unique_ptr<Execution> prepare(const RunContext& ctx, RunResult& r) const override {
    return std::make_unique<SandboxExecution>(ctx, r);
  }
  int sweep(const HostConfig& host) const override { return sweep_stale_runs(host); }
};

}  // namespace

std::unique_ptr<Backend> make_sandbox_backend() { return std::make_unique<SandboxBackend>(); }

}  // namespace benchrun::run
