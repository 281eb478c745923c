// child_channel.hpp: the parent's side of the channels to a sandboxed child (cpp/src/sandbox/
// child.cpp): the socket pair that carries the child's root fd up and the "go" byte down, and the
// status pipe. Shared by the sandbox's spawn and the microVM's init, so both start the workload's
// clock at the same point: when the set-up child is released, just before its last steps and exec.
#pragma once

#include <chrono>

#include "benchrun/common/unique_fd.hpp"

namespace benchrun::sandbox {

struct FdPair {
  UniqueFd parent, child;
};

// fd itself when it is above 2, else a CLOEXEC copy there: the child dup2()s onto 0, 1 and 2, so
// our own channels must not sit there (a caller with a closed stdin would otherwise get its status
// pipe overwritten).
UniqueFd above_stdio(UniqueFd fd, const char* what);

// SOCK_SEQPACKET pair (the child's root fd up, "go" down) and the O_CLOEXEC status pipe (EOF:
// execve succeeded), both above stdio.
FdPair make_socketpair();
FdPair make_status_pipe();

// The fd the child sent, or an empty UniqueFd on EOF (the child exited before sending it).
// SandboxError{"send root fd"} when a message came without one.
UniqueFd receive_fd(int sock);

// Releases the child to its last steps and exec; returns the moment just before, where the run's
// wall clock starts. A child that died meanwhile is not an error here: the status pipe says why.
std::chrono::steady_clock::time_point send_go(int sock) noexcept;

}  // namespace benchrun::sandbox
