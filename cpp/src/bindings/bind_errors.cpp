// bind_errors.cpp: the one place C++ exceptions become benchrun.errors classes, with attributes.
#include <pybind11/pybind11.h>

#include <cerrno>

#include "benchrun/common/error.hpp"
#include "bindings/bindings.hpp"

namespace py = pybind11;

namespace benchrun::bindings {

namespace {

py::object cls(const char* name) { return py::module_::import("benchrun.errors").attr(name); }

}  // namespace

void bind_errors(py::module_& m) {
  py::register_exception_translator([](std::exception_ptr p) {
    if (!p) return;
    try {
      std::rethrow_exception(p);
    } catch (const SysError& e) {
      PyErr_SetObject(cls("SysError").ptr(),
                      cls("SysError")(e.what(), e.code(), e.op(), e.path()).ptr());
    } catch (const AuthError& e) {
      PyErr_SetObject(cls("AuthError").ptr(), cls("AuthError")(e.what(), e.http_status()).ptr());
    } catch (const RegistryError& e) {
      PyErr_SetObject(cls("RegistryError").ptr(),
                      cls("RegistryError")(e.what(), e.http_status()).ptr());
    } catch (const DigestMismatch& e) {
      PyErr_SetString(cls("DigestMismatch").ptr(), e.what());
    } catch (const UnsafeLayerError& e) {
      PyErr_SetString(cls("UnsafeLayerError").ptr(), e.what());
    } catch (const ImageTooLarge& e) {
      PyErr_SetString(cls("ImageTooLarge").ptr(), e.what());
    } catch (const ImageNotFound& e) {
      PyErr_SetString(cls("ImageNotFound").ptr(), e.what());
    } catch (const ImageError& e) {
      PyErr_SetString(cls("ImageError").ptr(), e.what());
    } catch (const ConfigError& e) {
      PyErr_SetString(cls("ConfigError").ptr(), e.what());
    } catch (const SandboxError& e) {
      PyErr_SetObject(cls("SandboxError").ptr(), cls("SandboxError")(e.what(), e.stage()).ptr());
    } catch (const VmError& e) {
      PyErr_SetString(cls("VmError").ptr(), e.what());
    } catch (const RuntimeUnavailable& e) {
      PyErr_SetObject(cls("RuntimeUnavailable").ptr(),
                      cls("RuntimeUnavailable")(e.what(), e.runtime(), e.reason()).ptr());
    } catch (const ProtocolError& e) {
      PyErr_SetString(cls("ProtocolError").ptr(), e.what());
    } catch (const DeadlineExceeded& e) {
      PyErr_SetString(cls("DeadlineExceeded").ptr(), e.what());
    } catch (const ValgrindNotFound& e) {
      PyErr_SetString(cls("ValgrindNotFound").ptr(), e.what());
    } catch (const InstructionCountError& e) {
      PyErr_SetString(cls("InstructionCountError").ptr(), e.what());
    } catch (const Error& e) {
      PyErr_SetString(cls("BenchrunError").ptr(), e.what());
    }
  });

  // One throw per C++ type, so a test can check each lands on the right Python class.
  m.def(
      "_raise_for_test",
      [](const std::string& kind) {
        if (kind == "SysError") throw_errno(ENOENT, "open", "/nonexistent");
        if (kind == "ConfigError") throw ConfigError("config");
        if (kind == "RegistryError") throw RegistryError("registry", 503);
        if (kind == "AuthError") throw AuthError("auth", 401);
        if (kind == "ImageError") throw ImageError("image");
        if (kind == "DigestMismatch") throw DigestMismatch("digest");
        if (kind == "UnsafeLayerError") throw UnsafeLayerError("unsafe");
        if (kind == "ImageTooLarge") throw ImageTooLarge("toolarge");
        if (kind == "ImageNotFound") throw ImageNotFound("notfound");
        if (kind == "SandboxError") throw SandboxError("sandbox", "pivot_root");
        if (kind == "VmError") throw VmError("vm");
        if (kind == "RuntimeUnavailable")
          throw RuntimeUnavailable("runtime", "crun", "unsupported-host");
        if (kind == "ProtocolError") throw ProtocolError("protocol");
        if (kind == "DeadlineExceeded") throw DeadlineExceeded("deadline");
        if (kind == "InstructionCountError") throw InstructionCountError("instructions");
        if (kind == "ValgrindNotFound") throw ValgrindNotFound("valgrind");
        throw Error("error");
      },
      py::arg("kind"));
}

}  // namespace benchrun::bindings
