// bindings.hpp: one registration function per bound component.
#pragma once

#include <pybind11/pybind11.h>

namespace benchrun::bindings {

void bind_errors(pybind11::module_& m);
void bind_host(pybind11::module_& m);
void bind_oci(pybind11::module_& m);
void bind_run(pybind11::module_& m);

}  // namespace benchrun::bindings
