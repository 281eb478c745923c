// runner.hpp: the one entry to running an image: image -> backend -> RunResult, whatever the
// backend (run/run_image.cpp lists the steps).
#pragma once

#include <string>

#include "benchrun/oci/store.hpp"
#include "benchrun/run/backend.hpp"
#include "benchrun/run/result.hpp"
#include "benchrun/run/spec.hpp"

namespace benchrun::run {

// The image from the store (by reference or manifest digest), ready to run: its config and
// unpacked tree. ImageNotFound if absent; ImageError if it is not unpacked. Load once, run many.
RunImage load_run_image(const oci::Store& store, const std::string& reference);

// Runs the image in spec.backend: validate -> sweep leftovers -> prepare -> start -> wait ->
// collect, each step timed in RunResult::phases. Throws ConfigError (bad spec, hostile image
// config), SandboxError{stage}, VmError, ProtocolError; interrupt (polled at least every 100 ms)
// stops the run and the result says interrupted.
RunResult run_image(const RunImage& image, const RunSpec& spec, const HostConfig& host,
                    const Interrupt& interrupt = {});

// Every backend's sweep of what SIGKILLed runners left (run dirs, cgroups). Returns the count.
int cleanup_leftovers(const HostConfig& host);

}  // namespace benchrun::run
