// module.cpp: the benchrun._core extension module.
#include <pybind11/pybind11.h>

#include "bindings/bindings.hpp"

PYBIND11_MODULE(_core, m) {
  m.doc() =
      "benchrun's native core (OCI pull, verify, unpack). Use the benchrun package, not this.";
  m.attr("__version__") = BENCHRUN_VERSION;
  benchrun::bindings::bind_errors(m);
  benchrun::bindings::bind_host(m);
  benchrun::bindings::bind_oci(m);
  benchrun::bindings::bind_run(m);
}
