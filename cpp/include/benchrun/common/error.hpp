// error.hpp: benchrun's typed exception hierarchy; bind_errors.cpp maps each type to a Python
// class.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace benchrun {

// Root of every error benchrun throws. Messages are one line: "<op> '<object>': <cause>".
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// A failed system call: errno, the operation and the path (or object) it acted on.
class SysError : public Error {
 public:
  SysError(int err, std::string op, std::string path);
  int code() const noexcept { return errno_; }
  const std::string& op() const noexcept { return op_; }
  const std::string& path() const noexcept { return path_; }

 private:
  int errno_;
  std::string op_;
  std::string path_;
};

// Invalid user or caller input (a bad reference, option or value).
class ConfigError : public Error {
 public:
  using Error::Error;
};

// A registry answered with an error, or could not be reached. http_status is 0 for transport
// errors.
class RegistryError : public Error {
 public:
  RegistryError(const std::string& what, int http_status = 0)
      : Error(what), http_status_(http_status) {}
  int http_status() const noexcept { return http_status_; }

 private:
  int http_status_;
};

// The registry refused our credentials (401/403 after authenticating).
class AuthError : public RegistryError {
 public:
  using RegistryError::RegistryError;
};

// An image is malformed, unsupported or unsafe.
class ImageError : public Error {
 public:
  using Error::Error;
};

// Content did not hash to the digest that was asked for.
class DigestMismatch : public ImageError {
 public:
  using ImageError::ImageError;
};

// A layer archive tried to do something unsafe (escape the root, exceed limits, ...).
class UnsafeLayerError : public ImageError {
 public:
  using ImageError::ImageError;
};

// An image would unpack to more than its limits (per-image total, ratio to the compressed size) or
// than the store's filesystem can hold while keeping its reserve free.
class ImageTooLarge : public ImageError {
 public:
  using ImageError::ImageError;
};

// The image is not in the local store.
class ImageNotFound : public ImageError {
 public:
  using ImageError::ImageError;
};

// Sandbox setup failed at a named stage (e.g. "pivot_root").
class SandboxError : public Error {
 public:
  SandboxError(const std::string& what, std::string stage)
      : Error(what), stage_(std::move(stage)) {}
  const std::string& stage() const noexcept { return stage_; }

 private:
  std::string stage_;
};

class VmError : public Error {
 public:
  using Error::Error;
};

// An OCI runtime (runc, runsc, crun, or --runtime) cannot be used on this host: reason() is
// "not-installed", "wrong-version" or "unsupported-host"; runtime() names it.
class RuntimeUnavailable : public Error {
 public:
  RuntimeUnavailable(const std::string& what, std::string runtime, std::string reason)
      : Error(what), runtime_(std::move(runtime)), reason_(std::move(reason)) {}
  const std::string& runtime() const noexcept { return runtime_; }
  const std::string& reason() const noexcept { return reason_; }

 private:
  std::string runtime_;
  std::string reason_;
};

class ProtocolError : public Error {
 public:
  using Error::Error;
};

class DeadlineExceeded : public Error {
 public:
  using Error::Error;
};

// Instruction counting (--instructions) failed: Valgrind could not run the workload (e.g. an
// instruction set it does not know), or its output is missing or malformed.
class InstructionCountError : public Error {
 public:
  using Error::Error;
};

// --instructions on a host without Valgrind's tool directory (Debian: apt-get install valgrind).
class ValgrindNotFound : public InstructionCountError {
 public:
  using InstructionCountError::InstructionCountError;
};

// Throws SysError for the current errno: throw_errno("mount", "/run/x/proc").
[[noreturn]] void throw_errno(std::string_view op, std::string_view path);
[[noreturn]] void throw_errno(int err, std::string_view op, std::string_view path);

}  // namespace benchrun
