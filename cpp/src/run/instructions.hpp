// instructions.hpp: deterministic instruction counts (RunSpec::instructions): the workload runs
// under Valgrind's callgrind, from the host, without the image containing Valgrind.
//
// Design note (docs/instructions.md). Valgrind's tools are static executables
// (/usr/libexec/valgrind/<tool>-amd64-linux), so the sandbox binds the host's tool directory
// read-only at /.benchrun-tools/valgrind and benchrun's static launcher (cpp/tools/vglaunch.c) at
// /.benchrun-tools/launch; the workload's argv becomes
//   /.benchrun-tools/launch --tool=callgrind --trace-children=yes ... <argv>
// The launcher plays valgrind(1)'s part: it sets VALGRIND_LAUNCHER (which the tool requires, and
// re-executes for every traced exec) and VALGRIND_LIB, and execs the tool. Each process writes its
// profile (and one file per client-request dump) to /.benchrun-tools/out, a tmpfs of the run's
// own, owned by the workload's user, bounded in size and read by the host through the run's root
// after the exit. The files are written by the instrumented process itself, so they are parsed
// as hostile input (callgrind_output.hpp).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "benchrun/run/result.hpp"
#include "benchrun/run/spec.hpp"

namespace benchrun::run {

// Size of the output tmpfs (pages are charged to the run's memory cgroup as they are written).
inline constexpr uint64_t kInstructionOutputBytes = uint64_t{256} << 20;

// Throws ValgrindNotFound unless host.valgrind_dir holds the callgrind tool and
// host.valgrind_launcher is a file.
void check_valgrind(const HostConfig& host);

// argv (the resolved Entrypoint + Cmd) under callgrind, for mode "count", "cache" or "sections".
Argv instrumented_argv(const std::string& mode, const Argv& argv);

// The output tmpfs's mount options: private to the workload's user (uid/gid as seen inside).
std::string instruction_output_options(uid_t uid, gid_t gid);

// After the run: reads every file of the output directory through rootfd (the run's root) and
// sets the metrics (docs/instructions.md): instructions, instructions.<section>, and with mode
// "cache" data_reads, data_writes, i1_misses, d1_misses, ll_misses, estimated_cycles. A run that
// was killed (timeout, interrupt, SIGKILL) without any output gets a notice instead.
// InstructionCountError: Valgrind could not run the workload (its message is quoted, e.g. an
// unsupported instruction set), no output at all, or malformed output.
void collect_instruction_metrics(int rootfd, const std::string& mode, RunResult& r);

// The metrics of parsed parts (exposed for tests).
struct CallgrindPart;
void set_instruction_metrics(const std::vector<CallgrindPart>& parts, const std::string& mode,
                             RunResult& r);

}  // namespace benchrun::run
