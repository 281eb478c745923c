// counters_test.cpp: the counter catalogue and --counters lists, and CounterGroup against injected
// perf_event_open results (a PMU, multiplexing, refusals), plus the real software counters on this
// machine and the real hardware ones where a PMU exists.
#include "benchrun/perf/counters.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "benchrun/common/error.hpp"

namespace benchrun::perf {
namespace {

std::vector<std::string> names(const std::vector<const Counter*>& cs) {
  std::vector<std::string> out;
  for (const Counter* c : cs) out.push_back(c->name);
  return out;
}

TEST(Counters, ResolveExpandsModesDefaultAndAll) {
  EXPECT_EQ(names(resolve({"instructions"})),
            (std::vector<std::string>{"instructions:u", "instructions:k"}));
  EXPECT_EQ(names(resolve({"cycles:k", "task-clock", "cycles:k"})),
            (std::vector<std::string>{"task-clock", "cycles:k"}));  // catalogue order, once
  EXPECT_TRUE(resolve({}).empty());
  const auto d = names(resolve({"default"}));
  EXPECT_EQ(d.size(), 6u + 8u);  // six software counters, four hardware events in two modes
  EXPECT_EQ(d.front(), "task-clock");
  EXPECT_EQ(resolve({"all"}).size(), catalogue().size());
  for (const Counter& c : catalogue()) {
    EXPECT_TRUE(valid_metric_name(c.metric)) << c.metric;
    EXPECT_TRUE(valid_metric_name(std::string(c.metric) + ".running")) << c.metric;
  }
}

TEST(Counters, UnknownNamesListTheKnownOnes) {
  try {
    resolve({"instructions", "bogus\x01"});
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("unknown counter 'bogus?'"), std::string::npos) << m;
    EXPECT_NE(m.find("task-clock, context-switches"), std::string::npos) << m;
    EXPECT_NE(m.find("instructions[:u|:k]"), std::string::npos) << m;
    EXPECT_NE(m.find("default, all, none"), std::string::npos) << m;
  }
  EXPECT_THROW(resolve({"none", "cycles"}), ConfigError);
  EXPECT_THROW(resolve({"task-clock:u"}), ConfigError);  // software counters have no modes
}

TEST(Counters, AttrCountsFromExecOverChildrenAndSplitsModes) {
  const auto cs = resolve({"instructions", "page-faults"});
  const perf_event_attr u = make_attr(*cs[1]), k = make_attr(*cs[2]), pf = make_attr(*cs[0]);
  for (const auto& a : {u, k, pf}) {
    EXPECT_EQ(a.disabled, 1u);
    EXPECT_EQ(a.enable_on_exec, 1u);
    EXPECT_EQ(a.inherit, 1u);
    EXPECT_EQ(a.read_format, PERF_FORMAT_TOTAL_TIME_ENABLED | PERF_FORMAT_TOTAL_TIME_RUNNING);
  }
  EXPECT_EQ(u.type, uint32_t{PERF_TYPE_HARDWARE});
  EXPECT_EQ(u.exclude_kernel, 1u);
  EXPECT_EQ(u.exclude_user, 0u);
  EXPECT_EQ(k.exclude_user, 1u);
  EXPECT_EQ(k.exclude_kernel, 0u);
  EXPECT_EQ(pf.type, uint32_t{PERF_TYPE_SOFTWARE});
  EXPECT_EQ(pf.exclude_user + pf.exclude_kernel, 0u);
}

// A fake kernel: per (type, config, exclude_kernel) either an errno or {value, enabled, running}.
// Its fds are real (/dev/null), so CounterGroup's closing is exercised too.
struct FakeKernel {
  struct Reply {
    int err = 0;
    uint64_t value = 0, enabled = 0, running = 0;
  };
  std::map<std::string, Reply> replies;  // by counter metric name
  std::map<int, Reply> by_fd;
  std::vector<pid_t> pids;

  Syscalls syscalls() {
    return {[this](perf_event_attr& a, pid_t pid) -> int {
              pids.push_back(pid);
              for (const Counter& c : catalogue())
                if (c.type == a.type && c.config == a.config &&
                    c.exclude_kernel == static_cast<bool>(a.exclude_kernel) &&
                    c.exclude_user == static_cast<bool>(a.exclude_user)) {
                  const Reply r = replies[c.metric];
                  if (r.err) {
                    errno = r.err;
                    return -1;
                  }
                  const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
                  by_fd[fd] = r;
                  return fd;
                }
              errno = EINVAL;
              return -1;
            },
            [this](int fd, void* buf, size_t n) -> ssize_t {
              const Reply& r = by_fd.at(fd);
              const uint64_t v[3] = {r.value, r.enabled, r.running};
              std::memcpy(buf, v, std::min(n, sizeof v));
              return static_cast<ssize_t>(std::min(n, sizeof v));
            }};
  }
};

bool contains(const std::vector<std::string>& notices, const std::string& part) {
  for (const auto& n : notices)
    if (n.find(part) != std::string::npos) return true;
  return false;
}

TEST(CounterGroup, HardwareCountersWithAPmu) {
  FakeKernel k;
  k.replies["instructions.user"] = {0, 1000, 50, 50};
  k.replies["instructions.kernel"] = {0, 200, 50, 50};
  k.replies["task_clock"] = {0, 123456, 50, 50};
  const CounterGroup g =
      CounterGroup::open_on_exec(42, resolve({"instructions", "task-clock"}), k.syscalls());
  EXPECT_EQ(g.open_count(), 3u);
  EXPECT_EQ(k.pids, (std::vector<pid_t>{42, 42, 42}));
  Metrics m;
  std::vector<std::string> notices;
  g.read_into(m, notices);
  EXPECT_TRUE(notices.empty()) << notices.front();
  EXPECT_EQ(m.at("instructions.user"), (Metric{1000, "count"}));
  EXPECT_EQ(m.at("instructions.kernel"), (Metric{200, "count"}));
  EXPECT_EQ(m.at("instructions.user.running"), (Metric{1, "ratio"}));
  EXPECT_EQ(m.at("task_clock"), (Metric{123456, "ns"}));
  EXPECT_EQ(m.count("task_clock.running"), 0u);  // software counters always run
}

TEST(CounterGroup, MultiplexedCountersAreRawWithTheirFractionAndOneNotice) {
  FakeKernel k;
  k.replies["cycles.user"] = {0, 500, 100, 25};
  k.replies["cycles.kernel"] = {0, 80, 100, 50};
  k.replies["branches.user"] = {0, 70, 100, 100};
  k.replies["branches.kernel"] = {0, 7, 100, 100};
  const CounterGroup g =
      CounterGroup::open_on_exec(7, resolve({"cycles", "branches"}), k.syscalls());
  Metrics m;
  std::vector<std::string> notices;
  g.read_into(m, notices);
  EXPECT_EQ(m.at("cycles.user").value, 500);  // not scaled to 2000
  EXPECT_DOUBLE_EQ(m.at("cycles.user.running").value, 0.25);
  EXPECT_DOUBLE_EQ(m.at("cycles.kernel.running").value, 0.5);
  EXPECT_DOUBLE_EQ(m.at("branches.user.running").value, 1.0);
  ASSERT_EQ(notices.size(), 1u);
  EXPECT_NE(notices[0].find("cycles.user, cycles.kernel"), std::string::npos) << notices[0];
  EXPECT_NE(notices[0].find("25.0%"), std::string::npos) << notices[0];
  EXPECT_NE(notices[0].find("not scaled"), std::string::npos) << notices[0];
}

TEST(CounterGroup, NoPmuLeavesHardwareMetricsAbsentWithOneNotice) {
  FakeKernel k;
  for (const Counter& c : catalogue())
    if (c.hardware)
      k.replies[c.metric].err = ENOENT;
    else
      k.replies[c.metric] = {0, 12, 9, 9};
  const CounterGroup g = CounterGroup::open_on_exec(7, resolve({"default"}), k.syscalls());
  Metrics m;
  std::vector<std::string> notices;
  g.read_into(m, notices);
  ASSERT_EQ(notices.size(), 1u);
  EXPECT_NE(notices[0].find("counters absent: instructions.user, instructions.kernel, "
                            "cycles.user"),
            std::string::npos)
      << notices[0];
  EXPECT_NE(notices[0].find("no hardware PMU"), std::string::npos) << notices[0];
  for (const Counter& c : catalogue()) {
    if (c.hardware) {
      EXPECT_EQ(m.count(c.metric), 0u) << c.metric;  // absent, never zero
    }
  }
  EXPECT_EQ(m.at("page_faults").value, 12);
}

TEST(CounterGroup, RefusalsUnscheduledAndNeverStartedAreAbsentByReason) {
  FakeKernel k;
  k.replies["task_clock"].err = EACCES;
  k.replies["ref_cycles.user"].err = EOPNOTSUPP;    // a PMU without this event
  k.replies["ref_cycles.kernel"] = {0, 0, 100, 0};  // never got a PMU slot
  k.replies["context_switches"] = {0, 0, 0, 0};     // never enabled: no execve
  const CounterGroup g = CounterGroup::open_on_exec(
      7, resolve({"task-clock", "ref-cycles", "context-switches"}), k.syscalls());
  Metrics m;
  std::vector<std::string> notices;
  g.read_into(m, notices);
  EXPECT_TRUE(m.empty());
  EXPECT_EQ(notices.size(), 4u);
  EXPECT_TRUE(contains(notices, "task_clock: not permitted"));
  EXPECT_TRUE(contains(notices, "ref_cycles.user: no hardware PMU"));
  EXPECT_TRUE(contains(notices, "ref_cycles.kernel: never scheduled"));
  EXPECT_TRUE(contains(notices, "context_switches: the workload never started"));
}

// --- the real kernel -------------------------------------------------------------------------

// A child that waits on a pipe, then execs argv: counters are opened on it meanwhile, as the
// sandbox opens them on its waiting child.
struct Waiting {
  pid_t pid;
  int go;
};

Waiting fork_waiting(const std::vector<std::string>& argv) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
  const pid_t pid = ::fork();
  if (pid == 0) {
    char b;
    ::close(p[1]);
    if (::read(p[0], &b, 1) != 1) ::_exit(126);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(p[0]);
  return {pid, p[1]};
}

int release_and_wait(const Waiting& w) {
  const char b = 'g';
  EXPECT_EQ(::write(w.go, &b, 1), 1);
  ::close(w.go);
  int status = 0;
  ::waitpid(w.pid, &status, 0);
  return status;
}

TEST(CounterGroup, RealSoftwareCountersCountTheExecedProgramAndItsChildren) {
  // /bin/sh runs a child process: task-clock and page faults of both are counted; nothing before
  // the exec (the fork's own faults) would make a difference big enough to test, so the check is
  // that the counts are there, plausible and from the exec on.
  const Waiting w = fork_waiting({"/bin/sh", "-c", "/bin/true; /bin/true"});
  const CounterGroup g = CounterGroup::open_on_exec(w.pid, resolve({"default"}));
  ASSERT_GE(g.open_count(), 6u) << "software counters must open here";
  ASSERT_EQ(release_and_wait(w), 0);
  Metrics m;
  std::vector<std::string> notices;
  g.read_into(m, notices);
  for (const char* sw : {"task_clock", "context_switches", "cpu_migrations", "page_faults",
                         "minor_faults", "major_faults"})
    ASSERT_EQ(m.count(sw), 1u) << sw;
  EXPECT_GT(m.at("task_clock").value, 1e5);   // three execs take more than 0.1 ms
  EXPECT_GT(m.at("page_faults").value, 50);  // three processes fault in their pages
  EXPECT_EQ(m.at("page_faults").value, m.at("minor_faults").value + m.at("major_faults").value);
  EXPECT_GE(m.at("context_switches").value, 1);  // sh waits for its child
}

bool has_pmu() { return ::access("/sys/bus/event_source/devices/cpu", F_OK) == 0; }

TEST(CounterGroup, RealHardwareCountersWhereAPmuExists) {
  if (!has_pmu())
    GTEST_SKIP() << "no hardware PMU here (/sys/bus/event_source/devices has no cpu): the "
                    "hardware path is covered by the injected tests above";
  const Waiting w = fork_waiting({"/bin/true"});
  const CounterGroup g = CounterGroup::open_on_exec(w.pid, resolve({"instructions", "cycles"}));
  ASSERT_EQ(release_and_wait(w), 0);
  Metrics m;
  std::vector<std::string> notices;
  g.read_into(m, notices);
  ASSERT_EQ(m.count("instructions.user"), 1u) << (notices.empty() ? "" : notices[0]);
  EXPECT_GT(m.at("instructions.user").value, 1e4);  // ld.so alone runs more
  EXPECT_GT(m.at("cycles.user").value, 0);
  EXPECT_GT(m.at("instructions.user.running").value, 0);
}

TEST(CounterGroup, RealHardwareCountersWithoutAPmuAreAbsent) {
  if (has_pmu()) GTEST_SKIP() << "this machine has a PMU";
  const Waiting w = fork_waiting({"/bin/true"});
  const CounterGroup g = CounterGroup::open_on_exec(w.pid, resolve({"instructions"}));
  ASSERT_EQ(release_and_wait(w), 0);
  EXPECT_EQ(g.open_count(), 0u);
  Metrics m;
  std::vector<std::string> notices;
  g.read_into(m, notices);
  EXPECT_TRUE(m.empty());
  ASSERT_EQ(notices.size(), 1u);
  EXPECT_NE(notices[0].find("instructions.user, instructions.kernel"), std::string::npos)
      << notices[0];
}

}  // namespace
}  // namespace benchrun::perf
