// identity.hpp: the guest's hostname and loopback interface, as the sandbox gives a workload
// (its own UTS name; a network with only lo, up).
#pragma once

#include <string>

namespace benchrun::guest {

// sethostname(2). Throws SysError (EINVAL for a name over 64 bytes).
void set_hostname(const std::string& name);

// Brings lo up: benchmarks that serve and load themselves over 127.0.0.1 need it. Throws SysError.
void bring_loopback_up();

}  // namespace benchrun::guest
