// error.cpp: message formatting for SysError.
#include "benchrun/common/error.hpp"

#include <cerrno>
#include <cstring>

namespace benchrun {

namespace {
std::string format_sys(int err, const std::string& op, const std::string& path) {
  std::string msg = op;
  if (!path.empty()) msg += " '" + path + "'";
  msg += ": ";
  msg += std::strerror(err);
  if (err == EPERM || err == EACCES) msg += " (hint: run as root or check permissions)";
  return msg;
}
}  // namespace

SysError::SysError(int err, std::string op, std::string path)
    : Error(format_sys(err, op, path)), errno_(err), op_(std::move(op)), path_(std::move(path)) {}

void throw_errno(std::string_view op, std::string_view path) { throw_errno(errno, op, path); }

void throw_errno(int err, std::string_view op, std::string_view path) {
  throw SysError(err, std::string(op), std::string(path));
}

}  // namespace benchrun
