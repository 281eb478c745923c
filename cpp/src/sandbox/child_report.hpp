// child_report.hpp: the parent's side of the child's status pipe: reading the record the child
// writes when a step fails, and wording it as the error the caller sees. Shared by the sandbox's
// spawn and the microVM's init, so a failed step reads the same on both backends.
#pragma once

#include <string>
#include <vector>

#include "benchrun/common/error.hpp"
#include "sandbox/child.hpp"

namespace benchrun::sandbox {

// Blocks until the child's execve (EOF: false) or its report (true, rec filled). Throws SysError,
// or SandboxError{"setup"} for a truncated record.
bool read_status(int fd, StatusRecord& rec);

// The record as SandboxError{stage}: "exec 'cmd': No such file or directory in the image
// (PATH=...)" for exec (argv0 as given, or the candidate of exec_paths that failed), else
// "sandbox setup failed at '<stage>' ('<object>'): <cause> (hint: ...)".
SandboxError failure_error(const StatusRecord& rec, const std::string& argv0,
                           const std::string& search_path,
                           const std::vector<std::string>& exec_paths);

}  // namespace benchrun::sandbox
