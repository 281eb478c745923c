// run_image.cpp: one run, in order, whatever the backend: validate -> sweep leftovers -> prepare ->
// start -> wait -> collect -> release. The steps themselves are the backend's (run/backend.hpp);
// here they are only listed and timed, so every backend's phases mean the same.
#include <filesystem>

#include "benchrun/common/dir.hpp"
#include "benchrun/common/error.hpp"
#include "benchrun/common/fs.hpp"
#include "benchrun/host/scratch_fs.hpp"
#include "benchrun/oci/pull.hpp"
#include "benchrun/run/runner.hpp"
#include "run/run_common.hpp"

namespace benchrun::run {

RunImage load_run_image(const oci::Store& store, const std::string& reference) {
  oci::Image img = oci::load_image(store, reference);
  if (img.rootfs.empty() || !img.record.chain_id)
    throw ImageError("image '" + reference + "' is not unpacked (hint: benchrun pull it)");
  return RunImage{std::move(img.config), img.rootfs.string(), img.record.chain_id->str(),
                  img.record.manifest_digest.str()};
}

RunResult run_image(const RunImage& image, const RunSpec& spec, const HostConfig& host,
                    const Interrupt& interrupt) {
  validate(spec);
  const Backend& b = backend(spec.backend);
  b.sweep(host);
  RunResult r;
  r.backend = b.name();
  r.image_digest = image.digest;
  const RunContext ctx{image, spec, host, make_run_name(), interrupt};

  auto t = Clock::now();
  std::unique_ptr<Execution> ex = b.prepare(ctx, r);
  r.phases.prepare_s = since(t);
  t = Clock::now();
  ex->start();
  r.phases.start_s = since(t);
  t = Clock::now();
  ex->wait();
  r.phases.run_s = since(t);
  t = Clock::now();
  ex->collect(r);
  ex.reset();  // every resource of the run released
  r.phases.collect_s = since(t);
  return r;
}

host::CgroupLimits cpu_limits(const RunSpec& spec) {
  host::CgroupLimits limits;
  for (int c : spec.cpus)
    limits.cpuset_cpus += (limits.cpuset_cpus.empty() ? "" : ",") + std::to_string(c);
  if (spec.cpu_quota)
    limits.cpu_quota_us =
        static_cast<uint64_t>(*spec.cpu_quota * static_cast<double>(limits.cpu_period_us));
  return limits;
}

TempDir make_run_dir(const RunContext& ctx) {
  make_dirs(ctx.host.run_dir());
  return TempDir(ctx.host.run_dir(), ctx.name + "-");
}

int cleanup_leftovers(const HostConfig& host) {
  int removed = 0;
  for (const auto& name : backend_names()) removed += backend(name).sweep(host);
  return removed;
}

int sweep_stale_runs(const HostConfig& host) {
  int removed = host::cleanup_stale_cgroups(host.cgroup);
  const std::filesystem::path run_dir = host.run_dir();
  // Disk images of dead runs still attached to a loop device (their mounts died with the cgroup's
  // processes; a device still busy detaches at its last close).
  host::clear_stale_loop_devices(run_dir.string(), run_name_is_stale);
  for (const auto& name : list_dir_if_exists(run_dir)) {
    if (!run_name_is_stale(name)) continue;
    try {
      remove_tree(run_dir / name);
      ++removed;
    } catch (const Error&) {
      // Left for the next start; never fail a run over someone else's debris.
    }
  }
  return removed;
}

}  // namespace benchrun::run
