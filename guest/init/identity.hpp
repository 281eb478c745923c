// identity.hpp: the guest's loopback interface, as the sandbox gives a workload a network with
// only lo, up. (Its hostname is set by the workload's child in its own UTS namespace.)
#pragma once

namespace benchrun::guest {

// Brings lo up: benchmarks that serve and load themselves over 127.0.0.1 need it. Throws SysError.
void bring_loopback_up();

}  // namespace benchrun::guest
