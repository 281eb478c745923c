// backend.hpp: the interface every backend implements, and the registry of backends by name.
//
// run_image (run/run_image.cpp) drives each run through the same steps, in order, timing each:
//   backend.validate(spec)            refuse what this backend cannot do, before any work
//   backend.prepare(ctx, result)      root filesystem, cgroup, pipes, ...: nothing runs yet
//   execution->start()                the workload (or its VM) starts
//   execution->wait()                 until it exits, its timeout passes, or ctx.interrupt() says
//   so execution->collect(result)        status, output, files, metrics ~Execution every resource
//   of the run released, whatever happened
// A new backend is one file implementing Backend + one line in run/backends.cpp.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "benchrun/host/cpus.hpp"
#include "benchrun/oci/manifest.hpp"
#include "benchrun/run/result.hpp"
#include "benchrun/run/spec.hpp"

namespace benchrun::run {

// Polled while a run waits (at least every 100 ms); true stops the run: killed, cleaned up, and
// the result says interrupted.
using Interrupt = std::function<bool()>;

// The image a run starts from: its config and its unpacked, read-only tree.
struct RunImage {
  oci::ImageConfig config;
  std::string rootfs;    // the unpacked tree (never modified by a run)
  std::string chain_id;  // "sha256:..." of the tree: a cache key for derived root images
  std::string digest;    // the manifest digest, for the result
};

struct RunContext {
  const RunImage& image;
  const RunSpec& spec;
  const HostConfig& host;
  std::string name;     // "run-<pid>-<random>": the run's directory and cgroup name
  Interrupt interrupt;  // may be empty
  // Where it runs (run_image fills these before prepare): spec.cpus are the run's locked CPUs;
  // pool the CPUs runs may use (a partition's, or all); housekeeping the CPUs outside the run's
  // (outside the partition when there is one), where the runner and QEMU's own threads go.
  host::CpuList pool = {};
  host::CpuList housekeeping = {};
};

// One run in progress. Destruction releases everything it holds (processes, mounts, cgroup,
// directories) and never throws.
class Execution {
 public:
  virtual ~Execution() = default;
  virtual void start() = 0;
  // Returns when the workload has ended (exited, killed at its timeout, or stopped by interrupt).
  virtual void wait() = 0;
  virtual void collect(RunResult& result) = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  // ConfigError for what this backend cannot do (the generic rules are run::validate's).
  virtual void validate(const RunSpec& spec) const = 0;
  // Everything is allocated and checked; nothing runs yet. Notices may go into result.
  virtual std::unique_ptr<Execution> prepare(const RunContext& ctx, RunResult& result) const = 0;
  // Why this backend cannot run on this host (a missing runtime, an unsupported host: the message
  // of the error a run would raise), or "" when it can. Cheap enough to call per test session.
  virtual std::string unavailable(const HostConfig&) const { return {}; }
  // Removes what SIGKILLed runners of this backend left behind; returns how many runs' worth.
  virtual int sweep(const HostConfig& host) const = 0;
};

// The registered backends (run/backends.cpp), by name.
const std::vector<std::string>& backend_names();
// ConfigError naming the registered backends for an unknown name.
const Backend& backend(const std::string& name);

}  // namespace benchrun::run
