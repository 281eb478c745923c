// counters.hpp: performance counters (perf_event_open(2)) over exactly one workload, for the
// sandbox backend (opened by the host) and the microVM's init (opened inside the guest).
//
// Design note (docs/counters.md). Counters are opened on the workload's first process while it
// waits for "go" (sandbox/child_channel.hpp), with inherit=1, disabled=1, enable_on_exec=1: they
// start at its execve (not in benchrun's set-up), follow every process and thread it creates, and
// the kernel folds an inherited counter into the opened one when its task exits. The workload's
// first process is init of its pid namespace, whose exit waits until every other process of the
// namespace is reaped, so reading after it was waited for sees the whole workload. Each counter
// is read with its own time_enabled and time_running: a multiplexed counter (running < enabled)
// is reported raw, with its running fraction, never scaled. A counter the kernel refuses (no PMU,
// not permitted) is absent from the metrics and named in one notice per reason, never zero.
#pragma once

#include <linux/perf_event.h>
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "benchrun/common/metrics.hpp"
#include "benchrun/common/unique_fd.hpp"

namespace benchrun::perf {

struct Counter {
  const char* name;    // perf's spelling, as --counters takes it: "task-clock", "instructions:u"
  const char* metric;  // the metric it sets: "task_clock", "instructions.user"
  const char* unit;    // "ns" or "count"
  uint32_t type;       // PERF_TYPE_SOFTWARE or PERF_TYPE_HARDWARE
  uint64_t config;     // PERF_COUNT_*
  bool hardware;
  bool exclude_user, exclude_kernel;  // hardware: ":u" counts user mode only, ":k" kernel only
};

// Every counter benchrun knows, software first.
const std::vector<Counter>& catalogue();

// The counters of a --counters list, in catalogue order without duplicates. Entries: a catalogue
// name ("instructions:u"), a hardware event without a mode ("instructions" = ":u" and ":k"),
// "default" (the standard set), "all"; an empty list is none. ConfigError naming the entry and
// listing the known names otherwise.
std::vector<const Counter*> resolve(const std::vector<std::string>& names);

// The standard set (--counters default): the software counters and instructions, cycles,
// branches and branch-misses in user and kernel mode.
const std::vector<std::string>& default_names();

// The known names, for messages and --help: "task-clock, ..., instructions[:u|:k], ...".
std::string known_names();

// The syscalls a CounterGroup makes, replaceable by tests (tests/cpp/perf/counters_test.cpp
// injects PMUs, multiplexing and refusals). open returns an fd (owned by the caller) or -1 with
// errno set; read is read(2) of one counter's fd.
struct Syscalls {
  std::function<int(perf_event_attr& attr, pid_t pid)> open;
  std::function<ssize_t(int fd, void* buf, size_t size)> read;
};
Syscalls real_syscalls();

// The attributes a counter is opened with (inherit, disabled, enable_on_exec, times).
perf_event_attr make_attr(const Counter& c);

// The counters of one workload: one fd each, closed with the group on every path (move-only).
class CounterGroup {
 public:
  CounterGroup() = default;

  // Opens each counter on pid, disabled until pid's next execve, inherited by every process and
  // thread it creates from then on. Never throws for a counter the kernel refuses: it is left out
  // (read_into says why).
  static CounterGroup open_on_exec(pid_t pid, const std::vector<const Counter*>& counters,
                                   Syscalls sys = real_syscalls());

  // Reads every counter into metrics (its metric name and unit; hardware counters also
  // "<metric>.running", the fraction of the enabled time it counted) and appends notices:
  // refused counters, counters that never ran, multiplexing. Call after every process counted has
  // exited (then inherited counts have been folded in).
  void read_into(Metrics& metrics, std::vector<std::string>& notices) const;

  size_t open_count() const noexcept { return open_.size(); }

 private:
  struct Open {
    const Counter* counter;
    UniqueFd fd;
  };
  struct Refused {
    const Counter* counter;
    int err;
  };
  std::vector<Open> open_;
  std::vector<Refused> refused_;
  Syscalls sys_;
};

}  // namespace benchrun::perf
