// seccomp_test.cpp: the default seccomp policy, loaded into forked children that probe syscalls.
#include "benchrun/sandbox/seccomp.hpp"

#include <errno.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/netlink.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <net/if.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <string>
#include <thread>

#include "benchrun/common/unique_fd.hpp"

using benchrun::UniqueFd;
using benchrun::sandbox::build_seccomp_program;
using benchrun::sandbox::denied_syscalls;

namespace {

struct Probe {
  int status = 0;
  std::string failures;  // what the child found wrong, one per line
};

// Forks; the child (optionally) loads the program after no_new_privs, runs body, which appends
// to `failures`, and reports them through a pipe. Core dumps are off (SIGSYS would dump).
Probe run_probe(const std::vector<sock_filter>* prog,
                const std::function<void(std::string&)>& body) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return {-1, "pipe2 failed"};
  UniqueFd rd(p[0]), wr(p[1]);
  pid_t pid = ::fork();
  if (pid < 0) return {-1, "fork failed"};
  if (pid == 0) {
    rlimit no_core{0, 0};
    ::setrlimit(RLIMIT_CORE, &no_core);
    std::string failures;
    if (prog) {
      sock_fprog fprog{static_cast<unsigned short>(prog->size()),
                       const_cast<sock_filter*>(prog->data())};
      if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
          ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog, 0, 0) != 0) {
        failures = std::string("loading the filter: ") + std::strerror(errno) + "\n";
        ssize_t ignored = ::write(wr.get(), failures.data(), failures.size());
        (void)ignored;
        ::_exit(2);
      }
    }
    body(failures);
    ssize_t ignored = ::write(wr.get(), failures.data(), failures.size());
    (void)ignored;
    ::_exit(failures.empty() ? 0 : 1);
  }
  wr.reset();
  Probe out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(rd.get(), buf, sizeof buf)) > 0)
    out.failures.append(buf, static_cast<size_t>(n));
  while (::waitpid(pid, &out.status, 0) < 0 && errno == EINTR) {
  }
  return out;
}

// rc/errno of a call, checked against the expected errno (0: the call must succeed).
void expect(std::string& failures, const char* what, long rc, int expected_errno) {
  int err = rc < 0 ? errno : 0;
  if (err != expected_errno)
    failures += std::string(what) + ": got " + (err ? std::strerror(err) : "success") + ", want " +
                (expected_errno ? std::strerror(expected_errno) : "success") + "\n";
}

const std::vector<sock_filter>& program() {
  static const std::vector<sock_filter> prog = build_seccomp_program();
  return prog;
}

bool exited_cleanly(const Probe& p) { return WIFEXITED(p.status) && WEXITSTATUS(p.status) == 0; }

// Calls the filter must deny, with arguments that make them harmless if it does not. Unfiltered
// (the control) they fail with other errors (ENOENT, EINVAL, EBADF, ENOSYS, ...) or succeed.
void probe_administrative_calls(std::string& f, bool filtered) {
  auto check = [&](const char* what, long rc) {
    int err = rc < 0 ? errno : 0;
    if (filtered && err != EPERM)
      f += std::string(what) + ": got " + (err ? std::strerror(err) : "success") + ", want EPERM\n";
    if (!filtered && err == EPERM) f += std::string(what) + ": EPERM without the filter\n";
  };
  check("mount", ::mount(nullptr, "/nonexistent-benchrun", nullptr, MS_BIND, nullptr));
  check("umount2", ::umount2("/nonexistent-benchrun", 0));
  check("reboot(bad magic)", ::syscall(SYS_reboot, 0, 0, 0, nullptr));  // never reboots
  check("unshare(0)", ::unshare(0));
  check("setns(-1)", ::setns(-1, 0));
  check("bpf(bad cmd)", ::syscall(SYS_bpf, 9999, nullptr, 0));
  check("keyctl(bad op)", ::syscall(SYS_keyctl, 9999, 0, 0, 0, 0));
  check("delete_module", ::syscall(SYS_delete_module, "benchrun-none", 0));
  check("pivot_root", ::syscall(SYS_pivot_root, "/nonexistent-a", "/nonexistent-b"));
  check("open_tree", ::syscall(SYS_open_tree, -1, "/nonexistent-benchrun", 0));
  check("fsopen(bad fs)", ::syscall(SYS_fsopen, "benchrun-nofs", 0));
  check("swapoff", ::syscall(SYS_swapoff, "/nonexistent-benchrun"));
}

}  // namespace

TEST(Seccomp, ProgramIsBpfEndingInReturn) {
  const auto& prog = program();
  ASSERT_FALSE(prog.empty());
  EXPECT_LT(prog.size(), 4096u);  // BPF_MAXINSNS
  EXPECT_EQ(BPF_CLASS(prog.back().code), BPF_RET);
}

TEST(Seccomp, DeniedListKeepsDebuggersAndProfilers) {
  std::vector<std::string> names;
  for (const char* n : denied_syscalls()) names.emplace_back(n);
  auto has = [&](const char* n) { return std::find(names.begin(), names.end(), n) != names.end(); };
  for (const char* n : {"mount", "umount2", "reboot", "unshare", "setns", "bpf", "kexec_load",
                        "init_module", "open_by_handle_at", "userfaultfd", "clone3"})
    EXPECT_TRUE(has(n)) << n;
  EXPECT_FALSE(has("ptrace"));
  EXPECT_FALSE(has("perf_event_open"));
}

TEST(Seccomp, ControlWithoutFilterTheProbesAreNotEperm) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root: the unfiltered results assume root";
  Probe p = run_probe(nullptr, [](std::string& f) { probe_administrative_calls(f, false); });
  EXPECT_TRUE(exited_cleanly(p)) << p.failures;
}

TEST(Seccomp, DeniesAdministrativeSyscallsWithEperm) {
  Probe p = run_probe(&program(), [](std::string& f) {
    probe_administrative_calls(f, true);
    expect(f, "userfaultfd", ::syscall(SYS_userfaultfd, 0), EPERM);
    expect(f, "syslog(size)", ::syscall(SYS_syslog, 10, nullptr, 0), EPERM);
    expect(f, "adjtimex", ::syscall(SYS_adjtimex, nullptr), EPERM);
  });
  EXPECT_TRUE(exited_cleanly(p)) << p.failures;
}

TEST(Seccomp, AllowsDebuggersProfilersAndOrdinaryCalls) {
  Probe p = run_probe(&program(), [](std::string& f) {
    // Invalid arguments on purpose: the point is which errno comes back, not the call.
    expect(f, "ptrace(attach pid 0)", ::syscall(SYS_ptrace, PTRACE_ATTACH, 0, 0, 0), ESRCH);
    expect(f, "perf_event_open(NULL)", ::syscall(SYS_perf_event_open, nullptr, 0, -1, -1, 0),
           EFAULT);
    expect(f, "getpid", ::getpid(), 0);
    int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    expect(f, "open", fd, 0);
    if (fd >= 0) ::close(fd);
  });
  EXPECT_TRUE(exited_cleanly(p)) << p.failures;
}

TEST(Seccomp, CloneWithNamespaceFlagsDeniedPlainForkAndThreadsWork) {
  Probe p = run_probe(&program(), [](std::string& f) {
    for (unsigned long flag : {CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWUTS,
                               CLONE_NEWIPC, CLONE_NEWCGROUP}) {
      long rc = ::syscall(SYS_clone, flag | SIGCHLD, 0, 0, 0, 0);
      if (rc == 0) ::_exit(0);  // should not happen: the child leaves at once
      expect(f, "clone(CLONE_NEW*)", rc, EPERM);
    }
    clone_args args{};
    args.exit_signal = SIGCHLD;
    long rc = ::syscall(SYS_clone3, &args, sizeof args);
    if (rc == 0) ::_exit(0);
    expect(f, "clone3", rc, ENOSYS);
    pid_t child = ::fork();  // glibc: clone without namespace flags
    if (child == 0) ::_exit(7);
    int status = 0;
    if (child < 0 || ::waitpid(child, &status, 0) != child || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 7)
      f += "fork/wait did not work\n";
    bool ran = false;  // pthread_create tries clone3, gets ENOSYS, falls back to clone
    std::thread([&] { ran = true; }).join();
    if (!ran) f += "thread did not run\n";
  });
  EXPECT_TRUE(exited_cleanly(p)) << p.failures;
}

TEST(Seccomp, PersonalityOnlyDefaultValues) {
  Probe p = run_probe(&program(), [](std::string& f) {
    expect(f, "query", ::syscall(SYS_personality, 0xffffffffUL), 0);
    for (unsigned long ok : {0x0UL, 0x8UL /*PER_LINUX32*/, 0x20000UL /*UNAME26*/,
                             0x40000UL /*ADDR_NO_RANDOMIZE*/, 0x60008UL}) {
      std::string what = "personality(" + std::to_string(ok) + ")";
      expect(f, what.c_str(), ::syscall(SYS_personality, ok), 0);
    }
    ::syscall(SYS_personality, 0UL);
    for (unsigned long bad : {0x400000UL /*READ_IMPLIES_EXEC*/, 0x100000UL /*MMAP_PAGE_ZERO*/,
                              0x100080UL, 0x6UL /*PER_BSD*/, 0x80000000UL, 0xfffffffeUL,
                              0x7fffffffUL, 0x800000UL /*ADDR_LIMIT_32BIT*/}) {
      std::string what = "personality(" + std::to_string(bad) + ")";
      expect(f, what.c_str(), ::syscall(SYS_personality, bad), EPERM);
    }
  });
  EXPECT_TRUE(exited_cleanly(p)) << p.failures;
}

TEST(Seccomp, X32SyscallKillsTheProcess) {
  Probe p = run_probe(&program(), [](std::string& f) {
    ::syscall(0x40000000L | SYS_getpid);  // __X32_SYSCALL_BIT
    f += "survived an x32 syscall\n";
  });
  ASSERT_TRUE(WIFSIGNALED(p.status)) << p.failures;
  EXPECT_EQ(WTERMSIG(p.status), SIGSYS);
}

TEST(Seccomp, I386SyscallKillsTheProcess) {
  auto int80_getpid = [](std::string& f) {
    ::signal(SIGSEGV, SIG_DFL);  // no emulation: die quietly (no sanitizer report)
    long ret = 20;               // i386 getpid
    asm volatile("int $0x80" : "+a"(ret) : : "memory");
    if (ret != ::getpid()) f += "int 0x80 getpid returned " + std::to_string(ret) + "\n";
  };
  // Without IA-32 emulation int 0x80 never reaches seccomp (SIGSEGV): nothing to test then.
  Probe control = run_probe(nullptr, int80_getpid);
  if (!exited_cleanly(control)) GTEST_SKIP() << "no IA-32 emulation in this kernel";
  Probe p = run_probe(&program(), int80_getpid);
  ASSERT_TRUE(WIFSIGNALED(p.status)) << p.failures;
  EXPECT_EQ(WTERMSIG(p.status), SIGSYS);
}

namespace {

// socket(family, SOCK_DGRAM or SOCK_STREAM, protocol) under the filter; a created socket is closed.
// Returns the errno (0: created).
int socket_errno(long family, int type, long protocol) {
  long fd = ::syscall(SYS_socket, family, type | SOCK_CLOEXEC, protocol);
  if (fd >= 0) {
    ::close(static_cast<int>(fd));
    return 0;
  }
  return errno;
}

}  // namespace

TEST(Seccomp, SocketFamiliesOutsideTheAllowListFailWithEafnosupport) {
  Probe p = run_probe(&program(), [](std::string& f) {
    struct Case {
      const char* what;
      long family;
      int type;
      long protocol;
    };
    // Families whose kernel support may be missing get EAFNOSUPPORT either way: only the ones this
    // kernel has (the control test) prove the filter; all must be denied here.
    for (Case c :
         {Case{"AF_VSOCK", 40, SOCK_STREAM, 0}, Case{"AF_ALG", 38, SOCK_SEQPACKET, 0},
          Case{"AF_PACKET", 17, SOCK_DGRAM, 0}, Case{"AF_KEY", 15, SOCK_RAW, 2},
          Case{"AF_BLUETOOTH", 31, SOCK_STREAM, 0}, Case{"AF_UNSPEC", 0, SOCK_STREAM, 0},
          Case{"AF_TIPC", 30, SOCK_DGRAM, 0}, Case{"AF_RDS", 21, SOCK_SEQPACKET, 0},
          Case{"AF_XDP", 44, SOCK_RAW, 0}, Case{"AF_MAX+", 46, SOCK_STREAM, 0},
          Case{"-1", -1, SOCK_STREAM, 0},
          // The kernel reads int: high bits of the register must not hide AF_VSOCK.
          Case{"AF_VSOCK|1<<32", (1L << 32) | 40, SOCK_STREAM, 0},
          Case{"AF_NETLINK/AUDIT", AF_NETLINK, SOCK_RAW, NETLINK_AUDIT},
          Case{"AF_NETLINK/KOBJECT_UEVENT", AF_NETLINK, SOCK_DGRAM, NETLINK_KOBJECT_UEVENT},
          Case{"AF_NETLINK/SOCK_DIAG", AF_NETLINK, SOCK_RAW, NETLINK_SOCK_DIAG},
          Case{"AF_NETLINK/GENERIC", AF_NETLINK, SOCK_RAW, NETLINK_GENERIC},
          Case{"AF_NETLINK/ROUTE|1<<32", AF_NETLINK, SOCK_RAW, 1L << 32 | 9}}) {
      int err = socket_errno(c.family, c.type, c.protocol);
      if (err != EAFNOSUPPORT)
        f += std::string("socket(") + c.what + "): got " + (err ? std::strerror(err) : "success") +
             ", want EAFNOSUPPORT\n";
      int sv[2];
      long rc = ::syscall(SYS_socketpair, c.family, c.type, c.protocol, sv);
      if (rc == 0) ::close(sv[0]), ::close(sv[1]);
      expect(f, (std::string("socketpair(") + c.what + ")").c_str(), rc, EAFNOSUPPORT);
    }
  });
  EXPECT_TRUE(exited_cleanly(p)) << p.failures;
}

TEST(Seccomp, ControlWithoutFilterVsockAlgNetlinkAuditAreCreated) {
  // The families above that this kernel supports are created without the filter, so the test
  // above sees the filter's answer, not the kernel's.
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (AF_PACKET, NETLINK_AUDIT)";
  Probe p = run_probe(nullptr, [](std::string& f) {
    expect(f, "AF_VSOCK", -!!(errno = socket_errno(40, SOCK_STREAM, 0)), 0);
    expect(f, "NETLINK_AUDIT", -!!(errno = socket_errno(AF_NETLINK, SOCK_RAW, NETLINK_AUDIT)), 0);
    expect(f, "NETLINK_KOBJECT_UEVENT",
           -!!(errno = socket_errno(AF_NETLINK, SOCK_DGRAM, NETLINK_KOBJECT_UEVENT)), 0);
    expect(f, "AF_PACKET", -!!(errno = socket_errno(17, SOCK_DGRAM, 0)), 0);
  });
  EXPECT_TRUE(exited_cleanly(p)) << p.failures;
}

TEST(Seccomp, SocketFamiliesABenchmarkNeedsStillWork) {
  Probe p = run_probe(&program(), [](std::string& f) {
    expect(f, "AF_UNIX stream", -!!(errno = socket_errno(AF_UNIX, SOCK_STREAM, 0)), 0);
    expect(f, "AF_UNIX dgram", -!!(errno = socket_errno(AF_UNIX, SOCK_DGRAM, 0)), 0);
    expect(f, "AF_INET tcp", -!!(errno = socket_errno(AF_INET, SOCK_STREAM, 0)), 0);
    expect(f, "AF_INET udp", -!!(errno = socket_errno(AF_INET, SOCK_DGRAM, 0)), 0);
    expect(f, "AF_INET6 tcp", -!!(errno = socket_errno(AF_INET6, SOCK_STREAM, 0)), 0);
    expect(f, "AF_NETLINK/ROUTE", -!!(errno = socket_errno(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE)),
           0);
    // High bits of the register are ignored by the kernel, and so by the filter.
    expect(f, "AF_INET|1<<32", -!!(errno = socket_errno((1L << 32) | AF_INET, SOCK_STREAM, 0)), 0);
    int sv[2];
    long rc = ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
    expect(f, "socketpair(AF_UNIX)", rc, 0);
    if (rc == 0) ::close(sv[0]), ::close(sv[1]);
    // getaddrinfo and if_nameindex open NETLINK_ROUTE sockets.
    if (auto* idx = ::if_nameindex()) {
      ::if_freenameindex(idx);
    } else {
      f += std::string("if_nameindex: ") + std::strerror(errno) + "\n";
    }
  });
  EXPECT_TRUE(exited_cleanly(p)) << p.failures;
}

TEST(Seccomp, IoUringFailsWithEnosys) {
  Probe p = run_probe(&program(), [](std::string& f) {
    // Bad arguments: without the filter these are EFAULT/EINVAL/EBADF, never ENOSYS on 6.x.
    expect(f, "io_uring_setup", ::syscall(SYS_io_uring_setup, 1, nullptr), ENOSYS);
    expect(f, "io_uring_enter", ::syscall(SYS_io_uring_enter, -1, 0, 0, 0, nullptr, 0), ENOSYS);
    expect(f, "io_uring_register", ::syscall(SYS_io_uring_register, -1, 0, nullptr, 0), ENOSYS);
  });
  EXPECT_TRUE(exited_cleanly(p)) << p.failures;
}

TEST(Seccomp, X32SocketKillsTheProcess) {
  // x32's socket is 41 | __X32_SYSCALL_BIT: it must not reach the kernel with AF_VSOCK.
  Probe p = run_probe(&program(), [](std::string& f) {
    ::syscall(0x40000000L | 41, 40, SOCK_STREAM, 0);
    f += "survived an x32 socket(AF_VSOCK)\n";
  });
  ASSERT_TRUE(WIFSIGNALED(p.status)) << p.failures;
  EXPECT_EQ(WTERMSIG(p.status), SIGSYS);
}

TEST(Seccomp, I386SocketcallKillsTheProcess) {
  // i386 socketcall(SYS_SOCKET, {AF_VSOCK, SOCK_STREAM, 0}) through int 0x80: the arguments sit
  // in user memory, out of BPF's reach, so the whole i386 ABI must be refused.
  auto int80_socketcall = [](std::string& f) {
    ::signal(SIGSEGV, SIG_DFL);
    // 32-bit pointer needed: place the argument block in the low 4 GiB.
    void* page = ::mmap(reinterpret_cast<void*>(0x10000000), 4096, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (page == MAP_FAILED) {
      f += "mmap low page failed\n";
      return;
    }
    auto* args = static_cast<uint32_t*>(page);
    args[0] = 40;  // AF_VSOCK
    args[1] = SOCK_STREAM;
    args[2] = 0;
    long ret = 102;  // i386 socketcall
    long call = 1;   // SYS_SOCKET
    long ptr = reinterpret_cast<long>(page);
    asm volatile("int $0x80" : "+a"(ret) : "b"(call), "c"(ptr) : "memory");
    if (ret >= 0) ::close(static_cast<int>(ret));
    f += "int 0x80 socketcall returned " + std::to_string(ret) + "\n";
  };
  Probe control = run_probe(nullptr, [](std::string& f) {
    ::signal(SIGSEGV, SIG_DFL);
    long ret = 20;  // i386 getpid
    asm volatile("int $0x80" : "+a"(ret) : : "memory");
    if (ret != ::getpid()) f += "no getpid\n";
  });
  if (!exited_cleanly(control)) GTEST_SKIP() << "no IA-32 emulation in this kernel";
  Probe p = run_probe(&program(), int80_socketcall);
  ASSERT_TRUE(WIFSIGNALED(p.status)) << p.failures;
  EXPECT_EQ(WTERMSIG(p.status), SIGSYS);
}
