// main.cpp: benchrun-init, PID 1 of the microVM: boot, get the run from the host, run it, report,
// power off. Only the steps, in order; each lives in its own file.
//
// Design note. The host starts QEMU with this binary as the initramfs's /init (beside /dev/console,
// /lib/modules/... and /etc/benchrun/modules) and the image's ext4 root as a virtio-blk disk. The
// host listens; init connects over virtio-serial (port "benchrun.0") or AF_VSOCK
// (benchrun.transport=vsock on the kernel command line), then speaks docs/protocol.md: Hello ->
// RunConfig, then Stdout/Stderr chunks while the workload runs, File/FileMissing, Exit, End. The
// workload gets what the sandbox backend gives it, from the sandbox's own child (workload.cpp):
// same mounts, credentials, capabilities, seccomp program, exec rules and error wording. PID 1 must
// never exit (the kernel panics when init dies): every path ends in power_off(), and a fatal error
// at any step is first reported as ErrorReport + End (or, before the channel exists, only on the
// console, where each step also leaves a breadcrumb).
#include <signal.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>

#include <chrono>
#include <exception>
#include <optional>
#include <string>

#include "benchrun/proto/channel.hpp"
#include "benchrun/proto/messages.hpp"
#include "init/cgroup.hpp"
#include "init/collect.hpp"
#include "init/console.hpp"
#include "init/fatal.hpp"
#include "init/host_link.hpp"
#include "init/identity.hpp"
#include "init/init_error.hpp"
#include "init/modules.hpp"
#include "init/mounts.hpp"
#include "init/power.hpp"
#include "init/pump.hpp"
#include "init/result.hpp"
#include "init/workload.hpp"

namespace benchrun::guest {
namespace {

constexpr const char* kRoot = "/newroot";
constexpr const char* kCgroupMount = "/sys/fs/cgroup";
constexpr auto kLinkTimeout = std::chrono::seconds(5);
constexpr auto kRootDeviceTimeout = std::chrono::seconds(5);
constexpr auto kRunConfigTimeout = std::chrono::seconds(30);
constexpr auto kHangupTimeout = std::chrono::seconds(5);
// The host sends one frame (RunConfig); anything beyond is a protocol error.
constexpr uint64_t kMaxFromHost = proto::kHeaderSize + proto::kMaxPayload;

uint64_t boottime_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_BOOTTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

proto::Hello hello(uint64_t boot_ns) {
  proto::Hello h;
  h.init_version = BENCHRUN_VERSION;
  utsname u{};
  if (::uname(&u) == 0) h.kernel_release = u.release;
  h.boot_ns = boot_ns;
  return h;
}

void run(std::optional<proto::Channel>& channel, uint64_t boot_ns) {
  step("early-mounts", [] { mount_early(); });
  ensure_std_fds();
  UniqueFd signal_fd = step("signals", [] { return open_init_signalfd(); });
  step("modules", [] { load_modules(); });

  // The host: hello, then the run.
  channel.emplace(step("channel", [] { return connect_host(read_link_options(), kLinkTimeout); }),
                  kMaxFromHost, "host");
  step("hello", [&] { channel->send(proto::encode_hello(hello(boot_ns))); });
  const proto::RunConfig config = step("run-config", [&] {
    return proto::decode_run_config(
        channel->recv(proto::Channel::Clock::now() + kRunConfigTimeout, "run_config"));
  });

  // The workload's world: root filesystem, identity, cgroup.
  step("mount-root", [&] {
    wait_for_block_device(config.root_device, kRootDeviceTimeout);
    mount_root(config.root_device, kRoot);
  });
  step("populate-root", [&] { populate_root(kRoot, config.memory_bytes / 2); });
  step("loopback", [] { bring_loopback_up(); });
  std::optional<WorkloadCgroup> cgroup = step("cgroup", [&] {
    std::string why_not;
    auto cg = create_workload_cgroup(kCgroupMount, {config.memory_bytes, config.pids_max}, why_not);
    if (!cg) breadcrumb("no cgroup, metrics from wait4: " + why_not);
    return cg;
  });

  // Run it: start, forward its output until it exits, measure.
  Workload workload =
      step("spawn", [&] { return start_workload(config, kRoot, cgroup ? &*cgroup : nullptr); });
  const RunOutcome outcome = step("run", [&] {
    return pump_until_exit(channel.value(), workload, signal_fd.get(), config, [&] {
      if (cgroup)
        cgroup->kill_all();
      else
        ::kill(workload.pid, SIGKILL);  // init of its pid namespace: the rest dies with it
    });
  });
  std::optional<CgroupMetrics> metrics;
  if (cgroup) metrics = cgroup->metrics();
  const proto::Exit exit = make_exit(outcome, metrics);
  std::vector<std::string> notices;
  const Metrics measured = make_metrics(outcome, metrics, workload.counters, notices);
  for (const auto& n : notices) breadcrumb(n);  // the host names absent counters in its notice
  breadcrumb("workload exited: code " + std::to_string(exit.exit_code) + ", signal " +
             std::to_string(exit.signal) + (exit.timed_out ? ", timed out" : "") +
             (exit.oom_killed ? ", OOM-killed" : ""));

  // Report: files, metrics, exit, end.
  step("collect", [&] { collect_outputs(channel.value(), kRoot, config); });
  step("exit", [&] {
    channel->send(proto::encode_metrics(measured));
    channel->send(proto::encode_exit(exit));
    channel->send(proto::encode_end());
  });
  step("hangup", [&] { wait_for_hangup(channel->fd(), kHangupTimeout); });
}

}  // namespace
}  // namespace benchrun::guest

int main() {
  using namespace benchrun::guest;
  const uint64_t boot_ns = boottime_ns();
  ::umask(0);  // modes below are exact; the workload gets 022
  std::optional<benchrun::proto::Channel> channel;
  try {
    run(channel, boot_ns);
  } catch (const InitError& e) {
    report_fatal(channel ? &*channel : nullptr, e);
  } catch (const std::exception& e) {
    report_fatal(channel ? &*channel : nullptr, InitError("init", 0, e.what()));
  } catch (...) {
    report_fatal(channel ? &*channel : nullptr, InitError("init", 0, "unknown exception"));
  }
  power_off();
}
