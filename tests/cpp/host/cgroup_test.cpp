// cgroup_test.cpp: run cgroups on the host's real v1 hierarchies and cgroup2 mount (needs root),
// and on a fake tree of plain files. Every test removes its cgroups in TearDown, also after a
// failure.
#include "benchrun/host/cgroup.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/magic.h>
#include <linux/sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "benchrun/common/error.hpp"
#include "benchrun/common/fs.hpp"
#include "benchrun/common/scope_exit.hpp"

namespace sb = benchrun::host;
namespace fs = std::filesystem;
using benchrun::ScopeExit;
using namespace std::chrono_literals;

namespace {

constexpr const char* kHostRoot = "/sys/fs/cgroup";
constexpr uint64_t kMiB = 1024 * 1024;

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

void put(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::trunc);
  out << data;
}

bool is_cgroup2(const std::string& path) {
  struct statfs sf {};
  return ::statfs(path.c_str(), &sf) == 0 &&
         static_cast<unsigned long>(sf.f_type) == CGROUP2_SUPER_MAGIC;
}

std::vector<pid_t> procs_of(const std::string& dir) {
  std::vector<pid_t> out;
  std::istringstream in(slurp(dir + "/cgroup.procs"));
  for (pid_t p; in >> p;) out.push_back(p);
  return out;
}

bool contains(const std::vector<pid_t>& v, pid_t p) {
  return std::find(v.begin(), v.end(), p) != v.end();
}

// The first of dirs holding file (v1 keeps each controller's files in its own hierarchy).
std::string file_in(const std::vector<std::string>& dirs, const std::string& file) {
  for (const auto& d : dirs)
    if (fs::exists(d + "/" + file)) return d + "/" + file;
  return {};
}

// Independent of the code under test: SIGKILL whatever is inside, then rmdir bottom-up.
void remove_test_tree(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_directory()) remove_test_tree(e.path());
  for (int i = 0; i < 500; ++i) {
    auto pids = procs_of(dir.string());
    if (pids.empty()) break;
    for (pid_t p : pids) ::kill(p, SIGKILL);
    std::this_thread::sleep_for(10ms);
  }
  for (int i = 0; i < 100 && ::rmdir(dir.c_str()) != 0 && errno == EBUSY; ++i)
    std::this_thread::sleep_for(10ms);
}

// A forked child that blocks until released, then runs body and exits 0. Killed and reaped on
// destruction if the test did not reap it.
class Child {
 public:
  template <typename F>
  explicit Child(F body) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      ::close(p[1]);
      char c;
      ssize_t n;
      do {
        n = ::read(p[0], &c, 1);
      } while (n < 0 && errno == EINTR);
      if (n == 1) body();
      ::_exit(0);
    }
    ::close(p[0]);
    go_ = p[1];
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() {
    if (go_ >= 0) ::close(go_);
    if (!reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  pid_t pid() const { return pid_; }
  void release() {
    char c = 1;
    ASSERT_EQ(::write(go_, &c, 1), 1);
    ::close(go_);
    go_ = -1;
  }
  int wait() {
    int status = 0;
    EXPECT_EQ(::waitpid(pid_, &status, 0), pid_);
    reaped_ = true;
    return status;
  }

 private:
  pid_t pid_ = -1;
  int go_ = -1;
  bool reaped_ = false;
};

void burn_cpu(std::chrono::milliseconds d) {
  struct timespec ts {};
  volatile uint64_t x = 0;
  for (;;) {
    for (int i = 0; i < 100000; ++i) x = x + static_cast<uint64_t>(i);
    ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    if (ts.tv_sec * 1000 + ts.tv_nsec / 1'000'000 >= d.count()) return;
  }
}

void block_forever() {
  for (;;) ::pause();
}

// Allocates and touches n bytes (to be OOM-killed on the way).
void touch_memory(size_t n) {
  void* p = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) ::_exit(3);
  for (size_t i = 0; i < n; i += 4096) static_cast<volatile char*>(p)[i] = 1;
  ::_exit(4);  // survived: the limit did not apply
}

// Every process forks until pids.max stops it: a fork storm the kill must not lose a race to.
void fork_storm() {
  for (;;)
    if (::fork() < 0) ::sched_yield();
}

std::string test_parent() { return "benchrun-test-" + std::to_string(::getpid()); }

pid_t dead_pid() {
  pid_t p = ::fork();
  if (p == 0) ::_exit(0);
  ::waitpid(p, nullptr, 0);
  return p;
}

// Real cgroups under kHostRoot (v1 hierarchies, or a cgroup2 mount), parent benchrun-test-<pid>.
class HostCgroupTest : public ::testing::Test {
 protected:
  void TearDown() override {
    // Only a parent this process named: a skipped SetUp leaves the default ("benchrun", where real
    // runs live) in config_.
    if (config_.parent != test_parent()) return;
    // Whatever hierarchy a test touched: root/<h>/<parent> on v1 and unified, root/<parent> on v2.
    std::error_code ec;
    if (is_cgroup2(kHostRoot)) {
      remove_test_tree(fs::path(kHostRoot) / config_.parent);
      return;
    }
    for (const auto& e : fs::directory_iterator(kHostRoot, ec))
      remove_test_tree(e.path() / config_.parent);
  }
  sb::CgroupConfig config_;
};

class CgroupV1 : public HostCgroupTest {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to create cgroups";
    if (is_cgroup2(kHostRoot) || !fs::is_directory(std::string(kHostRoot) + "/memory"))
      GTEST_SKIP() << kHostRoot << " is not a cgroup v1 (or hybrid) layout";
    config_.root = kHostRoot;
    config_.parent = test_parent();
  }
};

// v2: kHostRoot itself on a v2 host, else the (controller-less) cgroup2 of a hybrid host.
class CgroupV2 : public HostCgroupTest {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to create cgroups";
    if (is_cgroup2(kHostRoot))
      config_.root = kHostRoot;
    else if (is_cgroup2(std::string(kHostRoot) + "/unified"))
      config_.root = std::string(kHostRoot) + "/unified";
    else
      GTEST_SKIP() << "no cgroup2 mount at " << kHostRoot << " or " << kHostRoot << "/unified";
    config_.parent = test_parent();
  }
  bool offers(const std::string& controller) const {
    std::istringstream in(slurp(config_.root + "/cgroup.controllers"));
    for (std::string c; in >> c;)
      if (c == controller) return true;
    return false;
  }
};

}  // namespace

// --- v1 (this host: hybrid, v1 controllers) --------------------------------------------------

TEST_F(CgroupV1, DetectsV1) {
  EXPECT_EQ(sb::detect_cgroup_version(kHostRoot), sb::CgroupVersion::kV1);
}

TEST_F(CgroupV1, CreateWritesLimitsAndDestroyRemovesEveryDirectory) {
  sb::CgroupLimits limits;
  limits.memory_bytes = 64 * kMiB;
  limits.pids_max = 16;
  limits.cpuset_cpus = "0";
  limits.cpu_quota_us = 50'000;
  sb::Cgroup cg = sb::Cgroup::create(config_, "run-1-limits", limits);
  EXPECT_EQ(cg.version(), sb::CgroupVersion::kV1);
  EXPECT_EQ(cg.dir_fd(), -1);
  const std::vector<std::string> paths = cg.paths();
  ASSERT_FALSE(paths.empty());
  for (const auto& p : paths) {
    EXPECT_TRUE(fs::is_directory(p)) << p;
    EXPECT_EQ(fs::path(p).filename(), "run-1-limits");
    EXPECT_EQ(fs::path(p).parent_path().filename(), config_.parent);
  }
  for (const char* ctrl : {"memory", "pids", "cpu", "cpuacct", "cpuset", "freezer"}) {
    if (!fs::is_directory(std::string(kHostRoot) + "/" + ctrl)) continue;
    std::string want = fs::canonical(std::string(kHostRoot) + "/" + ctrl).string();
    bool joined = std::any_of(paths.begin(), paths.end(), [&](const std::string& p) {
      return fs::canonical(fs::path(p).parent_path().parent_path()).string() == want;
    });
    EXPECT_TRUE(joined) << ctrl;
  }

  EXPECT_EQ(slurp(file_in(paths, "memory.limit_in_bytes")), "67108864");
  if (std::string memsw = file_in(paths, "memory.memsw.limit_in_bytes"); !memsw.empty()) {
    EXPECT_EQ(slurp(memsw), "67108864");
  }
  EXPECT_EQ(slurp(file_in(paths, "pids.max")), "16");
  EXPECT_EQ(slurp(file_in(paths, "cpu.cfs_quota_us")), "50000");
  EXPECT_EQ(slurp(file_in(paths, "cpu.cfs_period_us")), "100000");
  const std::string cpus = file_in(paths, "cpuset.cpus");
  EXPECT_EQ(slurp(cpus), "0");
  const std::string cpuset_dir = fs::path(cpus).parent_path().string();
  EXPECT_EQ(slurp(cpuset_dir + "/cpuset.mems"),
            slurp(std::string(kHostRoot) + "/cpuset/cpuset.mems"));
  // The parent level was filled too, or no process could ever join below it.
  const std::string parent_dir = fs::path(cpuset_dir).parent_path().string();
  EXPECT_FALSE(slurp(parent_dir + "/cpuset.cpus").empty());
  EXPECT_FALSE(slurp(parent_dir + "/cpuset.mems").empty());

  cg.destroy();
  EXPECT_TRUE(cg.paths().empty());
  for (const auto& p : paths) EXPECT_FALSE(fs::exists(p)) << p;
  cg.destroy();  // idempotent
  EXPECT_THROW(cg.metrics(), benchrun::SandboxError);
}

TEST_F(CgroupV1, AddProcessJoinsEveryHierarchyAndMetricsCountCpu) {
  sb::CgroupLimits limits;
  limits.cpuset_cpus = "0";
  sb::Cgroup cg = sb::Cgroup::create(config_, "run-1-cpu", limits);
  Child child([] { burn_cpu(300ms); });
  cg.add_process(child.pid());
  for (const auto& p : cg.paths()) EXPECT_TRUE(contains(procs_of(p), child.pid())) << p;
  child.release();
  int status = child.wait();
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;

  sb::CgroupMetrics m = cg.metrics();
  EXPECT_GT(m.cpu_usage_ns, 200'000'000u);
  EXPECT_LT(m.cpu_usage_ns, 5'000'000'000u);
  EXPECT_GT(m.cpu_user_ns + m.cpu_system_ns, 0u);
  EXPECT_EQ(m.oom_kills, 0u);
  for (const auto& p : cg.paths()) EXPECT_TRUE(procs_of(p).empty()) << p;
  // Where the kernel has the nanosecond counters (4.7+), they are what is reported, not the 10 ms
  // ticks of cpuacct.stat. The group is empty, so the counters no longer move.
  const std::string user_file = file_in(cg.paths(), "cpuacct.usage_user");
  if (!user_file.empty()) {
    EXPECT_EQ(std::to_string(m.cpu_user_ns), slurp(user_file));
    EXPECT_EQ(std::to_string(m.cpu_system_ns), slurp(file_in(cg.paths(), "cpuacct.usage_sys")));
    EXPECT_GT(m.cpu_user_ns, 150'000'000u);  // burn_cpu spins in user mode
  }
}

TEST_F(CgroupV1, KillAllKillsABlockedChild) {
  sb::Cgroup cg = sb::Cgroup::create(config_, "run-1-kill", {});
  Child child([] { block_forever(); });
  cg.add_process(child.pid());
  child.release();
  cg.kill_all();
  int status = child.wait();
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  for (const auto& p : cg.paths()) EXPECT_TRUE(procs_of(p).empty()) << p;
  // The freezer is left thawed: the group can be reused and removed.
  if (std::string state = file_in(cg.paths(), "freezer.state"); !state.empty()) {
    EXPECT_EQ(slurp(state), "THAWED");
  }
}

TEST_F(CgroupV1, KillAllWinsAgainstAForkStorm) {
  // Orphaned grandchildren come to us, to be reaped here rather than by the host's init.
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  ScopeExit unreaper([] {
    while (::waitpid(-1, nullptr, WNOHANG) > 0) {
    }
    ::prctl(PR_SET_CHILD_SUBREAPER, 0);
  });
  sb::CgroupLimits limits;
  limits.pids_max = 32;
  sb::Cgroup cg = sb::Cgroup::create(config_, "run-1-storm", limits);
  const std::string pids_dir = fs::path(file_in(cg.paths(), "pids.max")).parent_path().string();
  Child child([] { fork_storm(); });
  cg.add_process(child.pid());
  child.release();
  auto until = std::chrono::steady_clock::now() + 5s;
  while (procs_of(pids_dir).size() < 16 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(1ms);
  ASSERT_GE(procs_of(pids_dir).size(), 16u);

  cg.kill_all();
  for (const auto& p : cg.paths()) EXPECT_TRUE(procs_of(p).empty()) << p;
  int status = child.wait();
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  // Every grandchild has exited: reaping them all must not block.
  until = std::chrono::steady_clock::now() + 5s;
  while (std::chrono::steady_clock::now() < until) {
    pid_t r = ::waitpid(-1, nullptr, WNOHANG);
    if (r < 0 && errno == ECHILD) break;
    if (r == 0) std::this_thread::sleep_for(1ms);
  }
  errno = 0;
  EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
}

TEST_F(CgroupV1, OomKillIsCountedAndPeakIsNearTheLimit) {
  sb::CgroupLimits limits;
  limits.memory_bytes = 32 * kMiB;
  sb::Cgroup cg = sb::Cgroup::create(config_, "run-1-oom", limits);
  Child child([] { touch_memory(200 * kMiB); });
  cg.add_process(child.pid());
  child.release();
  int status = child.wait();
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  sb::CgroupMetrics m = cg.metrics();
  EXPECT_GE(m.oom_kills, 1u);
  EXPECT_GT(m.memory_peak_bytes, 24 * kMiB);
  EXPECT_LE(m.memory_peak_bytes, 32 * kMiB);
}

TEST_F(CgroupV1, DestructorKillsAndRemovesAfterMove) {
  std::vector<std::string> paths;
  Child child([] { block_forever(); });
  {
    sb::Cgroup a = sb::Cgroup::create(config_, "run-1-move", {});
    paths = a.paths();
    a.add_process(child.pid());
    sb::Cgroup b = std::move(a);
    EXPECT_TRUE(a.paths().empty());  // NOLINT(bugprone-use-after-move): moved-from is empty
    EXPECT_EQ(b.paths(), paths);
  }
  for (const auto& p : paths) EXPECT_FALSE(fs::exists(p)) << p;
  int status = child.wait();
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
}

TEST_F(CgroupV1, FailedCreateRemovesWhatItMade) {
  sb::CgroupLimits limits;
  limits.cpuset_cpus = "4096";  // no such CPU
  try {
    sb::Cgroup::create(config_, "run-1-bad", limits);
    FAIL() << "expected SandboxError";
  } catch (const benchrun::SandboxError& e) {
    EXPECT_EQ(e.stage(), "cgroup");
    EXPECT_NE(std::string(e.what()).find("write '"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("cpuset.cpus' = '4096'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("(hint: "), std::string::npos) << e.what();
  }
  for (const auto& e : fs::directory_iterator(kHostRoot))
    EXPECT_FALSE(fs::exists(e.path() / config_.parent / "run-1-bad")) << e.path();
}

TEST_F(CgroupV1, RejectsBadNames) {
  EXPECT_THROW(sb::Cgroup::create(config_, "../escape", {}), benchrun::ConfigError);
  EXPECT_THROW(sb::Cgroup::create(config_, "", {}), benchrun::ConfigError);
  EXPECT_THROW(sb::Cgroup::create(config_, "a b", {}), benchrun::ConfigError);
  config_.parent = "x/../y";
  EXPECT_THROW(sb::Cgroup::create(config_, "ok", {}), benchrun::ConfigError);
}

TEST_F(CgroupV1, CleanupRemovesOnlyRunsOfDeadProcesses) {
  sb::Cgroup live = sb::Cgroup::create(config_, "run-" + std::to_string(::getpid()) + "-y", {});
  // What a SIGKILLed runner leaves: the run's directories, with its workload still inside.
  const std::string stale = "run-" + std::to_string(dead_pid()) + "-x";
  std::vector<std::string> stale_dirs;
  for (const auto& p : live.paths()) {
    const std::string parent = fs::path(p).parent_path().string();
    const std::string d = parent + "/" + stale;
    ASSERT_EQ(::mkdir(d.c_str(), 0755), 0) << d;
    stale_dirs.push_back(d);
    if (fs::exists(d + "/cpuset.cpus")) {
      put(d + "/cpuset.cpus", slurp(parent + "/cpuset.cpus"));
      put(d + "/cpuset.mems", slurp(parent + "/cpuset.mems"));
    }
  }
  const std::string other = fs::path(live.paths().front()).parent_path().string() + "/not-a-run";
  ASSERT_EQ(::mkdir(other.c_str(), 0755), 0);
  Child orphan([] { block_forever(); });
  for (const auto& d : stale_dirs) put(d + "/cgroup.procs", std::to_string(orphan.pid()));
  for (const auto& d : stale_dirs) ASSERT_TRUE(contains(procs_of(d), orphan.pid())) << d;
  orphan.release();

  EXPECT_EQ(sb::cleanup_stale_cgroups(config_), 1);
  for (const auto& d : stale_dirs) EXPECT_FALSE(fs::exists(d)) << d;
  for (const auto& p : live.paths()) EXPECT_TRUE(fs::is_directory(p)) << p;
  EXPECT_TRUE(fs::is_directory(other));
  int status = orphan.wait();
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  EXPECT_EQ(sb::cleanup_stale_cgroups(config_), 0);
}

// --- v2 (this host: the controller-less cgroup2 at /sys/fs/cgroup/unified) --------------------

TEST_F(CgroupV2, DetectsV2) {
  EXPECT_EQ(sb::detect_cgroup_version(config_.root), sb::CgroupVersion::kV2);
}

TEST_F(CgroupV2, CreateAddKillDestroyWithoutLimits) {
  sb::Cgroup cg = sb::Cgroup::create(config_, "run-1-plain", {});
  EXPECT_EQ(cg.version(), sb::CgroupVersion::kV2);
  EXPECT_GE(cg.dir_fd(), 0);
  ASSERT_EQ(cg.paths().size(), 1u);
  const std::string dir = cg.paths().front();
  EXPECT_EQ(dir, config_.root + "/" + config_.parent + "/run-1-plain");

  Child child([] {
    burn_cpu(50ms);
    block_forever();
  });
  cg.add_process(child.pid());
  EXPECT_TRUE(contains(procs_of(dir), child.pid()));
  child.release();
  std::this_thread::sleep_for(100ms);
  EXPECT_GT(cg.metrics().cpu_usage_ns, 0u);  // cpu.stat needs no controller
  cg.kill_all();
  EXPECT_TRUE(procs_of(dir).empty());
  int status = child.wait();
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  cg.destroy();
  EXPECT_FALSE(fs::exists(dir));
  EXPECT_EQ(cg.dir_fd(), -1);
}

TEST_F(CgroupV2, DirFdWorksWithCloneIntoCgroup) {
  sb::Cgroup cg = sb::Cgroup::create(config_, "run-1-clone3", {});
  int go[2];
  ASSERT_EQ(::pipe2(go, O_CLOEXEC), 0);
  ScopeExit close_go([&go] {
    ::close(go[0]);
    if (go[1] >= 0) ::close(go[1]);
  });
  struct clone_args args {};
  args.flags = CLONE_INTO_CGROUP;
  args.exit_signal = SIGCHLD;
  args.cgroup = static_cast<uint64_t>(cg.dir_fd());
  long pid = ::syscall(SYS_clone3, &args, sizeof args);
  if (pid == 0) {
    char c;
    (void)::read(go[0], &c, 1);
    ::_exit(0);
  }
  if (pid < 0 && (errno == ENOSYS || errno == EPERM))
    GTEST_SKIP() << "clone3 unavailable: " << std::strerror(errno);
  ASSERT_GT(pid, 0) << std::strerror(errno);
  ScopeExit reap([pid] {
    ::kill(static_cast<pid_t>(pid), SIGKILL);
    ::waitpid(static_cast<pid_t>(pid), nullptr, 0);
  });
  EXPECT_TRUE(contains(procs_of(cg.paths().front()), static_cast<pid_t>(pid)));
  cg.kill_all();
  EXPECT_TRUE(procs_of(cg.paths().front()).empty());
}

TEST_F(CgroupV2, LimitWithoutItsControllerFailsNamingIt) {
  if (offers("memory"))
    GTEST_SKIP() << "memory is delegated here (see LimitsAndOomOnDelegatedControllers)";
  sb::CgroupLimits limits;
  limits.memory_bytes = 64 * kMiB;
  try {
    sb::Cgroup::create(config_, "run-1-nomem", limits);
    FAIL() << "expected SandboxError";
  } catch (const benchrun::SandboxError& e) {
    EXPECT_EQ(e.stage(), "cgroup");
    const std::string what = e.what();
    EXPECT_NE(what.find("controller 'memory'"), std::string::npos) << what;
    EXPECT_NE(what.find("cgroup.controllers"), std::string::npos) << what;
    EXPECT_NE(what.find("(hint: "), std::string::npos) << what;
  }
  EXPECT_FALSE(fs::exists(config_.root + "/" + config_.parent + "/run-1-nomem"));
}

TEST_F(CgroupV2, LimitsAndOomOnDelegatedControllers) {
  if (!offers("memory") || !offers("pids"))
    GTEST_SKIP() << "memory/pids not offered at " << config_.root;
  sb::CgroupLimits limits;
  limits.memory_bytes = 32 * kMiB;
  limits.pids_max = 16;
  sb::Cgroup cg = sb::Cgroup::create(config_, "run-1-limits", limits);
  const std::string dir = cg.paths().front();
  EXPECT_EQ(slurp(dir + "/memory.max"), "33554432");
  if (fs::exists(dir + "/memory.swap.max")) {
    EXPECT_EQ(slurp(dir + "/memory.swap.max"), "0");
  }
  EXPECT_EQ(slurp(dir + "/pids.max"), "16");
  Child child([] { touch_memory(200 * kMiB); });
  cg.add_process(child.pid());
  child.release();
  int status = child.wait();
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  sb::CgroupMetrics m = cg.metrics();
  EXPECT_GE(m.oom_kills, 1u);
  if (fs::exists(dir + "/memory.peak")) {
    EXPECT_GT(m.memory_peak_bytes, 24 * kMiB);
  }
}

TEST_F(CgroupV2, CleanupRemovesOnlyRunsOfDeadProcesses) {
  sb::Cgroup live = sb::Cgroup::create(config_, "run-" + std::to_string(::getpid()) + "-y", {});
  const std::string parent = config_.root + "/" + config_.parent;
  const std::string stale = parent + "/run-" + std::to_string(dead_pid()) + "-x";
  ASSERT_EQ(::mkdir(stale.c_str(), 0755), 0);
  Child orphan([] { block_forever(); });
  put(stale + "/cgroup.procs", std::to_string(orphan.pid()));
  ASSERT_TRUE(contains(procs_of(stale), orphan.pid()));
  EXPECT_EQ(sb::cleanup_stale_cgroups(config_), 1);
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_TRUE(fs::is_directory(live.paths().front()));
  int status = orphan.wait();
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
}

// --- fake trees of plain files -----------------------------------------------------------------

TEST(CgroupFake, DetectFallsBackToV1ControllerDirectories) {
  benchrun::TempDir tmp(fs::temp_directory_path(), "cgroup-fake-");
  const std::string root = tmp.path().string();
  try {
    sb::detect_cgroup_version(root);
    FAIL() << "expected SandboxError";
  } catch (const benchrun::SandboxError& e) {
    EXPECT_EQ(e.stage(), "cgroup");
    EXPECT_NE(std::string(e.what()).find("(hint: "), std::string::npos) << e.what();
  }
  EXPECT_THROW(sb::detect_cgroup_version(root + "/missing"), benchrun::SandboxError);
  fs::create_directory(tmp.path() / "pids");
  EXPECT_EQ(sb::detect_cgroup_version(root), sb::CgroupVersion::kV1);
}

TEST(CgroupFake, V2EnablesControllersAndCleansUpAFailedCreate) {
  benchrun::TempDir tmp(fs::temp_directory_path(), "cgroup-fake-");
  const std::string root = tmp.path().string();
  put(root + "/cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma\n");
  put(root + "/cgroup.subtree_control", "memory\n");
  fs::create_directory(root + "/bench");
  put(root + "/bench/cgroup.controllers", "cpuset cpu memory pids\n");
  put(root + "/bench/cgroup.subtree_control", "");

  sb::CgroupConfig config;
  config.root = root + "/";
  config.parent = "bench";
  config.version = sb::CgroupVersion::kV2;
  {
    sb::Cgroup cg = sb::Cgroup::create(config, "run-1-a", {});
    EXPECT_GE(cg.dir_fd(), 0);
    EXPECT_EQ(cg.paths(), std::vector<std::string>{root + "/bench/run-1-a"});
    EXPECT_EQ(slurp(root + "/cgroup.subtree_control"), "+cpu +cpuset +pids");  // memory was on
    EXPECT_EQ(slurp(root + "/bench/cgroup.subtree_control"), "+cpu +cpuset +memory +pids");
  }
  EXPECT_FALSE(fs::exists(root + "/bench/run-1-a"));

  // A fresh directory has none of the controller files cgroupfs would add: the first write fails,
  // names the file and value, and create removes the directory again.
  sb::CgroupLimits limits;
  limits.memory_bytes = 64 * kMiB;
  try {
    sb::Cgroup::create(config, "run-1-b", limits);
    FAIL() << "expected SandboxError";
  } catch (const benchrun::SandboxError& e) {
    EXPECT_EQ(std::string(e.what()),
              "write '" + root +
                  "/bench/run-1-b/memory.max' = '67108864': " + std::strerror(ENOENT) +
                  " (hint: the controller providing 'memory.max' is not "
                  "enabled for this cgroup)");
  }
  EXPECT_FALSE(fs::exists(root + "/bench/run-1-b"));

  put(root + "/bench/cgroup.controllers", "cpu memory\n");
  limits = {};
  limits.pids_max = 8;
  try {
    sb::Cgroup::create(config, "run-1-c", limits);
    FAIL() << "expected SandboxError";
  } catch (const benchrun::SandboxError& e) {
    EXPECT_NE(std::string(e.what()).find("controller 'pids' (for the pids limit) in '" + root +
                                         "/bench'"),
              std::string::npos)
        << e.what();
  }
}

TEST(CgroupFake, V2LimitFilesGetKernelFormattedValues) {
  benchrun::TempDir tmp(fs::temp_directory_path(), "cgroup-fake-");
  const std::string parent = tmp.path().string();
  const std::string dir = parent + "/run-1-a";
  fs::create_directory(dir);
  put(parent + "/cpuset.mems.effective", "0-1\n");
  for (const char* f :
       {"memory.max", "memory.swap.max", "pids.max", "cpuset.cpus", "cpuset.mems", "cpu.max"})
    put(dir + "/" + f, "max\n");
  sb::CgroupLimits limits;
  limits.memory_bytes = 64 * kMiB;
  limits.pids_max = 16;
  limits.cpuset_cpus = "2-3";
  limits.cpu_quota_us = 50'000;
  limits.cpu_period_us = 200'000;
  sb::detail::write_v2_limits(dir, parent, limits);
  EXPECT_EQ(slurp(dir + "/memory.max"), "67108864");
  EXPECT_EQ(slurp(dir + "/memory.swap.max"), "0");
  EXPECT_EQ(slurp(dir + "/pids.max"), "16");
  EXPECT_EQ(slurp(dir + "/cpuset.cpus"), "2-3");
  EXPECT_EQ(slurp(dir + "/cpuset.mems"), "0-1");
  EXPECT_EQ(slurp(dir + "/cpu.max"), "50000 200000");

  // No swap accounting (memory.swap.max absent) is fine; nothing requested, nothing written.
  fs::remove(dir + "/memory.swap.max");
  put(dir + "/pids.max", "max");
  limits = {};
  limits.memory_bytes = kMiB;
  sb::detail::write_v2_limits(dir, parent, limits);
  EXPECT_EQ(slurp(dir + "/memory.max"), "1048576");
  EXPECT_EQ(slurp(dir + "/pids.max"), "max");
}

TEST(CgroupFake, V1CpuTimesPreferNanosecondCountersOverTicks) {
  benchrun::TempDir tmp(fs::temp_directory_path(), "cgroup-fake-");
  const std::string root = tmp.path().string();
  fs::create_directory(root + "/cpuacct");
  sb::CgroupConfig config;
  config.root = root;
  config.parent = "bench";
  config.version = sb::CgroupVersion::kV1;
  sb::Cgroup cg = sb::Cgroup::create(config, "run-1-a", {});
  const std::string dir = root + "/cpuacct/bench/run-1-a";
  ASSERT_EQ(cg.paths(), std::vector<std::string>{dir});
  // A run of 1.234567891 s user and 0.012345678 s system: the tick file says 123 and 1 ticks.
  put(dir + "/cpuacct.usage", "1246913569\n");
  put(dir + "/cpuacct.usage_user", "1234567891\n");
  put(dir + "/cpuacct.usage_sys", "12345678\n");
  put(dir + "/cpuacct.stat", "user 123\nsystem 1\n");
  sb::CgroupMetrics m = cg.metrics();
  EXPECT_EQ(m.cpu_usage_ns, 1'246'913'569u);
  EXPECT_EQ(m.cpu_user_ns, 1'234'567'891u);
  EXPECT_EQ(m.cpu_system_ns, 12'345'678u);

  // A kernel before 4.7 has only the ticks, in USER_HZ (sysconf(_SC_CLK_TCK)) units. Both
  // nanosecond files or neither: user and system always come from the same source.
  const uint64_t ns_per_tick = 1'000'000'000ull / static_cast<uint64_t>(::sysconf(_SC_CLK_TCK));
  fs::remove(dir + "/cpuacct.usage_sys");
  m = cg.metrics();
  EXPECT_EQ(m.cpu_user_ns, 123 * ns_per_tick);
  EXPECT_EQ(m.cpu_system_ns, 1 * ns_per_tick);
  fs::remove(dir + "/cpuacct.usage_user");
  m = cg.metrics();
  EXPECT_EQ(m.cpu_user_ns, 123 * ns_per_tick);
  EXPECT_EQ(m.cpu_system_ns, 1 * ns_per_tick);

  put(dir + "/cpuacct.usage_user", "12x\n");
  put(dir + "/cpuacct.usage_sys", "5\n");
  EXPECT_THROW(cg.metrics(), benchrun::SandboxError);  // garbage is reported, not read as 0
  fs::remove(dir + "/cpuacct.usage_user");
  fs::remove(dir + "/cpuacct.usage_sys");
  fs::remove(dir + "/cpuacct.usage");
  fs::remove(dir + "/cpuacct.stat");
  m = cg.metrics();  // the files a kernel lacks count 0
  EXPECT_EQ(m.cpu_usage_ns, 0u);
  EXPECT_EQ(m.cpu_user_ns, 0u);
}
