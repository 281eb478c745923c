// child_test.cpp: the workload child's RootKind::kPrepared path, the one the microVM's init takes,
// run on the host: a root that is already mounted with its own /tmp, no socket to the parent, the
// switch_root-style move + chroot. A forked helper stands in for init (its own mount namespace, so
// the host's mounts stay untouched); the VM integration tests cover the same path in a real guest.
//
// Needs root (mounts, namespaces) and Debian's static busybox (/bin/busybox, busybox-static).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "benchrun/common/error.hpp"
#include "benchrun/common/fs.hpp"
#include "benchrun/common/unique_fd.hpp"
#include "benchrun/sandbox/seccomp.hpp"
#include "sandbox/caps.hpp"
#include "sandbox/child.hpp"
#include "sandbox/child_plan.hpp"
#include "sandbox/child_report.hpp"
#include "sandbox/mounts.hpp"

namespace fs = std::filesystem;
using benchrun::SandboxError;
using benchrun::TempDir;
using benchrun::UniqueFd;
namespace sandbox = benchrun::sandbox;

namespace {

constexpr const char* kBusybox = "/bin/busybox";

void write_all(int fd, const std::string& s) {
  size_t done = 0;
  while (done < s.size()) {
    ssize_t n = ::write(fd, s.data() + done, s.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

// What init does for a workload (guest/init/workload.cpp), in a helper process: root is mounted
// (here: bound onto itself) with a tmpfs /tmp, the child is cloned with init's namespaces and runs
// sandbox::child_main. Writes the workload's stdout and stderr to out, then a line on the setup
// error or on the /tmp file the workload left; returns the workload's exit status (or 100+).
int run_as_init(const fs::path& root, std::vector<std::string> argv, int out) try {
  if (::unshare(CLONE_NEWNS) != 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) ||
      ::mount(root.c_str(), root.c_str(), nullptr, MS_BIND, nullptr) != 0 ||
      ::mount("tmpfs", (root / "tmp").c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") != 0)
    return 100;
  sandbox::SpawnSpec spec{.merged = root.string(),
                          .argv = std::move(argv),
                          .env = {"PATH=/bin"},
                          .cwd = "/work/dir",
                          .uid = 65534,
                          .gid = 65534,
                          .seccomp = sandbox::build_seccomp_program(),
                          .network = true};
  sandbox::PreparedChild prepared(spec, sandbox::read_cap_last_cap(), sandbox::RootKind::kPrepared);
  UniqueFd devnull(::open("/dev/null", O_RDWR | O_CLOEXEC));
  int status[2];
  if (!devnull || ::pipe2(status, O_CLOEXEC) != 0) return 101;
  UniqueFd status_r(status[0]), status_w(status[1]);
  sandbox::ChildPlan& plan = prepared.plan();
  plan.status_fd = status_w.get();
  plan.devnull_fd = devnull.get();
  plan.stdout_fd = out;
  plan.stderr_fd = out;

  clone_args args;
  std::memset(&args, 0, sizeof args);
  args.flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP;
  args.exit_signal = SIGCHLD;
  long pid = ::syscall(SYS_clone3, &args, sizeof args);
  if (pid < 0) return 102;
  if (pid == 0) sandbox::child_main(plan);
  status_w.reset();
  sandbox::StatusRecord rec{};
  const bool failed = sandbox::read_status(status_r.get(), rec);
  int wstatus = 0;
  ::waitpid(static_cast<pid_t>(pid), &wstatus, 0);
  if (failed) {
    const SandboxError e = sandbox::failure_error(rec, spec.argv.front(), prepared.search_path(),
                                                  prepared.exec_paths());
    write_all(out, "setup error at '" + e.stage() + "': " + e.what() + "\n");
    return 103;
  }
  std::ifstream kept(root / "tmp/left");  // init's view, after the workload's namespace is gone
  std::stringstream ss;
  ss << kept.rdbuf();
  write_all(out, "init sees /tmp/left: " + ss.str());
  return WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 104;
} catch (const std::exception& e) {
  write_all(out, std::string("helper: ") + e.what() + "\n");
  return 105;
}

struct Outcome {
  int code = -1;
  std::string out;
};

class PreparedRootTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (mounts, new namespaces)";
    if (::access(kBusybox, X_OK) != 0) GTEST_SKIP() << "needs " << kBusybox;
    dir_ = std::make_unique<TempDir>(fs::temp_directory_path(), "benchrun-prepared-root-");
    fs::create_directories(root() / "bin");
    fs::create_directories(root() / "tmp");
    fs::copy_file(kBusybox, root() / "bin/busybox");
    for (const char* applet : {"sh", "cat", "echo", "id", "hostname", "wc", "grep", "ls"})
      fs::create_symlink("busybox", root() / "bin" / applet);
    fs::permissions(root(), fs::perms(0755));
  }

  fs::path root() const { return dir_->path() / "root"; }

  Outcome run(std::vector<std::string> argv) const {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) throw std::runtime_error("pipe2");
    UniqueFd r(p[0]), w(p[1]);
    pid_t helper = ::fork();
    if (helper == 0) ::_exit(run_as_init(root(), std::move(argv), w.get()));
    w.reset();
    Outcome o;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(r.get(), buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
      if (n > 0) o.out.append(buf, static_cast<size_t>(n));
    int wstatus = 0;
    ::waitpid(helper, &wstatus, 0);
    o.code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -1;
    return o;
  }

  std::unique_ptr<TempDir> dir_;
};

TEST_F(PreparedRootTest, RunsTheSandboxStepsInTheMountedRootAndKeepsItsTmp) {
  // A masked file this kernel has (which of runc's exist depends on its config).
  std::string masked;
  for (int i = 0; sandbox::masked_path(i) && masked.empty(); ++i)
    if (fs::is_regular_file(sandbox::masked_path(i))) masked = sandbox::masked_path(i);
  ASSERT_FALSE(masked.empty());
  Outcome o = run({"sh", "-c",
                   "echo pid=$$ uid=$(id -u) host=$(hostname) cwd=$PWD; "
                   "grep CapEff /proc/self/status; "
                   "echo masked=$(grep -c ' " +
                       masked +
                       " ' /proc/self/mountinfo); "
                       "test -c /dev/null && test -L /dev/stdout && echo dev ok; "
                       "echo root: $(ls /); "
                       "grep -q ' /proc/sys ro,' /proc/self/mountinfo && echo sys read-only; "
                       "echo hello > /tmp/left"});
  EXPECT_EQ(o.code, 0) << o.out;
  EXPECT_NE(o.out.find("pid=1 uid=65534 host=benchrun cwd=/work/dir\n"), std::string::npos)
      << o.out;
  EXPECT_NE(o.out.find("CapEff:\t0000000000000000\n"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("masked=1\n"), std::string::npos) << o.out;  // /dev/null bound over
  EXPECT_NE(o.out.find("dev ok\n"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("root: bin dev proc sys tmp work\n"), std::string::npos) << o.out;
  EXPECT_NE(o.out.find("sys read-only\n"), std::string::npos) << o.out;
  // The /tmp init mounted is the one the workload wrote to: init can collect from it.
  EXPECT_NE(o.out.find("init sees /tmp/left: hello\n"), std::string::npos) << o.out;
}

TEST_F(PreparedRootTest, AMissingCommandIsTheSandboxsExecError) {
  Outcome o = run({"nosuchcmd"});
  EXPECT_EQ(o.code, 103) << o.out;
  EXPECT_EQ(o.out,
            "setup error at 'exec': exec 'nosuchcmd': No such file or directory in the image "
            "(PATH=/bin)\n");
}

}  // namespace
