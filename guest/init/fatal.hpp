// fatal.hpp: what init does with an error it cannot get past: tell the host (or, with no channel
// yet, the console), then the caller powers off.
#pragma once

#include "benchrun/proto/channel.hpp"
#include "init/init_error.hpp"

namespace benchrun::guest {

// Prints the error on the console and, when channel is not null, sends ErrorReport{origin, stage,
// errno, message} then End and waits for the host to hang up (each bounded, so a host that stopped
// reading cannot hold the guest up). Never throws: a failure to report is only printed.
void report_fatal(proto::Channel* channel, const InitError& error) noexcept;

}  // namespace benchrun::guest
