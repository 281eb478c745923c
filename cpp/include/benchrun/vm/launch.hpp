// launch.hpp: one microVM session, in steps: boot (QEMU up, the guest init's hello), start (the run
// config), wait (the workload's output until its exit frame), finish (output files until
// end-of-results, then shut down). Everything of the VM (QEMU, sockets, overlay, console log)
// lives in run_dir.
#pragma once

#include <sys/resource.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "benchrun/common/metrics.hpp"
#include "benchrun/common/output_file.hpp"
#include "benchrun/host/cpus.hpp"
#include "benchrun/proto/messages.hpp"
#include "benchrun/vm/config.hpp"

namespace benchrun::vm {

struct LaunchSpec {
  VmConfig vm;  // kernel, initramfs, root disk, accel, vcpus, memory; launch sets sockets and log
  proto::RunConfig run;
  std::string run_dir;         // existing directory owned by this run
  double boot_timeout_s = 60;  // QEMU start to the guest's hello
  double timeout_s = 0;        // the workload's own limit (the guest enforces it); 0 = none
  double grace_s = 30;         // host-side margin beyond boot + timeout before QEMU is killed
  std::function<void(pid_t)> place_qemu;  // e.g. join the run's cgroup, before QEMU execs
  // vCPU i's thread pinned to vcpu_cpus[i] and QEMU's other threads to housekeeping, once QEMU is
  // up (before the guest boots); empty vcpu_cpus: no pinning.
  host::CpuList vcpu_cpus;
  host::CpuList housekeeping;
  std::function<bool()> interrupted;  // polled at least every 100 ms; true stops the VM
};

struct LaunchResult {
  proto::Hello hello;
  std::optional<proto::Exit> exit;
  Metrics metrics;                          // what the guest measured (its metrics frame)
  std::optional<proto::ErrorReport> error;  // the guest init's fatal error, if any
  OutputFile stdout_data, stderr_data;      // anonymous files in run_dir, capped
  bool stdout_truncated = false, stderr_truncated = false;
  std::map<std::string, std::string> outputs;
  std::map<std::string, std::string> missing_outputs;
  bool interrupted = false;
  bool host_deadline = false;  // the host's hard deadline ended the VM (guest overran timeout)
  double start_s = 0;          // QEMU spawn to the channel being connected
  double boot_s = 0;           // channel connected to hello (kernel boot + init to channel)
  double run_s = 0;            // run config sent to the exit frame
  double collect_s = 0;        // exit frame to end-of-results
  double shutdown_s = 0;       // end-of-results to QEMU gone
  std::vector<std::pair<pid_t, int>> vcpu_threads;  // pinned vCPU thread -> host CPU
  int other_threads_pinned = 0;                     // QEMU threads moved to housekeeping CPUs
  std::string pin_notice;                           // what pinning could not do
  rusage qemu_usage{};    // QEMU's own CPU time (all vCPU and I/O threads)
  double start_time = 0;  // unix seconds when the run config was sent
};

class VmProcess;
class ResultCollector;

// Every step throws VmError (QEMU failed, the guest did not boot: with the console's tail) or
// ProtocolError (the guest broke the protocol); deadlines and interrupts end the VM and are
// reported in the result, never thrown. Destruction kills QEMU if it still runs.
class Session {
 public:
  explicit Session(const LaunchSpec& spec);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Spawns QEMU and waits for the guest init's hello. Returns false when interrupted (QEMU is
  // killed, result().interrupted set).
  bool boot();
  // Sends the run config: the workload starts.
  void start();
  // The workload's output until its exit (or error) frame, the host's deadline, or an interrupt.
  void wait();
  // The output files until end-of-results; then QEMU is shut down.
  void finish();
  LaunchResult& result() { return r_; }

 private:
  struct State;
  void pin_threads(std::chrono::steady_clock::time_point deadline);
  std::unique_ptr<State> s_;
  LaunchResult r_;
};

// All the steps in order: boot, start, wait, finish.
LaunchResult launch(const LaunchSpec& spec);

// The last max_bytes of a console log, printable, for error messages.
std::string console_tail(const std::string& path, size_t max_bytes = 2048);

}  // namespace benchrun::vm
