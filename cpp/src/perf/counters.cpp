// counters.cpp: the counter catalogue, --counters lists, and opening and reading a workload's
// counters (design note in benchrun/perf/counters.hpp; docs/counters.md).
#include "benchrun/perf/counters.hpp"

#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>

#include "benchrun/common/error.hpp"

namespace benchrun::perf {

namespace {

constexpr uint32_t kSw = PERF_TYPE_SOFTWARE;
constexpr uint32_t kHw = PERF_TYPE_HARDWARE;

// A hardware event in user mode (":u") and kernel mode (":k"): two counters.
#define BENCHRUN_HW_PAIR(perf_name, metric_name, cfg)                                           \
  Counter{perf_name ":u", metric_name ".user", "count", kHw, cfg, true, false, true}, Counter { \
    perf_name ":k", metric_name ".kernel", "count", kHw, cfg, true, true, false                 \
  }

const std::vector<Counter> kCatalogue = {
    {"task-clock", "task_clock", "ns", kSw, PERF_COUNT_SW_TASK_CLOCK, false, false, false},
    {"context-switches", "context_switches", "count", kSw, PERF_COUNT_SW_CONTEXT_SWITCHES, false,
     false, false},
    {"cpu-migrations", "cpu_migrations", "count", kSw, PERF_COUNT_SW_CPU_MIGRATIONS, false, false,
     false},
    {"page-faults", "page_faults", "count", kSw, PERF_COUNT_SW_PAGE_FAULTS, false, false, false},
    {"minor-faults", "minor_faults", "count", kSw, PERF_COUNT_SW_PAGE_FAULTS_MIN, false, false,
     false},
    {"major-faults", "major_faults", "count", kSw, PERF_COUNT_SW_PAGE_FAULTS_MAJ, false, false,
     false},
    BENCHRUN_HW_PAIR("instructions", "instructions", PERF_COUNT_HW_INSTRUCTIONS),
    BENCHRUN_HW_PAIR("cycles", "cycles", PERF_COUNT_HW_CPU_CYCLES),
    BENCHRUN_HW_PAIR("branches", "branches", PERF_COUNT_HW_BRANCH_INSTRUCTIONS),
    BENCHRUN_HW_PAIR("branch-misses", "branch_misses", PERF_COUNT_HW_BRANCH_MISSES),
    BENCHRUN_HW_PAIR("cache-references", "cache_references", PERF_COUNT_HW_CACHE_REFERENCES),
    BENCHRUN_HW_PAIR("cache-misses", "cache_misses", PERF_COUNT_HW_CACHE_MISSES),
    BENCHRUN_HW_PAIR("ref-cycles", "ref_cycles", PERF_COUNT_HW_REF_CPU_CYCLES),
};
#undef BENCHRUN_HW_PAIR

const std::vector<std::string> kDefault = {
    "task-clock",   "context-switches", "cpu-migrations", "page-faults", "minor-faults",
    "major-faults", "instructions",     "cycles",         "branches",    "branch-misses"};

// "instructions:u" -> "instructions"; a software name stays as it is.
std::string base_name(const Counter& c) {
  std::string n = c.name;
  return c.hardware ? n.substr(0, n.find(':')) : n;
}

// Why the kernel refused a counter, for the notice.
std::string refusal(int err, bool hardware) {
  std::string why = std::string("perf_event_open: ") + std::strerror(err);
  if (hardware && (err == ENOENT || err == EOPNOTSUPP || err == ENODEV || err == EINVAL))
    return "no hardware PMU for them here (a VM without a virtual PMU, e.g. QEMU TCG, or an "
           "event this CPU lacks): " +
           why;
  if (err == EACCES || err == EPERM)
    return "not permitted (run as root, or lower kernel.perf_event_paranoid): " + why;
  return why;
}

std::string join_metrics(const std::vector<const Counter*>& cs) {
  std::string out;
  for (const Counter* c : cs) out += (out.empty() ? "" : ", ") + std::string(c->metric);
  return out;
}

}  // namespace

const std::vector<Counter>& catalogue() { return kCatalogue; }

const std::vector<std::string>& default_names() { return kDefault; }

std::string known_names() {
  std::string out;
  std::string last;
  for (const Counter& c : kCatalogue) {
    const std::string n = c.hardware ? base_name(c) + "[:u|:k]" : c.name;
    if (n == last) continue;
    last = n;
    out += (out.empty() ? "" : ", ") + n;
  }
  return out + "; default, all, none";
}

std::vector<const Counter*> resolve(const std::vector<std::string>& names) {
  std::vector<bool> chosen(kCatalogue.size(), false);
  for (const std::string& name : names) {
    if (name == "none")
      throw ConfigError("counters: 'none' cannot be combined with other counters");
    if (name == "all") {
      std::fill(chosen.begin(), chosen.end(), true);
      continue;
    }
    if (name == "default") {
      for (size_t i = 0; i < kCatalogue.size(); ++i)
        for (const std::string& d : kDefault)
          if (d == kCatalogue[i].name || d == base_name(kCatalogue[i])) chosen[i] = true;
      continue;
    }
    bool found = false;
    for (size_t i = 0; i < kCatalogue.size(); ++i)
      if (name == kCatalogue[i].name ||
          (kCatalogue[i].hardware && name == base_name(kCatalogue[i])))
        found = chosen[i] = true;
    if (!found) {
      std::string shown;
      for (char ch : name) shown += (ch >= 0x20 && ch < 0x7f) ? ch : '?';
      throw ConfigError("counters: unknown counter '" + shown + "' (known: " + known_names() + ")");
    }
  }
  std::vector<const Counter*> out;
  for (size_t i = 0; i < kCatalogue.size(); ++i)
    if (chosen[i]) out.push_back(&kCatalogue[i]);
  return out;
}

Syscalls real_syscalls() {
  return {[](perf_event_attr& attr, pid_t pid) {
            return static_cast<int>(
                ::syscall(SYS_perf_event_open, &attr, pid, -1, -1, PERF_FLAG_FD_CLOEXEC));
          },
          [](int fd, void* buf, size_t size) { return ::read(fd, buf, size); }};
}

perf_event_attr make_attr(const Counter& c) {
  perf_event_attr a;
  std::memset(&a, 0, sizeof a);
  a.size = sizeof a;
  a.type = c.type;
  a.config = c.config;
  a.read_format = PERF_FORMAT_TOTAL_TIME_ENABLED | PERF_FORMAT_TOTAL_TIME_RUNNING;
  a.disabled = 1;        // nothing of benchrun's set-up is counted...
  a.enable_on_exec = 1;  // ...from the workload's execve on
  a.inherit = 1;         // every process and thread it creates
  a.exclude_user = c.exclude_user;
  a.exclude_kernel = c.exclude_kernel;
  a.exclude_hv = c.hardware;
  return a;
}

CounterGroup CounterGroup::open_on_exec(pid_t pid, const std::vector<const Counter*>& counters,
                                        Syscalls sys) {
  CounterGroup g;
  g.sys_ = std::move(sys);
  for (const Counter* c : counters) {
    perf_event_attr attr = make_attr(*c);
    const int fd = g.sys_.open(attr, pid);
    if (fd < 0) {
      g.refused_.push_back({c, errno});
      continue;
    }
    g.open_.push_back({c, UniqueFd(fd)});
  }
  return g;
}

void CounterGroup::read_into(Metrics& metrics, std::vector<std::string>& notices) const {
  // One notice per reason, naming the metrics it leaves out.
  std::map<std::string, std::vector<const Counter*>> absent;
  for (const Refused& r : refused_)
    absent[refusal(r.err, r.counter->hardware)].push_back(r.counter);
  std::vector<const Counter*> multiplexed;
  double least_running = 1;
  for (const Open& o : open_) {
    uint64_t v[3] = {0, 0, 0};  // value, time_enabled, time_running (read_format)
    ssize_t n;
    do {
      n = sys_.read(o.fd.get(), v, sizeof v);
    } while (n < 0 && errno == EINTR);
    if (n != static_cast<ssize_t>(sizeof v)) {
      absent[std::string("reading them failed: ") + (n < 0 ? std::strerror(errno) : "short read")]
          .push_back(o.counter);
      continue;
    }
    const uint64_t value = v[0], enabled = v[1], running = v[2];
    if (enabled == 0) {
      absent["the workload never started (no execve)"].push_back(o.counter);
      continue;
    }
    if (running == 0) {
      absent["never scheduled on the PMU (other counters held it the whole run)"].push_back(
          o.counter);
      continue;
    }
    const double fraction =
        std::min(1.0, static_cast<double>(running) / static_cast<double>(enabled));
    metrics[o.counter->metric] = {static_cast<double>(value), o.counter->unit};
    if (o.counter->hardware || running < enabled)
      metrics[std::string(o.counter->metric) + ".running"] = {fraction, "ratio"};
    if (running < enabled) {
      multiplexed.push_back(o.counter);
      least_running = std::min(least_running, fraction);
    }
  }
  for (const auto& [why, cs] : absent)
    notices.push_back("counters absent: " + join_metrics(cs) + ": " + why);
  if (!multiplexed.empty()) {
    char pct[32];
    std::snprintf(pct, sizeof pct, "%.1f", least_running * 100);
    notices.push_back("counters multiplexed (more counters than the PMU holds at once): " +
                      join_metrics(multiplexed) + " counted only part of the run (down to " + pct +
                      "%, see <metric>.running); their values are raw counts, not scaled");
  }
}

}  // namespace benchrun::perf
