// run_image.cpp: one run, in order, whatever the backend: validate -> sweep leftovers -> prepare ->
// start -> wait -> collect -> release. The steps themselves are the backend's (run/backend.hpp);
// here they are only listed and timed, so every backend's phases mean the same.
#include <filesystem>

#include "benchrun/common/dir.hpp"
#include "benchrun/common/error.hpp"
#include "benchrun/common/fs.hpp"
#include "benchrun/common/mount.hpp"
#include "benchrun/host/cpu_alloc.hpp"
#include "benchrun/host/cpu_partition.hpp"
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
  RunSpec placed = spec;
  RunContext ctx{image, placed, host, make_run_name(), interrupt};

  auto t = Clock::now();
  // The run's CPUs, locked for it alone until it is over; this thread (and so what it spawns
  // before that is placed) on the housekeeping CPUs meanwhile.
  host::CpuLease cpus = allocate_cpus(ctx, r);
  if ((!spec.cpus.empty() || spec.cpu_count) && cpus.cpus().empty()) {
    r.interrupted = true;  // interrupted while waiting for busy CPUs
    return r;
  }
  placed.cpus = cpus.cpus();
  host::ScopedAffinity runner_affinity(ctx.housekeeping);
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

host::CpuLease allocate_cpus(RunContext& ctx, RunResult& r) {
  const RunSpec& spec = ctx.spec;
  const HostConfig& host = ctx.host;
  if (spec.cpus.empty() && !spec.cpu_count) return {};
  const host::PartitionConfig pc{host.cgroup.root, host.cgroup.parent, host.cgroup.version,
                                 host.cpu_online};
  ctx.pool = host::run_cpus(pc);
  host::CpuRequest req{spec.cpus, spec.cpu_count ? static_cast<unsigned>(*spec.cpu_count) : 0u,
                       spec.cpu_wait};
  host::CpuLease lease =
      host::acquire_cpus(ctx.pool, req, ctx.name, host.cpu_lock_dir, ctx.interrupt);
  if (lease.cpus().empty()) return lease;
  // Housekeeping: outside the partition when there is one, else outside the run's CPUs.
  std::optional<host::PartitionStatus> st;
  try {
    st = host::partition_status(pc);
  } catch (const Error&) {
    // No readable cgroupfs (rootless): no partition.
  }
  host::CpuList others = host::thread_affinity(0);
  others = host::cpu_difference(others, st && st->exists ? st->cpus : lease.cpus());
  ctx.housekeeping = others;
  r.facts["cpus"] = host::format_cpu_list(lease.cpus());
  r.facts["housekeeping_cpus"] = host::format_cpu_list(others);
  r.facts["cpu_partition"] = st && st->exists ? st->mode : std::string("none");
  return lease;
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
      sweep_oci_run_dir(host, run_dir / name);  // container, mounts, the runtime's cgroups
      detach_mounts_under((run_dir / name).string());
      remove_tree(run_dir / name);
      ++removed;
    } catch (const Error&) {
      // Left for the next start; never fail a run over someone else's debris.
    }
  }
  return removed;
}

}  // namespace benchrun::run
