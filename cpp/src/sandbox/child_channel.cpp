// child_channel.cpp: see child_channel.hpp.
#include "sandbox/child_channel.hpp"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "benchrun/common/error.hpp"

namespace benchrun::sandbox {

UniqueFd above_stdio(UniqueFd fd, const char* what) {
  if (fd.get() > 2) return fd;
  int moved = ::fcntl(fd.get(), F_DUPFD_CLOEXEC, 3);
  if (moved < 0) throw_errno("fcntl(F_DUPFD_CLOEXEC)", what);
  return UniqueFd(moved);
}

FdPair make_socketpair() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
    throw_errno("socketpair", "sandbox channel");
  return {above_stdio(UniqueFd(sv[0]), "sandbox channel"),
          above_stdio(UniqueFd(sv[1]), "sandbox channel")};
}

FdPair make_status_pipe() {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) throw_errno("pipe2", "sandbox status");
  return {above_stdio(UniqueFd(p[0]), "sandbox status"),
          above_stdio(UniqueFd(p[1]), "sandbox status")};
}

UniqueFd receive_fd(int sock) {
  char byte;
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0 && errno == ECONNRESET) return {};
  if (n < 0) throw_errno("recvmsg", "sandbox channel");
  UniqueFd fd;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
        c->cmsg_len == CMSG_LEN(sizeof(int))) {
      int received;
      std::memcpy(&received, CMSG_DATA(c), sizeof received);
      fd.reset(received);
    }
  }
  if (n == 0 && !fd) return {};
  if (!fd || (msg.msg_flags & MSG_CTRUNC))
    throw SandboxError("sandbox setup: the child sent no root fd", "send root fd");
  return fd;
}

std::chrono::steady_clock::time_point send_go(int sock) noexcept {
  const char go = 'g';
  const auto at = std::chrono::steady_clock::now();
  ssize_t n;
  do n = ::send(sock, &go, 1, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  return at;  // EPIPE / ECONNRESET: the child died; its status pipe says why
}

}  // namespace benchrun::sandbox
