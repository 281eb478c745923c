// collect.hpp: the workload's output files, read after it exited and sent to the host, with the
// sandbox backend's rules (cpp/src/run/runner.cpp collect_outputs).
#pragma once

#include <string>

#include "benchrun/proto/channel.hpp"
#include "benchrun/proto/messages.hpp"

namespace benchrun::guest {

// For each of config.outputs, in order: the file's contents as File frames (chunks of at most
// 512 KiB, in order; an empty file is one empty chunk), or one FileMissing frame with the reason
// (strerror of the failed open, "not a regular file", "resolves into /proc or /sys", "larger than
// the limit of N bytes", "more than N output files", "not an absolute path"). Paths resolve inside
// root (openat2 RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS: symlinks and ".." cannot leave it).
// Throws SysError (root cannot be opened), ProtocolError / DeadlineExceeded from the channel.
void collect_outputs(proto::Channel& channel, const std::string& root,
                     const proto::RunConfig& config);

}  // namespace benchrun::guest
