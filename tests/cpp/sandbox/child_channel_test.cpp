// child_channel_test.cpp: the parent's side of the set-up child's channels, shared by the sandbox
// and the VM's init: the root fd going up, "go" coming down, and what EOF and stdio mean.
#include "sandbox/child_channel.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include "benchrun/common/error.hpp"

using namespace benchrun;
using namespace benchrun::sandbox;

namespace {

void send_fd(int sock, int fd) {
  char byte = 'r';
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  ASSERT_EQ(::sendmsg(sock, &msg, 0), 1);
}

}  // namespace

TEST(ChildChannel, RootFdUpGoDown) {
  FdPair sock = make_socketpair();
  UniqueFd dir(::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
  send_fd(sock.child.get(), dir.get());
  UniqueFd root = receive_fd(sock.parent.get());
  ASSERT_TRUE(root);
  struct stat a {
  }, b{};
  ASSERT_EQ(::fstat(root.get(), &a), 0);
  ASSERT_EQ(::stat("/", &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
  EXPECT_EQ(::fcntl(root.get(), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);

  const auto before = std::chrono::steady_clock::now();
  const auto at = send_go(sock.parent.get());
  char go = 0;
  ASSERT_EQ(::recv(sock.child.get(), &go, 1, 0), 1);
  EXPECT_EQ(go, 'g');
  EXPECT_GE(at, before);  // stamped before the byte left, so the child cannot run uncounted
  EXPECT_LE(at, std::chrono::steady_clock::now());
}

TEST(ChildChannel, EofIsNoRootAndAMessageWithoutOneIsAnError) {
  FdPair eof = make_socketpair();
  eof.child.reset();
  EXPECT_FALSE(receive_fd(eof.parent.get()));

  FdPair bare = make_socketpair();
  const char byte = 'r';
  ASSERT_EQ(::send(bare.child.get(), &byte, 1, 0), 1);
  EXPECT_THROW(receive_fd(bare.parent.get()), SandboxError);
}

TEST(ChildChannel, GoToADeadChildIsNotAnError) {
  FdPair sock = make_socketpair();
  sock.child.reset();
  send_go(sock.parent.get());  // EPIPE: the status pipe reports why the child is gone
}

TEST(ChildChannel, ChannelsStayAboveStdio) {
  // With stdin closed, the next fd would be 0: the channel must not land there.
  UniqueFd saved(::fcntl(0, F_DUPFD_CLOEXEC, 3));
  ASSERT_TRUE(saved);
  ::close(0);
  FdPair p = make_status_pipe();
  FdPair s = make_socketpair();
  ASSERT_EQ(::dup2(saved.get(), 0), 0);
  for (int fd : {p.parent.get(), p.child.get(), s.parent.get(), s.child.get()}) EXPECT_GT(fd, 2);
}
