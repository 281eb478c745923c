// spawn_test.cpp: runs busybox in the sandbox and checks isolation, stdio, errors and cleanup.
//
// Needs root (mount, pivot_root, namespaces) and Debian's static busybox (/bin/busybox, package
// busybox-static), copied into a minimal lowerdir shared by the suite; every test gets its own
// upper/work/merged dirs.
#include "benchrun/sandbox/spawn.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <grp.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "benchrun/common/error.hpp"
#include "benchrun/common/fs.hpp"
#include "benchrun/common/unique_fd.hpp"
#include "benchrun/sandbox/seccomp.hpp"
#include "sandbox/mounts.hpp"

namespace fs = std::filesystem;
using benchrun::ConfigError;
using benchrun::SandboxError;
using benchrun::TempDir;
using benchrun::UniqueFd;
using benchrun::sandbox::Rlimit;
using benchrun::sandbox::SandboxedChild;
using benchrun::sandbox::spawn_sandboxed;
using benchrun::sandbox::SpawnSpec;
using namespace std::chrono_literals;

namespace {

constexpr const char* kBusybox = "/bin/busybox";

int count_open_fds() {
  int n = 0;
  DIR* d = ::opendir("/proc/self/fd");
  if (!d) return -1;
  while (struct dirent* e = ::readdir(d))
    if (e->d_name[0] != '.') ++n;
  ::closedir(d);
  return n - 1;  // the DIR's own fd
}

bool has_children() {
  int status = 0;
  return !(::waitpid(-1, &status, WNOHANG) < 0 && errno == ECHILD);
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Every path under root, relative, with its size (for "unchanged" checks).
std::set<std::string> tree_listing(const fs::path& root) {
  std::set<std::string> out;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator();
       ++it) {
    std::string entry = fs::relative(it->path(), root).string();
    if (it->is_regular_file(/*no follow needed*/) && !it->is_symlink())
      entry += " " + std::to_string(it->file_size());
    out.insert(entry);
  }
  return out;
}

struct RunResult {
  int status = -1;
  std::string out, err;
  bool timed_out = false;
  UniqueFd root;
  int exit_code() const { return WIFEXITED(status) ? WEXITSTATUS(status) : -1; }
};

// The value of "Key:" in /proc/self/status text.
std::string status_field(const std::string& text, const std::string& key) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) {
      std::string v = line.substr(key.size() + 1);
      v.erase(0, v.find_first_not_of(" \t"));
      return v;
    }
  }
  return "<missing>";
}

class SpawnTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (::geteuid() != 0 || ::access(kBusybox, X_OK) != 0) return;
    lower_dir_ = std::make_unique<TempDir>(fs::temp_directory_path(), "benchrun-spawn-lower-");
    const fs::path lower = lower_dir_->path();
    fs::create_directories(lower / "bin");
    fs::copy_file(kBusybox, lower / "bin/busybox");
    for (const char* applet :
         {"sh", "cat", "echo", "id", "hostname", "ls", "wc", "head", "pwd", "sleep", "touch",
          "grep", "mount", "unshare", "reboot", "true", "readlink"})
      fs::create_symlink("busybox", lower / "bin" / applet);
    fs::create_directories(lower / "etc");
    std::ofstream(lower / "etc/motd") << "lower\n";
    for (const fs::path& d : {lower, lower / "bin", lower / "etc"})
      fs::permissions(d, fs::perms(0755));
    fs::create_directories(lower / "secret");
    fs::permissions(lower / "secret", fs::perms(0700));
    fs::permissions(lower / "bin/busybox", fs::perms(0755));
    program_ = benchrun::sandbox::build_seccomp_program();
  }
  static void TearDownTestSuite() { lower_dir_.reset(); }

  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (mount, pivot_root, new namespaces)";
    if (!lower_dir_) GTEST_SKIP() << "needs " << kBusybox << " (Debian package busybox-static)";
    run_dir_ = std::make_unique<TempDir>(fs::temp_directory_path(), "benchrun-spawn-run-");
    for (const char* d : {"upper", "work", "merged"}) {
      fs::create_directory(run_dir_->path() / d);
      fs::permissions(run_dir_->path() / d, fs::perms(0755));
    }
  }

  fs::path lower() const { return lower_dir_->path(); }
  fs::path upper() const { return run_dir_->path() / "upper"; }

  SpawnSpec spec(std::vector<std::string> argv) const {
    SpawnSpec s;
    s.lowerdir = lower().string();
    s.upperdir = upper().string();
    s.workdir = (run_dir_->path() / "work").string();
    s.merged = (run_dir_->path() / "merged").string();
    s.argv = std::move(argv);
    s.env = {"PATH=/bin", "HOME=/"};
    s.seccomp = program_;
    return s;
  }

  static SpawnSpec shell(SpawnSpec s, const std::string& script) {
    s.argv = {"/bin/busybox", "sh", "-c", script};
    return s;
  }
  SpawnSpec shell(const std::string& script) const { return shell(spec({}), script); }

  // spawn + release + collect stdout/stderr + wait, bounded by a deadline.
  static RunResult run(SpawnSpec s, std::chrono::milliseconds timeout = 10s) {
    int out[2], err[2];
    if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0)
      throw std::runtime_error("pipe2");
    UniqueFd out_r(out[0]), out_w(out[1]), err_r(err[0]), err_w(err[1]);
    s.stdout_fd = out_w.get();
    s.stderr_fd = err_w.get();
    SandboxedChild child = spawn_sandboxed(s);
    out_w.reset();
    err_w.reset();
    child.release();
    RunResult r;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    pollfd fds[2] = {{out_r.get(), POLLIN, 0}, {err_r.get(), POLLIN, 0}};
    std::string* sinks[2] = {&r.out, &r.err};
    int open_count = 2;
    while (open_count > 0) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        r.timed_out = true;
        break;
      }
      int n = ::poll(fds, 2, static_cast<int>(left.count()));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) continue;
      for (int i = 0; i < 2; ++i) {
        if (fds[i].fd < 0 || fds[i].revents == 0) continue;
        char buf[4096];
        ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
        if (got > 0) {
          sinks[i]->append(buf, static_cast<size_t>(got));
        } else if (got == 0 || errno != EINTR) {
          fds[i].fd = -1;
          --open_count;
        }
      }
    }
    if (r.timed_out) return r;  // child's destructor kills and reaps it
    r.status = child.wait();
    r.root = child.take_root_fd();
    return r;
  }

  static inline std::unique_ptr<TempDir> lower_dir_;
  static inline std::vector<sock_filter> program_;
  std::unique_ptr<TempDir> run_dir_;
};

TEST_F(SpawnTest, CapturesStdoutStderrAndExitCode) {
  RunResult r = run(shell("echo out; echo err >&2; exit 7"));
  ASSERT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code(), 7);
  EXPECT_EQ(r.out, "out\n");
  EXPECT_EQ(r.err, "err\n");
}

TEST_F(SpawnTest, RunsAsPid1WithItsHostname) {
  RunResult r = run(shell("echo $$; hostname"));
  EXPECT_EQ(r.exit_code(), 0) << r.err;
  EXPECT_EQ(r.out, "1\nbenchrun\n");
}

TEST_F(SpawnTest, OwnNetworkHasOnlyLoopbackAndItIsUp) {
  // /proc/net/dev: two header lines, then one line per interface.
  RunResult r = run(shell("grep : /proc/net/dev | cut -d: -f1; cat /sys/class/net/lo/flags"));
  EXPECT_EQ(r.exit_code(), 0) << r.err;
  EXPECT_EQ(r.out, "    lo\n0x9\n");  // IFF_UP | IFF_LOOPBACK
}

TEST_F(SpawnTest, NetworkTrueSharesTheHostsInterfaces) {
  SpawnSpec s = shell("grep -c : /proc/net/dev");
  s.network = true;
  RunResult r = run(s);
  EXPECT_EQ(r.exit_code(), 0) << r.err;
  std::string host = slurp("/proc/net/dev");
  size_t host_ifaces = 0;
  for (size_t pos = 0; (pos = host.find(':', pos)) != std::string::npos; ++pos) ++host_ifaces;
  EXPECT_EQ(r.out, std::to_string(host_ifaces) + "\n");
}

TEST_F(SpawnTest, SwitchesUserGroupAndSupplementaryGroups) {
  SpawnSpec s = shell("id -u; id -g; id -G");
  s.uid = 65534;
  s.gid = 65534;
  s.groups = {100};
  RunResult r = run(s);
  EXPECT_EQ(r.exit_code(), 0) << r.err;
  EXPECT_EQ(r.out, "65534\n65534\n65534 100\n");
}

TEST_F(SpawnTest, RootHasNoCapabilitiesNoNewPrivsAndSeccomp) {
  RunResult r = run(shell("cat /proc/self/status"));  // uid 0: the strongest case
  ASSERT_EQ(r.exit_code(), 0) << r.err;
  for (const char* cap : {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"})
    EXPECT_EQ(status_field(r.out, cap), "0000000000000000") << cap;
  EXPECT_EQ(status_field(r.out, "NoNewPrivs"), "1");
  EXPECT_EQ(status_field(r.out, "Seccomp"), "2");
  EXPECT_EQ(status_field(r.out, "Uid"), "0\t0\t0\t0");
  EXPECT_EQ(status_field(r.out, "Groups"), "");  // the parent's groups are gone
}

TEST_F(SpawnTest, RebootMountAndUnshareFail) {
  // reboot -f calls reboot(2) directly. Even if it were allowed it would only end this pid
  // namespace (pid_namespaces(7)); the guard makes sure we are its init.
  RunResult r =
      run(shell("mount -t tmpfs none /tmp; echo mount=$?; unshare -n true; echo unshare=$?; "
                "[ $$ = 1 ] && reboot -f; echo reboot=$?"));
  ASSERT_TRUE(WIFEXITED(r.status)) << "status " << r.status;
  EXPECT_EQ(r.out, "mount=1\nunshare=1\nreboot=1\n") << r.err;
  EXPECT_NE(r.err.find("mount: permission denied"), std::string::npos) << r.err;  // busybox's EPERM
  EXPECT_NE(r.err.find("unshare(0x40000000): Operation not permitted"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("reboot: (null): Operation not permitted"), std::string::npos) << r.err;
}

TEST_F(SpawnTest, RootIsAWritableOverlayAndTheLowerIsUntouched) {
  auto before = tree_listing(lower());
  RunResult r = run(
      shell("echo data > /hello.txt && echo more >> /etc/motd && echo t > /tmp/t && cat /tmp/t"));
  ASSERT_EQ(r.exit_code(), 0) << r.err;
  EXPECT_EQ(r.out, "t\n");
  EXPECT_EQ(tree_listing(lower()), before);
  EXPECT_EQ(slurp(lower() / "etc/motd"), "lower\n");
  EXPECT_EQ(slurp(upper() / "hello.txt"), "data\n");
  EXPECT_EQ(slurp(upper() / "etc/motd"), "lower\nmore\n");
  EXPECT_FALSE(fs::exists(upper() / "tmp/t"));  // /tmp is a tmpfs

  // The root fd outlives the child and its mount namespace.
  ASSERT_TRUE(r.root);
  UniqueFd f(::openat(r.root.get(), "hello.txt", O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(f) << std::strerror(errno);
  char buf[16] = {};
  EXPECT_EQ(::read(f.get(), buf, sizeof buf), 5);
  EXPECT_STREQ(buf, "data\n");
}

TEST_F(SpawnTest, MasksAndWriteProtectsProcAndSysPaths) {
  // Which of runc's paths exist depends on the kernel's config: check those this host has.
  std::vector<std::string> masked_files, masked_dirs, readonly;
  for (int i = 0; benchrun::sandbox::masked_path(i); ++i) {
    std::string p = benchrun::sandbox::masked_path(i);
    if (fs::is_directory(p))
      masked_dirs.push_back(p);
    else if (fs::exists(p))
      masked_files.push_back(p);
  }
  for (int i = 0; benchrun::sandbox::readonly_path(i); ++i)
    if (fs::exists(benchrun::sandbox::readonly_path(i)))
      readonly.push_back(benchrun::sandbox::readonly_path(i));
  ASSERT_FALSE(masked_files.empty() && masked_dirs.empty());

  std::string script = "cat /proc/self/mountinfo; echo ==; ";
  for (const auto& f : masked_files) script += "wc -c < " + f + "; ";
  for (const auto& d : masked_dirs) script += "ls -A " + d + " | wc -l; ";
  script += "echo x > /proc/sys/kernel/hostname; echo hostname-write=$?; touch /sys/x; echo sys=$?";
  RunResult r = run(shell(script));
  ASSERT_EQ(r.exit_code(), 0) << r.err;
  size_t sep = r.out.find("==\n");
  ASSERT_NE(sep, std::string::npos) << r.out;
  std::string mountinfo = r.out.substr(0, sep), rest = r.out.substr(sep + 3);

  std::string want_rest;
  for (size_t i = 0; i < masked_files.size() + masked_dirs.size(); ++i) want_rest += "0\n";
  want_rest += "hostname-write=1\nsys=1\n";
  EXPECT_EQ(rest, want_rest) << r.err;
  EXPECT_NE(r.err.find("/proc/sys/kernel/hostname: Read-only file system"), std::string::npos)
      << r.err;

  // mountinfo(5): mount point is field 5, per-mount options field 6, fs type after the "-".
  std::map<std::string, std::pair<std::string, std::string>> mounts;  // point -> (opts, type)
  std::istringstream in(mountinfo);
  for (std::string line; std::getline(in, line);) {
    std::istringstream f(line);
    std::vector<std::string> fields;
    for (std::string w; f >> w;) fields.push_back(w);
    auto dash = std::find(fields.begin(), fields.end(), "-");
    if (fields.size() < 6 || dash == fields.end() || dash + 1 == fields.end()) continue;
    mounts[fields[4]] = {fields[5], *(dash + 1)};  // the last mount on a point wins
  }
  auto read_only = [](const std::string& opts) { return opts.rfind("ro", 0) == 0; };
  for (const auto& d : masked_dirs) {
    ASSERT_TRUE(mounts.count(d)) << d << " is not masked";
    EXPECT_EQ(mounts[d].second, "tmpfs") << d;
    EXPECT_TRUE(read_only(mounts[d].first)) << d;
  }
  for (const auto& f : masked_files) EXPECT_TRUE(mounts.count(f)) << f << " is not masked";
  for (const auto& p : readonly) {
    ASSERT_TRUE(mounts.count(p)) << p << " is not a mount";
    EXPECT_TRUE(read_only(mounts[p].first)) << p << ": " << mounts[p].first;
  }
  EXPECT_TRUE(read_only(mounts["/sys"].first));
  EXPECT_EQ(mounts["/proc"].first, "rw,nosuid,nodev,noexec,relatime");
}

TEST_F(SpawnTest, DevHasTheStandardNodesForAnyUser) {
  SpawnSpec s = shell(
      "ls /dev; ls /dev/pts; echo x > /dev/null && head -c 4 /dev/zero | wc -c; "
      "for l in fd stdin stdout stderr ptmx; do readlink /dev/$l; done");
  s.uid = 65534;
  s.gid = 65534;
  RunResult r = run(s);
  EXPECT_EQ(r.exit_code(), 0) << r.err;
  EXPECT_EQ(r.out,
            "fd\nfull\nnull\nptmx\npts\nrandom\nshm\nstderr\nstdin\nstdout\ntty\nurandom\nzero\n"
            "ptmx\n4\n/proc/self/fd\n/proc/self/fd/0\n/proc/self/fd/1\n/proc/self/fd/2\n"
            "pts/ptmx\n");
  // Not tested: writing to /dev/stderr as uid 65534. It reopens the caller's pipe through
  // /proc/self/fd/2, and a pipe inode belongs to its creator (root, mode 0600): EACCES, as in
  // Docker. The runner can fchown its pipes to the workload's uid if that matters.
}

TEST_F(SpawnTest, CreatesTheWorkdirAndAppliesRlimitsAndEnv) {
  SpawnSpec s = shell("pwd; ulimit -n; echo $FOO");
  s.cwd = "/work/here";
  s.rlimits = {Rlimit{RLIMIT_NOFILE, 64, 64}};
  s.env.push_back("FOO=bar");
  RunResult r = run(s);
  EXPECT_EQ(r.exit_code(), 0) << r.err;
  EXPECT_EQ(r.out, "/work/here\n64\nbar\n");
}

TEST_F(SpawnTest, SearchesThePathFromTheSpecNotTheCallers) {
  SpawnSpec s = spec({"sh", "-c", "echo found"});
  s.env = {"PATH=/nowhere:/bin"};
  RunResult r = run(s);
  EXPECT_EQ(r.exit_code(), 0) << r.err;
  EXPECT_EQ(r.out, "found\n");
}

TEST_F(SpawnTest, MissingBinaryIsAnExecError) {
  SpawnSpec s = spec({"no-such-tool"});
  s.env = {"PATH=/usr/bin:/bin"};
  try {
    run(s);
    FAIL() << "no exception";
  } catch (const SandboxError& e) {
    EXPECT_EQ(e.stage(), "exec");
    EXPECT_STREQ(
        e.what(),
        "exec 'no-such-tool': No such file or directory in the image (PATH=/usr/bin:/bin)");
  }
}

TEST_F(SpawnTest, NonExecutableFileIsAnExecError) {
  try {
    run(spec({"/etc/motd"}));
    FAIL() << "no exception";
  } catch (const SandboxError& e) {
    EXPECT_EQ(e.stage(), "exec");
    EXPECT_STREQ(e.what(), "exec '/etc/motd': Permission denied");
  }
}

TEST_F(SpawnTest, BadLowerdirIsAMountOverlayError) {
  SpawnSpec s = shell("true");
  s.lowerdir = (run_dir_->path() / "missing").string();
  try {
    run(s);
    FAIL() << "no exception";
  } catch (const SandboxError& e) {
    EXPECT_EQ(e.stage(), "mount overlay");
    EXPECT_NE(std::string(e.what()).find("No such file or directory"), std::string::npos)
        << e.what();
  }
}

TEST_F(SpawnTest, FailuresAfterReleaseNameTheirStage) {
  SpawnSpec under_file = shell("true");
  under_file.cwd = "/etc/motd/sub";
  try {
    run(under_file);
    FAIL() << "no exception";
  } catch (const SandboxError& e) {
    EXPECT_EQ(e.stage(), "create workdir");
    EXPECT_STREQ(e.what(), "sandbox setup failed at 'create workdir': Not a directory");
  }
  SpawnSpec no_access = shell("true");  // chdir happens as the workload's user
  no_access.cwd = "/secret";
  no_access.uid = 65534;
  try {
    run(no_access);
    FAIL() << "no exception";
  } catch (const SandboxError& e) {
    EXPECT_EQ(e.stage(), "chdir");
    EXPECT_STREQ(e.what(), "sandbox setup failed at 'chdir': Permission denied");
  }
}

TEST_F(SpawnTest, RefusesASymlinkedMountPointInTheImage) {
  // Before pivot_root an image symlink would resolve against the host's root.
  fs::create_symlink("/etc", upper() / "tmp");
  try {
    run(shell("true"));
    FAIL() << "no exception";
  } catch (const SandboxError& e) {
    EXPECT_EQ(e.stage(), "mount /tmp");
    EXPECT_STREQ(e.what(),
                 "sandbox setup failed at 'mount /tmp': Too many levels of symbolic links");
  }
}

TEST_F(SpawnTest, ChildKeepsNoInheritedDescriptors) {
  UniqueFd leaked(::open("/dev/null", O_RDONLY));  // no O_CLOEXEC, like a careless thread's
  ASSERT_TRUE(leaked);
  SandboxedChild child = spawn_sandboxed(shell("ls /proc/$$/fd"));
  // While it waits for release: stdio plus its two channels (closed, not just close-on-exec,
  // so a sibling spawn's channels cannot linger in it).
  auto fd_count = [&] {
    int n = 0;
    for ([[maybe_unused]] auto& e :
         fs::directory_iterator("/proc/" + std::to_string(child.pid()) + "/fd"))
      ++n;
    return n;
  };
  // Blocked in recvfrom(2) (x86_64: 45) = waiting for "go", with setup's temporary fds closed.
  auto waiting_for_go = [&] {
    std::string sc = slurp("/proc/" + std::to_string(child.pid()) + "/syscall");
    return sc.rfind(std::to_string(SYS_recvfrom) + " ", 0) == 0;
  };
  auto deadline = std::chrono::steady_clock::now() + 2s;
  while (!waiting_for_go() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(1ms);
  ASSERT_TRUE(waiting_for_go());
  EXPECT_EQ(fd_count(), 5);
  EXPECT_FALSE(
      fs::exists("/proc/" + std::to_string(child.pid()) + "/fd/" + std::to_string(leaked.get())));
  child.release();
  EXPECT_EQ(child.wait(), 0);

  RunResult r = run(shell("ls /proc/$$/fd; true"));  // the shell, after exec: stdio only
  EXPECT_EQ(r.out, "0\n1\n2\n") << r.err;
}

TEST_F(SpawnTest, SpawnsFromAMultithreadedParent) {
  // Other threads allocate (and hold malloc's locks) while we clone: the child must not need them.
  std::atomic<bool> stop{false};
  std::vector<std::thread> churn;
  for (int t = 0; t < 3; ++t)
    churn.emplace_back([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        std::vector<std::string> v(64, std::string(100, 'x'));
        (void)v;
      }
    });
  int ok = 0;
  for (int i = 0; i < 10; ++i) {
    run_dir_ = std::make_unique<TempDir>(fs::temp_directory_path(), "benchrun-spawn-run-");
    for (const char* d : {"upper", "work", "merged"}) fs::create_directory(run_dir_->path() / d);
    RunResult r = run(spec({"/bin/busybox", "true"}), 5s);
    ok += !r.timed_out && r.exit_code() == 0;
  }
  stop = true;
  for (auto& t : churn) t.join();
  EXPECT_EQ(ok, 10);
}

TEST_F(SpawnTest, InvalidSpecsAreConfigErrors) {
  SpawnSpec relative = shell("true");
  relative.lowerdir = "relative/lower";
  EXPECT_THROW(spawn_sandboxed(relative), ConfigError);
  SpawnSpec comma = shell("true");
  comma.upperdir = upper().string() + ",lowerdir=/";
  EXPECT_THROW(spawn_sandboxed(comma), ConfigError);
  SpawnSpec empty = shell("true");
  empty.argv.clear();
  EXPECT_THROW(spawn_sandboxed(empty), ConfigError);
}

TEST_F(SpawnTest, WorkloadIsInitOfItsPidNamespaceSoOnlySigkillIsForced) {
  // pid_namespaces(7): from an ancestor namespace only SIGKILL/SIGSTOP reach an init that has no
  // handler; a SIGTERM is dropped. Runners must time out with SIGKILL (or the cgroup).
  SandboxedChild child = spawn_sandboxed(spec({"/bin/busybox", "sleep", "30"}));
  child.release();
  ASSERT_EQ(::syscall(SYS_pidfd_send_signal, child.pidfd(), SIGTERM, nullptr, 0), 0);
  std::this_thread::sleep_for(100ms);
  siginfo_t si{};
  ASSERT_EQ(::waitid(P_PIDFD, static_cast<id_t>(child.pidfd()), &si, WEXITED | WNOHANG | WNOWAIT),
            0);
  EXPECT_EQ(si.si_pid, 0) << "SIGTERM ended the sandbox's init";
  ASSERT_EQ(::syscall(SYS_pidfd_send_signal, child.pidfd(), SIGKILL, nullptr, 0), 0);
  int status = child.wait();
  ASSERT_TRUE(WIFSIGNALED(status)) << status;
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
  EXPECT_EQ(child.wait(), status);  // cached
}

TEST_F(SpawnTest, StdoutAndStderrDefaultToDevNull) {
  SandboxedChild child = spawn_sandboxed(shell("echo lost; echo lost >&2; cat; exit 3"));
  child.release();
  int status = child.wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 3) << status;
}

TEST_F(SpawnTest, DestructionKillsAndReapsReleasedAndUnreleasedChildren) {
  ASSERT_FALSE(has_children());
  auto start = std::chrono::steady_clock::now();
  { SandboxedChild waiting = spawn_sandboxed(spec({"/bin/busybox", "sleep", "30"})); }
  EXPECT_FALSE(has_children());
  {
    SandboxedChild running = spawn_sandboxed(spec({"/bin/busybox", "sleep", "30"}));
    running.release();
    SandboxedChild moved = std::move(running);  // only the new owner kills
  }
  EXPECT_FALSE(has_children());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

TEST_F(SpawnTest, LeavesNoMountsFdsOrZombiesBehind) {
  // Warm up whatever the first run allocates once (libseccomp, locale, ...).
  run(shell("true"));
  std::string mounts_before = slurp("/proc/self/mountinfo");
  int fds_before = count_open_fds();
  for (int i = 0; i < 3; ++i) {
    RunResult ok = run(shell("echo hi > /f"));
    EXPECT_EQ(ok.exit_code(), 0);
    EXPECT_THROW(run(spec({"/missing"})), SandboxError);
  }
  EXPECT_EQ(slurp("/proc/self/mountinfo"), mounts_before);
  EXPECT_EQ(count_open_fds(), fds_before);
  EXPECT_FALSE(has_children());
}

TEST_F(SpawnTest, ClonesIntoAV2CgroupBeforeRelease) {
  const fs::path unified = "/sys/fs/cgroup/unified";
  struct statfs st {};
  fs::path v2_root;
  if (::statfs("/sys/fs/cgroup", &st) == 0 && st.f_type == 0x63677270 /*CGROUP2_SUPER_MAGIC*/)
    v2_root = "/sys/fs/cgroup";
  else if (::statfs(unified.c_str(), &st) == 0 && st.f_type == 0x63677270)
    v2_root = unified;
  else
    GTEST_SKIP() << "no cgroup2 hierarchy mounted";
  fs::path cg = v2_root / ("benchrun-spawn-test-" + std::to_string(::getpid()));
  ASSERT_TRUE(fs::create_directory(cg));
  struct RemoveCg {
    fs::path p;
    ~RemoveCg() { ::rmdir(p.c_str()); }
  } remove_cg{cg};
  UniqueFd cg_fd(::open(cg.c_str(), O_DIRECTORY | O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(cg_fd);

  int out[2];
  ASSERT_EQ(::pipe2(out, O_CLOEXEC), 0);
  UniqueFd out_r(out[0]), out_w(out[1]);
  SpawnSpec s = shell("grep '^0::' /proc/self/cgroup");
  s.cgroup_fd = cg_fd.get();
  s.stdout_fd = out_w.get();
  SandboxedChild child = spawn_sandboxed(s);
  out_w.reset();
  EXPECT_EQ(slurp(cg / "cgroup.procs"), std::to_string(child.pid()) + "\n");
  child.release();
  std::string got;
  char buf[256];
  ssize_t n;
  while ((n = ::read(out_r.get(), buf, sizeof buf)) > 0) got.append(buf, static_cast<size_t>(n));
  int status = child.wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_EQ(got, "0::/\n");  // its own cgroup namespace is rooted at the run's cgroup
}

// As an ordinary user: a helper process drops to nobody (65534) and spawns with user_namespace,
// as a rootless benchrun would. The suite's lower dir is 0755 under /tmp; the run's upper, work and
// merged dirs are nobody's.
class RootlessSpawnTest : public SpawnTest {
 protected:
  static constexpr uid_t kNobody = 65534;
  static constexpr int kSkip = 77, kThrew = 126;

  void SetUp() override {
    SpawnTest::SetUp();
    if (IsSkipped()) return;
    std::string sysctl = slurp("/proc/sys/kernel/unprivileged_userns_clone");
    if (!sysctl.empty() && sysctl[0] == '0')
      GTEST_SKIP() << "kernel.unprivileged_userns_clone is 0: no user namespaces for users";
    fs::permissions(run_dir_->path(), fs::perms(0755));
    for (const char* d : {"upper", "work", "merged"})
      ASSERT_EQ(::chown((run_dir_->path() / d).c_str(), kNobody, kNobody), 0);
  }

  struct Outcome {
    int code = -1;     // the workload's exit code, or kSkip / kThrew
    std::string text;  // stdout (+ stderr), or the error message
  };

  // Forks, becomes nobody, runs s with user_namespace = true; reports back over a pipe.
  static Outcome run_as_nobody(SpawnSpec s) {
    s.user_namespace = true;
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) throw std::runtime_error("pipe2");
    UniqueFd rd(p[0]), wr(p[1]);
    pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork");
    if (pid == 0) {
      rd.reset();
      auto report = [&](int code, const std::string& text) {
        (void)!::write(wr.get(), text.data(), text.size());
        ::_exit(code);
      };
      if (::setgroups(0, nullptr) != 0 || ::setgid(kNobody) != 0 || ::setuid(kNobody) != 0)
        report(kThrew, std::string("drop to nobody: ") + std::strerror(errno));
      // setuid() made us non-dumpable, so our children's /proc files would be root's; an exec
      // (what a real unprivileged caller did last) resets that.
      ::prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
      try {
        RunResult r = run(s);
        if (r.timed_out) report(kThrew, "timed out");
        std::string text = r.out;
        if (!r.err.empty()) text += "[stderr] " + r.err;
        report(std::min(r.exit_code() & 0xff, kSkip - 1), text);
      } catch (const SandboxError& e) {
        std::string what = e.what();
        if (e.stage() == "clone" && what.find(std::strerror(EPERM)) != std::string::npos)
          report(kSkip, "user namespaces are not available to users here: " + what);
        if (e.stage() == "mount /proc" && what.find(std::strerror(EPERM)) != std::string::npos)
          report(kSkip, "procfs cannot be mounted in a user namespace here: " + what);
        report(kThrew, what);
      } catch (const std::exception& e) {
        report(kThrew, e.what());
      }
    }
    wr.reset();
    Outcome o;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(rd.get(), buf, sizeof buf)) > 0) o.text.append(buf, static_cast<size_t>(n));
    int status = 0;
    ::waitpid(pid, &status, 0);
    o.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return o;
  }
};

TEST_F(RootlessSpawnTest, UnprivilegedUserRunsAsRootOfItsOwnUserNamespace) {
  Outcome o = run_as_nobody(
      shell("id -u; id -g; cat /proc/self/uid_map | tr -s ' '; echo work > /written; cat /written; "
            "echo $$; hostname; ls /dev/null /dev/pts/ptmx; grep CapEff /proc/self/status"));
  if (o.code == kSkip) GTEST_SKIP() << o.text;
  ASSERT_EQ(o.code, 0) << o.text;
  EXPECT_EQ(o.text,
            "0\n0\n 0 65534 1\nwork\n1\nbenchrun\n/dev/null\n/dev/pts/ptmx\n"
            "CapEff:\t0000000000000000\n");
  // The write landed in the per-run upper, owned by the caller on the host; the lower is intact.
  struct stat st {};
  ASSERT_EQ(::stat((upper() / "written").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, kNobody);
  EXPECT_FALSE(fs::exists(lower() / "written"));
}

TEST_F(RootlessSpawnTest, ExitCodeAndSeccompAsAnUnprivilegedUser) {
  Outcome o = run_as_nobody(shell("reboot -f; mount -t tmpfs x /tmp && echo mounted; exit 9"));
  if (o.code == kSkip) GTEST_SKIP() << o.text;
  EXPECT_EQ(o.code, 9) << o.text;
  EXPECT_EQ(o.text.find("mounted\n"), std::string::npos) << o.text;
}

TEST_F(RootlessSpawnTest, OtherUsersAreRefusedWithAClearError) {
  SpawnSpec s = shell("true");
  s.user_namespace = true;
  s.uid = 65534;
  s.gid = 65534;
  try {
    spawn_sandboxed(s);
    FAIL() << "spawned as an unmapped user";
  } catch (const SandboxError& e) {
    EXPECT_EQ(e.stage(), "user namespace");
    EXPECT_STREQ(e.what(),
                 "user 65534 is not available without root: only the calling user is mapped "
                 "(run as root for other users)");
  }
  EXPECT_FALSE(has_children());
}

TEST_F(SpawnTest, WaitReportsTheChildsResourceUsage) {
  SandboxedChild child = spawn_sandboxed(shell("i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done"));
  child.release();
  int status = child.wait();
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  const struct rusage& ru = child.rusage();
  EXPECT_GT(ru.ru_maxrss, 0);
  EXPECT_GT(ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec + ru.ru_stime.tv_sec * 1000000 +
                ru.ru_stime.tv_usec,
            0);
}

}  // namespace
