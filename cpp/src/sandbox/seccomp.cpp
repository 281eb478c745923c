// seccomp.cpp: the workload's default-allow seccomp policy, built with libseccomp and exported as
// BPF.
//
// libseccomp accepts one comparison per argument in a rule, and rules for one syscall are OR-ed, so
// "deny unless the argument is one of these values" is written as a cover of the denied values by
// masked-equality blocks (see add_personality_rules). A name this libseccomp does not know, or that
// it maps to a negative pseudo-number (a syscall this architecture lacks), is skipped.
#include "benchrun/sandbox/seccomp.hpp"

#include <errno.h>
#include <linux/netlink.h>
#include <linux/personality.h>
#include <sys/socket.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "benchrun/common/error.hpp"
#include "benchrun/common/unique_fd.hpp"

namespace benchrun::sandbox {

namespace {

// Denied with EPERM, unconditionally. ptrace and perf_event_open stay allowed on purpose:
// debuggers and profilers run inside benchmarks, and without capabilities they reach nothing
// outside the sandbox's pid namespace.
constexpr const char* kDenied[] = {
    "reboot",
    "kexec_load",
    "kexec_file_load",
    "mount",
    "umount2",
    "mount_setattr",
    "pivot_root",
    "swapon",
    "swapoff",
    "init_module",
    "finit_module",
    "delete_module",
    "bpf",
    "keyctl",
    "add_key",
    "request_key",
    "unshare",
    "setns",
    "acct",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "open_by_handle_at",
    "name_to_handle_at",
    "iopl",
    "ioperm",
    "quotactl",
    "quotactl_fd",
    "lookup_dcookie",
    "move_mount",
    "fsopen",
    "fsmount",
    "fsconfig",
    "fspick",
    "open_tree",
    "userfaultfd",
    "syslog",
    "vhangup",
    "nfsservctl",
};

// clone(2) with any of these flags is denied (unshare and setns already are); clone3 gets ENOSYS
// because BPF cannot read its flags (they sit in a user-memory struct), and glibc then falls back
// to clone, as under Docker's profile.
constexpr uint64_t kNamespaceFlags[] = {CLONE_NEWNS,  CLONE_NEWUTS, CLONE_NEWIPC,   CLONE_NEWUSER,
                                        CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWCGROUP};

// personality(2) values that stay allowed: execution domain PER_LINUX or PER_LINUX32 combined with
// any of UNAME26 and ADDR_NO_RANDOMIZE (Docker allows the first four; we also allow
// ADDR_NO_RANDOMIZE because benchmarks disable ASLR per process with `setarch -R`), plus the query
// 0xffffffff. The kernel takes an unsigned int, so only the low 32 bits of the argument matter.
constexpr uint32_t kPersonalityFreeBits =
    uint32_t{PER_LINUX32} | uint32_t{UNAME26} | uint32_t{ADDR_NO_RANDOMIZE};

// socket(2)/socketpair(2) families the workload may create; every other family fails with
// EAFNOSUPPORT, as on a kernel built without it. Network namespaces do not isolate every family:
// AF_VSOCK shares the host's port space (and reaches the hypervisor at CID 2 on a host that is a
// VM); AF_ALG, AF_PACKET, AF_KEY, AF_BLUETOOTH, ... are kernel attack surface no benchmark needs.
constexpr uint32_t kAllowedFamilies[] = {AF_UNIX, AF_INET, AF_INET6, AF_NETLINK};
// AF_NETLINK only with this protocol: glibc's getaddrinfo (AI_ADDRCONFIG) and if_nameindex use
// NETLINK_ROUTE; the others (audit, uevent, sock_diag, generic, ...) reach host-wide kernel state.
constexpr uint32_t kAllowedNetlinkProtocol = NETLINK_ROUTE;

// io_uring performs socket, open, ... operations on the kernel's side, out of seccomp's view, so it
// is denied. ENOSYS (not EPERM): libraries (liburing users, libuv, glibc-free runtimes) treat it as
// "kernel without io_uring" and fall back to ordinary syscalls, as under Docker's default profile.
constexpr const char* kIoUring[] = {"io_uring_setup", "io_uring_enter", "io_uring_register"};

struct CtxDeleter {
  void operator()(void* ctx) const noexcept { seccomp_release(ctx); }
};
using Ctx = std::unique_ptr<void, CtxDeleter>;

[[noreturn]] void fail(int rc, const std::string& what) {
  throw SysError(-rc, "seccomp: " + what, "");
}

void add_rule(const Ctx& ctx, uint32_t action, int nr, const char* name, unsigned count,
              const scmp_arg_cmp* cmp = nullptr) {
  int rc = seccomp_rule_add_array(ctx.get(), action, nr, count, cmp);
  if (rc < 0) fail(rc, std::string("add rule for ") + name);
}

// Denies personality(p) unless p (low 32 bits) is the query 0xffffffff or has no bit outside
// kPersonalityFreeBits. The denied values are partitioned into blocks, each a single
// MASKED_EQ(mask, value) rule: for p != query, "the highest bit of p outside the free bits is b",
// and because the query itself has bit 31 set, the block for b = 31 is split again by the highest
// clear bit c of p.
void add_personality_rules(std::vector<SeccompRule>& rules) {
  auto deny = [&](uint32_t mask, uint32_t value) {
    rules.push_back({"personality", EPERM, {{0, mask, value}}});
  };
  for (int b = 30; b >= 0; --b) {
    uint32_t bit = 1u << b;
    if (bit & kPersonalityFreeBits) continue;
    uint32_t at_or_above = ~(bit - 1);  // bits b..31
    deny(at_or_above & ~kPersonalityFreeBits, bit);
  }
  // Bit 31 set (the highest possible), and p is not 0xffffffff: some bit c < 31 is clear.
  for (int c = 30; c >= 0; --c) {
    uint32_t at_or_above = ~((1u << c) - 1);    // bits c..31
    uint32_t above = at_or_above & ~(1u << c);  // bits c+1..31, all set
    deny(at_or_above, above);
  }
}

// Covers the 32-bit values that are NOT in `allowed` with masked-equality blocks (mask, value):
// walk the binary trie of the allowed values from bit 31 down; at each node on a path to an allowed
// value, the child that leads to no allowed value is one block (all values with that prefix).
// The kernel reads these arguments as int, so the upper 32 bits of the register are ignored (the
// masks have them clear).
std::vector<std::pair<uint32_t, uint32_t>> cover_complement(const std::vector<uint32_t>& allowed) {
  std::vector<std::pair<uint32_t, uint32_t>> blocks;
  struct Node {
    uint32_t prefix;
    int bit;  // the next bit to decide; prefix holds bits above it
  };
  std::vector<Node> todo{{0, 31}};
  while (!todo.empty()) {
    Node n = todo.back();
    todo.pop_back();
    uint32_t above = n.bit == 31 ? 0u : ~((uint32_t{1} << (n.bit + 1)) - 1);
    for (uint32_t side : {0u, 1u}) {
      uint32_t prefix = n.prefix | (side << n.bit);
      uint32_t mask = above | (uint32_t{1} << n.bit);
      bool leads = false;
      for (uint32_t a : allowed) leads = leads || (a & mask) == prefix;
      if (!leads)
        blocks.emplace_back(mask, prefix);
      else if (n.bit > 0)
        todo.push_back({prefix, n.bit - 1});
    }
  }
  return blocks;
}

// socket(family, type, protocol) and socketpair(family, type, protocol, sv): EAFNOSUPPORT unless
// the family is allowed, and for AF_NETLINK unless the protocol is NETLINK_ROUTE.
void add_socket_rules(std::vector<SeccompRule>& rules) {
  const auto families =
      cover_complement({std::begin(kAllowedFamilies), std::end(kAllowedFamilies)});
  const auto protocols = cover_complement({kAllowedNetlinkProtocol});
  for (const char* name : {"socket", "socketpair"}) {
    for (auto [mask, value] : families) rules.push_back({name, EAFNOSUPPORT, {{0, mask, value}}});
    for (auto [mask, value] : protocols)
      rules.push_back(
          {name, EAFNOSUPPORT, {{0, 0xffffffffu, uint32_t{AF_NETLINK}}, {2, mask, value}}});
  }
}

std::vector<sock_filter> export_bpf(const Ctx& ctx) {
  UniqueFd mem(::memfd_create("benchrun-seccomp", MFD_CLOEXEC));
  if (!mem) throw_errno("memfd_create", "benchrun-seccomp");
  int rc = seccomp_export_bpf(ctx.get(), mem.get());
  if (rc < 0) fail(rc, "export BPF");
  off_t size = ::lseek(mem.get(), 0, SEEK_END);
  if (size < 0) throw_errno("lseek", "benchrun-seccomp");
  if (size == 0 || size % static_cast<off_t>(sizeof(sock_filter)) != 0)
    throw Error("seccomp: exported BPF has an invalid size (" + std::to_string(size) + " bytes)");
  std::vector<sock_filter> prog(static_cast<size_t>(size) / sizeof(sock_filter));
  size_t done = 0, want = static_cast<size_t>(size);
  auto* out = reinterpret_cast<char*>(prog.data());
  while (done < want) {
    ssize_t n = ::pread(mem.get(), out + done, want - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno("read", "benchrun-seccomp");
    if (n == 0) throw Error("seccomp: exported BPF was truncated");
    done += static_cast<size_t>(n);
  }
  return prog;
}

}  // namespace

std::vector<SeccompRule> seccomp_rules() {
  std::vector<SeccompRule> rules;
  for (const char* name : kDenied) rules.push_back({name, EPERM, {}});
  // x86_64 clone(flags, stack, ...): flags is argument 0 (s390 would differ; not supported).
  for (uint64_t flag : kNamespaceFlags) rules.push_back({"clone", EPERM, {{0, flag, flag}}});
  rules.push_back({"clone3", ENOSYS, {}});
  for (const char* name : kIoUring) rules.push_back({name, ENOSYS, {}});
  add_personality_rules(rules);
  add_socket_rules(rules);
  return rules;
}

std::vector<sock_filter> build_seccomp_program() {
  Ctx ctx(seccomp_init(SCMP_ACT_ALLOW));
  if (!ctx) throw Error("seccomp: seccomp_init failed");
  // Only the native ABI: i386 (int 0x80) and x32 system calls kill the process. libseccomp's
  // x86_64 filter also routes syscall numbers with the x32 bit to this action. This is what keeps
  // the socket-family rules whole: i386's socketcall(2) and x32's socket(2) never run.
  int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
  if (rc < 0) fail(rc, "set the bad-architecture action");

  std::vector<scmp_arg_cmp> cmp;
  for (const SeccompRule& rule : seccomp_rules()) {
    int nr = seccomp_syscall_resolve_name(rule.name.c_str());
    if (nr < 0) continue;  // __NR_SCMP_ERROR (unknown) or a pseudo-number (not on this arch)
    cmp.clear();
    for (const SeccompArg& a : rule.args)
      cmp.push_back(SCMP_CMP(a.index, SCMP_CMP_MASKED_EQ, a.mask, a.value));
    add_rule(ctx, SCMP_ACT_ERRNO(static_cast<uint32_t>(rule.errno_ret)), nr, rule.name.c_str(),
             static_cast<unsigned>(cmp.size()), cmp.empty() ? nullptr : cmp.data());
  }
  return export_bpf(ctx);
}

std::vector<const char*> denied_syscalls() {
  std::vector<const char*> names(std::begin(kDenied), std::end(kDenied));
  names.push_back("personality");                     // values other than the defaults
  names.push_back("clone");                           // with namespace flags
  names.push_back("clone3");                          // ENOSYS, so that glibc falls back to clone
  for (const char* n : kIoUring) names.push_back(n);  // ENOSYS: libraries fall back
  names.push_back("socket");      // families other than the allowed ones (EAFNOSUPPORT)
  names.push_back("socketpair");  // same
  return names;
}

}  // namespace benchrun::sandbox
