// launch.cpp: one microVM session in order: spawn QEMU -> (accept the channel) -> hello -> run
// config -> output until exit -> files until end-of-results -> shut QEMU down. Frames are consumed
// in vm/results.cpp; QEMU's process and QMP in vm_process.cpp / qmp.cpp.
#include "benchrun/vm/launch.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <optional>

#include "benchrun/common/clock.hpp"
#include "benchrun/common/error.hpp"
#include "benchrun/common/text.hpp"
#include "benchrun/proto/channel.hpp"
#include "benchrun/proto/transport.hpp"
#include "benchrun/vm/qmp.hpp"
#include "benchrun/vm/vm_process.hpp"
#include "vm/pinning.hpp"
#include "vm/results.hpp"

namespace benchrun::vm {

namespace {

Clock::time_point after(Clock::time_point t, double seconds) {
  return t + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

double secs(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Why the VM ended before talking to us, with what it printed: the error every boot failure gets.
[[noreturn]] void boot_failed(const std::string& what, VmProcess& qemu, const LaunchSpec& spec,
                              const std::string& log_dir) {
  qemu.kill();
  std::string msg = "vm: " + what;
  std::string qemu_log = console_tail(log_dir + "/qemu.log", 1024);
  if (!qemu_log.empty()) msg += "; qemu said: " + qemu_log;
  std::string console = console_tail(spec.vm.serial_log);
  msg += console.empty() ? "; the guest console is empty" : "; guest console tail: " + console;
  throw VmError(msg);
}

// Waits for the guest's vsock connection, or for QEMU to die; an empty fd when interrupted.
UniqueFd accept_guest(int listen_fd, VmProcess& qemu, Clock::time_point deadline,
                      const LaunchSpec& spec) {
  for (;;) {
    pollfd p[2] = {{listen_fd, POLLIN, 0}, {qemu.pidfd(), POLLIN, 0}};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0)
      boot_failed("the guest did not connect over vsock in time", qemu, spec, spec.run_dir);
    int n = ::poll(p, 2, static_cast<int>(std::min<int64_t>(left.count(), 100)));
    if (n < 0 && errno != EINTR) throw_errno("poll", "vm channel");
    if (n > 0 && (p[0].revents & POLLIN)) return proto::accept_one(listen_fd, deadline);
    if (n > 0 && (p[1].revents & POLLIN)) {
      qemu.wait_exit(Clock::now());
      boot_failed("QEMU " + describe_status(qemu.wait_status()) + " before the guest connected",
                  qemu, spec, spec.run_dir);
    }
    if (spec.interrupted && spec.interrupted()) return UniqueFd();
  }
}

std::pair<UniqueFd, UniqueFd> socket_pair(const char* what) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    throw_errno("socketpair", what);
  return {UniqueFd(sv[0]), UniqueFd(sv[1])};
}

}  // namespace

std::string console_tail(const std::string& path, size_t max_bytes) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return "";
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return "";
  const off_t size = st.st_size;
  const off_t from =
      size > static_cast<off_t>(max_bytes) ? size - static_cast<off_t>(max_bytes) : 0;
  std::string data(static_cast<size_t>(size - from), '\0');
  ssize_t n = ::pread(fd.get(), data.data(), data.size(), from);
  if (n <= 0) return "";
  data.resize(static_cast<size_t>(n));
  // Kernel lines are the useful part: keep them separated but on one line of the message.
  std::string out;
  for (char c : data) out += (c == '\n') ? std::string(" | ") : std::string(1, c == '\r' ? ' ' : c);
  while (!out.empty() && (out.back() == ' ' || out.back() == '|')) out.pop_back();
  return printable(out);
}

struct Session::State {
  // The collector keeps a reference to the run config: ours, which lives as long as the session.
  explicit State(const LaunchSpec& s) : spec(s), collector(spec.run, spec.run_dir) {}
  LaunchSpec spec;  // vm.serial_log, channel_fd and qmp_fd filled in by boot()
  ResultCollector collector;
  std::optional<VmProcess> qemu;
  UniqueFd qmp_host;
  std::optional<QmpClient> qmp;  // once connected (pinning): the same client asks QEMU to quit
  std::optional<proto::Channel> channel;
  Clock::time_point t_hello, hard_deadline = Clock::time_point::max();
  std::optional<Clock::time_point> t_exit;
};

Session::Session(const LaunchSpec& spec) : s_(std::make_unique<State>(spec)) {}

Session::~Session() {
  s_->channel.reset();
  if (s_->qemu) s_->qemu->kill();
}

bool Session::boot() {
  LaunchSpec& spec = s_->spec;
  VmConfig& vm = spec.vm;
  vm.serial_log = spec.run_dir + "/console.log";
  // QEMU keeps its user (no -runas): changing its euid would clear the PR_SET_PDEATHSIG that
  // kills it with its runner (vm_process.cpp), and a SIGKILLed runner would leave it running.

  // 1. The channel and QMP as socketpairs: QEMU inherits one end of each (as fds 3 and 4), so
  //    there is no socket path anyone else could connect to first, and no listener to accept on.
  auto [channel_host, channel_qemu] = socket_pair("vm channel");
  auto [qmp_host, qmp_qemu] = socket_pair("QMP");
  if (vm.transport == Transport::kVirtioSerial) vm.channel_fd = 3;
  vm.qmp_fd = 4;
  s_->qmp_host = std::move(qmp_host);
  UniqueFd vsock_listener;  // vsock: the guest connects to the host (CID 2) on vm.vsock_port
  if (vm.transport == Transport::kVsock) vsock_listener = proto::vsock_listen(vm.vsock_port);

  // 2. Spawn QEMU, placed (cgroup) before it runs.
  const auto t_spawn = Clock::now();
  s_->qemu.emplace(VmProcess::spawn({qemu_argv(vm),
                                     spec.run_dir,
                                     spec.run_dir + "/qemu.log",
                                     spec.place_qemu,
                                     {channel_qemu.get(), qmp_qemu.get()}}));
  VmProcess& qemu = *s_->qemu;
  channel_qemu.reset();  // QEMU's end is QEMU's alone: its exit is our EOF
  qmp_qemu.reset();
  const auto boot_deadline = after(t_spawn, spec.boot_timeout_s);
  if (!spec.vcpu_cpus.empty()) pin_threads(boot_deadline);

  // 3. The guest init's hello: the kernel booted and init is up.
  if (vsock_listener) {
    channel_host = accept_guest(vsock_listener.get(), qemu, boot_deadline, spec);
    if (!channel_host) {
      r_.interrupted = true;
      qemu.kill();
      return false;
    }
  }
  const auto t_connected = Clock::now();
  r_.start_s = secs(t_spawn, t_connected);
  s_->channel.emplace(std::move(channel_host), s_->collector.max_total_bytes(), "guest");
  proto::Frame hello_frame;
  for (;;) {
    try {
      hello_frame = s_->channel->recv(std::min(boot_deadline, after(Clock::now(), 0.1)), "hello");
      break;
    } catch (const DeadlineExceeded&) {
      if (Clock::now() >= boot_deadline)
        boot_failed("the guest did not start its init within " +
                        std::to_string(static_cast<int>(spec.boot_timeout_s)) + " s",
                    qemu, spec, spec.run_dir);
      if (spec.interrupted && spec.interrupted()) {
        r_.interrupted = true;
        qemu.kill();
        return false;
      }
    } catch (const ProtocolError& e) {
      qemu.wait_exit(after(Clock::now(), 1.0));
      boot_failed(std::string("the guest init did not say hello (") + e.what() + ")", qemu, spec,
                  spec.run_dir);
    }
  }
  if (hello_frame.type != proto::FrameType::kHello) {
    if (hello_frame.type == proto::FrameType::kError) {
      proto::ErrorReport e = proto::decode_error(hello_frame);
      boot_failed("guest init failed at '" + e.stage + "': " + e.message, qemu, spec, spec.run_dir);
    }
    throw ProtocolError("vm: expected hello from the guest, got " +
                        proto::frame_type_name(static_cast<uint16_t>(hello_frame.type)));
  }
  r_.hello = proto::decode_hello(hello_frame);
  s_->t_hello = Clock::now();
  r_.boot_s = secs(t_connected, s_->t_hello);
  return true;
}

void Session::pin_threads(Clock::time_point deadline) {
  // QEMU creates its vCPU threads before it serves QMP, so they all exist by the greeting.
  try {
    s_->qmp.emplace(QmpClient::over(std::move(s_->qmp_host), deadline));
    const auto threads = parse_vcpu_threads(s_->qmp->execute("query-cpus-fast", deadline));
    Pinning p =
        pin_qemu_threads(s_->qemu->pid(), threads, s_->spec.vcpu_cpus, s_->spec.housekeeping);
    r_.vcpu_threads = std::move(p.vcpus);
    r_.other_threads_pinned = p.others;
    r_.pin_notice = std::move(p.notice);
  } catch (const Error& e) {
    // A QEMU that dies during start-up is the boot's failure to report, with its log.
    r_.pin_notice = std::string("vm: pinning QEMU threads: ") + e.what();
  }
}

void Session::start() {
  // 4. The run config; from here the guest runs the workload and streams results.
  s_->channel->send(proto::encode_run_config(s_->spec.run), after(s_->t_hello, 10));
  r_.start_time = unix_now();
  if (s_->spec.timeout_s > 0)
    s_->hard_deadline = after(s_->t_hello, s_->spec.timeout_s + s_->spec.grace_s);
}

namespace {

// Receives and consumes frames until until() holds, the host's deadline passes or the run is
// interrupted (both recorded in r).
template <class Until>
void pump(proto::Channel& channel, ResultCollector& collector, VmProcess& qemu,
          const LaunchSpec& spec, Clock::time_point hard_deadline, LaunchResult& r, Until until) {
  while (!until()) {
    proto::Frame f;
    try {
      f = channel.recv(std::min(hard_deadline, after(Clock::now(), 0.1)), "end-of-results");
    } catch (const DeadlineExceeded&) {
      if (Clock::now() >= hard_deadline) {
        r.host_deadline = true;
        return;
      }
      if (spec.interrupted && spec.interrupted()) {
        r.interrupted = true;
        return;
      }
      continue;
    } catch (const ProtocolError& e) {
      qemu.wait_exit(after(Clock::now(), 1.0));
      std::string tail = console_tail(spec.vm.serial_log, 1024);
      throw ProtocolError(std::string("vm: ") + e.what() +
                          (tail.empty() ? "" : "; guest console tail: " + tail));
    }
    collector.take(f);
  }
}

}  // namespace

void Session::wait() {
  ResultCollector& c = s_->collector;
  pump(*s_->channel, c, *s_->qemu, s_->spec, s_->hard_deadline, r_,
       [&c] { return c.done() || c.exit() || c.error(); });
  const auto now = Clock::now();
  if (c.exit() || c.error()) s_->t_exit = now;
  r_.run_s = secs(s_->t_hello, now);
}

void Session::finish() {
  ResultCollector& c = s_->collector;
  if (!r_.host_deadline && !r_.interrupted)
    pump(*s_->channel, c, *s_->qemu, s_->spec, s_->hard_deadline, r_, [&c] { return c.done(); });
  const auto t_end = Clock::now();
  r_.collect_s = s_->t_exit ? secs(*s_->t_exit, t_end) : 0;

  // 5. Shut down: closing the channel tells the guest its results arrived (it powers off on the
  //    hangup); QMP quit, then SIGKILL, if it does not.
  s_->channel.reset();
  VmProcess& qemu = *s_->qemu;
  auto ask_quit = [this](VmProcess::Deadline deadline) {
    if (s_->qmp)
      s_->qmp->quit(deadline);
    else
      QmpClient::over(std::move(s_->qmp_host), deadline).quit(deadline);
  };
  if (r_.host_deadline || r_.interrupted || !qemu.wait_exit(after(Clock::now(), 0.3)))
    qemu.stop(ask_quit, std::chrono::milliseconds(r_.host_deadline || r_.interrupted ? 500 : 2000));
  r_.shutdown_s = secs(t_end, Clock::now());
  r_.qemu_usage = qemu.usage();
  c.finish(r_);
}

LaunchResult launch(const LaunchSpec& spec) {
  Session session(spec);
  if (session.boot()) {
    session.start();
    session.wait();
    session.finish();
  }
  return std::move(session.result());
}

}  // namespace benchrun::vm
