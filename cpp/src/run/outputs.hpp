// outputs.hpp: reading a finished run's output files through its root (every host-side backend).
#pragma once

#include <string>
#include <vector>

#include "benchrun/run/result.hpp"
#include "benchrun/run/spec.hpp"

namespace benchrun::run {

// Reads output files through the run's root (rootfd), after the workload exited: symlinks resolve
// inside the root; only regular files on the run's own filesystems (not /proc or /sys), within
// spec.max_files and spec.max_file_bytes, land in r.outputs; the others in r.missing_outputs with
// the reason.
void collect_outputs(int rootfd, const RunSpec& spec, const std::vector<std::string>& paths,
                     RunResult& r);

}  // namespace benchrun::run
