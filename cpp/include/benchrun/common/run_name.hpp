// run_name.hpp: "run-<pid>-<random>", the name of a run's directory and cgroup. The pid is the
// runner's, so a later runner can tell a dead runner's leftovers from a live one's.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

namespace benchrun {

// "run-<getpid()>-<8 random hex digits>": unique among this process's runs and across processes.
std::string make_run_name();

// The <pid> of "run-<pid>-<anything>" (pid decimal, > 0, fits pid_t); nullopt for any other name,
// which no runner made and which cleanup must therefore leave alone.
std::optional<pid_t> run_name_pid(std::string_view name);

// Whether name is a run name whose runner is gone: kill(pid, 0) fails with ESRCH in our PID
// namespace (EPERM means alive but not ours to signal). A recycled pid keeps a stale run until
// that process ends; a runner in another PID namespace must not share the same run directory.
bool run_name_is_stale(std::string_view name);

}  // namespace benchrun
