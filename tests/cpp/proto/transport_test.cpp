// transport_test.cpp: Unix listen/accept/connect, the hybrid vsock handshake against a fake VMM,
// virtio-serial port lookup in a fake sysfs tree, and AF_VSOCK where the kernel provides loopback.
#include "benchrun/proto/transport.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/vm_sockets.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <thread>

#include "benchrun/common/error.hpp"
#include "benchrun/common/fs.hpp"
#include "benchrun/proto/channel.hpp"
#include "benchrun/proto/messages.hpp"

namespace proto = benchrun::proto;
using benchrun::DeadlineExceeded;
using benchrun::ProtocolError;
using benchrun::SysError;
using benchrun::TempDir;
using benchrun::UniqueFd;
using namespace std::chrono_literals;

namespace {

proto::Deadline in(std::chrono::milliseconds d) { return std::chrono::steady_clock::now() + d; }

std::string read_some(int fd, size_t n) {
  std::string out;
  while (out.size() < n) {
    char buf[256];
    ssize_t r = ::read(fd, buf, std::min(sizeof buf, n - out.size()));
    if (r <= 0) break;
    out.append(buf, static_cast<size_t>(r));
  }
  return out;
}

void write_str(int fd, const std::string& s) {
  EXPECT_EQ(::send(fd, s.data(), s.size(), MSG_NOSIGNAL), static_cast<ssize_t>(s.size()));
}

std::string read_line(int fd) {
  std::string line;
  char c;
  while (::read(fd, &c, 1) == 1 && c != '\n') line += c;
  return line;
}

void write_text(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

class ProtoTransport : public ::testing::Test {
 protected:
  TempDir dir_{"/tmp", "proto-transport-"};
  std::string path(const std::string& name) const { return (dir_.path() / name).string(); }
};

// A VMM's hybrid vsock socket: reads the CONNECT line, answers with reply, then sends trailer.
class FakeVmm {
 public:
  FakeVmm(const std::string& uds, std::string reply, std::string trailer = "", bool hang = false)
      : listener_(proto::listen_unix(uds)) {
    thread_ = std::thread([this, reply = std::move(reply), trailer = std::move(trailer), hang] {
      try {
        UniqueFd conn = proto::accept_one(listener_.get(), in(5s));
        request_ = read_line(conn.get());
        if (hang) {
          char c;
          (void)::read(conn.get(), &c, 1);  // until the client gives up and closes
          return;
        }
        write_str(conn.get(), reply + trailer);
      } catch (const std::exception& e) {
        error_ = e.what();
      }
    });
  }
  ~FakeVmm() { join(); }
  std::string request() {
    join();
    return request_;
  }
  const std::string& error() const { return error_; }

 private:
  void join() {
    if (thread_.joinable()) thread_.join();
  }

  UniqueFd listener_;
  std::thread thread_;
  std::string request_, error_;
};

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const benchrun::Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no exception";
  return "";
}

// Why AF_VSOCK loopback (CID 1) cannot be used here, or "" when it can.
std::string vsock_loopback_unavailable() {
  UniqueFd fd(::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return std::string("socket(AF_VSOCK): ") + std::strerror(errno);
  sockaddr_vm a{};
  a.svm_family = AF_VSOCK;
  a.svm_cid = VMADDR_CID_LOCAL;
  a.svm_port = VMADDR_PORT_ANY;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
    return std::string("no vsock loopback transport (bind to VMADDR_CID_LOCAL: ") +
           std::strerror(errno) + "; needs CONFIG_VSOCKETS_LOOPBACK or `modprobe vsock_loopback`)";
  return "";
}

uint32_t test_port() { return 40000 + static_cast<uint32_t>(::getpid() % 20000); }

}  // namespace

TEST_F(ProtoTransport, ListenAcceptConnectUnix) {
  UniqueFd listener = proto::listen_unix(path("s.sock"));
  EXPECT_TRUE(::fcntl(listener.get(), F_GETFD) & FD_CLOEXEC);
  UniqueFd client = proto::connect_unix(path("s.sock"));
  UniqueFd server = proto::accept_one(listener.get(), in(5s));
  EXPECT_TRUE(::fcntl(server.get(), F_GETFD) & FD_CLOEXEC);
  write_str(client.get(), "ping");
  EXPECT_EQ(read_some(server.get(), 4), "ping");
  // The protocol runs over it unchanged.
  proto::Channel host(std::move(server), UINT64_MAX, "guest");
  proto::Channel guest(std::move(client), UINT64_MAX, "host");
  guest.send(proto::encode_end());
  EXPECT_EQ(host.recv(in(5s)).type, proto::FrameType::kEnd);
}

TEST_F(ProtoTransport, AcceptDeadline) {
  UniqueFd listener = proto::listen_unix(path("s.sock"));
  auto start = std::chrono::steady_clock::now();
  EXPECT_THROW(proto::accept_one(listener.get(), in(100ms)), DeadlineExceeded);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 100ms);
}

TEST_F(ProtoTransport, ListenReplacesAStaleSocketButNotALiveOne) {
  {
    UniqueFd first = proto::listen_unix(path("s.sock"));
  }  // closed: the socket file stays behind, as after a crash
  UniqueFd second = proto::listen_unix(path("s.sock"));
  try {
    proto::listen_unix(path("s.sock"));
    ADD_FAILURE() << "a live socket was replaced";
  } catch (const SysError& e) {
    EXPECT_EQ(e.code(), EADDRINUSE);
  }
  // A regular file is not removed.
  write_text(path("file"), "keep");
  EXPECT_THROW(proto::listen_unix(path("file")), SysError);
  EXPECT_TRUE(std::filesystem::exists(path("file")));
}

TEST_F(ProtoTransport, UnixPathTooLong) {
  try {
    proto::listen_unix(path(std::string(200, 'x')));
    ADD_FAILURE() << "no error";
  } catch (const SysError& e) {
    EXPECT_EQ(e.code(), ENAMETOOLONG);
  }
  EXPECT_THROW(proto::connect_unix(path("absent.sock")), SysError);
}

TEST_F(ProtoTransport, HybridVsockHandshakeOk) {
  FakeVmm vmm(path("v.sock"), "OK 1073741824\n", "stream bytes");
  UniqueFd fd = proto::hybrid_vsock_connect(path("v.sock"), 1024, in(5s));
  EXPECT_EQ(vmm.request(), "CONNECT 1024");
  // The reply was read byte by byte: what follows it belongs to the stream.
  EXPECT_EQ(read_some(fd.get(), 12), "stream bytes");
  EXPECT_EQ(vmm.error(), "");
}

TEST_F(ProtoTransport, HybridVsockRefusalReply) {
  FakeVmm vmm(path("v.sock"), "ERR no listener\n");
  auto msg = error_of([&] { proto::hybrid_vsock_connect(path("v.sock"), 52, in(5s)); });
  EXPECT_NE(msg.find("port 52': refused, the VMM replied 'ERR no listener' (expected 'OK <port>')"),
            std::string::npos)
      << msg;
  EXPECT_EQ(vmm.request(), "CONNECT 52");
}

TEST_F(ProtoTransport, HybridVsockMalformedOkReply) {
  FakeVmm vmm(path("v.sock"), "OK x\n");
  EXPECT_THROW(proto::hybrid_vsock_connect(path("v.sock"), 1, in(5s)), ProtocolError);
}

TEST_F(ProtoTransport, HybridVsockVmmClosesWithoutReply) {
  FakeVmm vmm(path("v.sock"), "");  // what Firecracker does when no guest listens on the port
  auto msg = error_of([&] { proto::hybrid_vsock_connect(path("v.sock"), 1024, in(5s)); });
  EXPECT_NE(msg.find("the VMM closed the connection"), std::string::npos) << msg;
}

TEST_F(ProtoTransport, HybridVsockReplyTooLong) {
  FakeVmm vmm(path("v.sock"), std::string(100, 'O'));
  auto msg = error_of([&] { proto::hybrid_vsock_connect(path("v.sock"), 1024, in(5s)); });
  EXPECT_NE(msg.find("reply longer than 64 bytes"), std::string::npos) << msg;
}

TEST_F(ProtoTransport, HybridVsockNoReplyBeforeDeadline) {
  FakeVmm vmm(path("v.sock"), "", "", /*hang=*/true);
  EXPECT_THROW(proto::hybrid_vsock_connect(path("v.sock"), 1024, in(150ms)), DeadlineExceeded);
}

TEST_F(ProtoTransport, OpenVirtioPortByName) {
  std::string sys = path("sys"), dev = path("dev");
  benchrun::make_dirs(sys + "/class/virtio-ports/vport0p0");
  benchrun::make_dirs(sys + "/class/virtio-ports/vport0p1");
  benchrun::make_dirs(sys + "/class/virtio-ports/vport0p2");  // no name file
  benchrun::make_dirs(dev);
  write_text(sys + "/class/virtio-ports/vport0p0/name", "org.qemu.guest_agent.0\n");
  write_text(sys + "/class/virtio-ports/vport0p1/name", "benchrun.0\n");
  ASSERT_EQ(::mkfifo((dev + "/vport0p1").c_str(), 0600), 0);
  write_text(dev + "/vport0p0", "");

  UniqueFd fd = proto::open_virtio_port(proto::kVirtioPortName, sys, dev);
  EXPECT_TRUE(::fcntl(fd.get(), F_GETFD) & FD_CLOEXEC);
  EXPECT_EQ((::fcntl(fd.get(), F_GETFL) & O_ACCMODE), O_RDWR);
  // It is the FIFO: what goes in comes out of the same fd.
  ASSERT_EQ(::write(fd.get(), "x", 1), 1);
  EXPECT_EQ(read_some(fd.get(), 1), "x");
}

TEST_F(ProtoTransport, OpenVirtioPortMissing) {
  std::string sys = path("sys"), dev = path("dev");
  benchrun::make_dirs(sys + "/class/virtio-ports/vport0p0");
  benchrun::make_dirs(dev);
  write_text(sys + "/class/virtio-ports/vport0p0/name", "other\n");
  try {
    proto::open_virtio_port("benchrun.0", sys, dev);
    ADD_FAILURE() << "no error";
  } catch (const SysError& e) {
    EXPECT_EQ(e.code(), ENOENT);
    EXPECT_NE(std::string(e.what()).find("find virtio-serial port 'benchrun.0'"), std::string::npos)
        << e.what();
  }
  // Named, but the device node is absent (no devtmpfs on /dev).
  write_text(sys + "/class/virtio-ports/vport0p0/name", "benchrun.0\n");
  try {
    proto::open_virtio_port("benchrun.0", sys, dev);
    ADD_FAILURE() << "no error";
  } catch (const SysError& e) {
    EXPECT_EQ(e.code(), ENOENT);
    EXPECT_EQ(e.path(), dev + "/vport0p0");
  }
  // No virtio-ports class at all (no virtio_console driver).
  EXPECT_THROW(proto::open_virtio_port("benchrun.0", path("nosys"), dev), SysError);
}

TEST_F(ProtoTransport, VsockListenAcceptDeadline) {
  UniqueFd probe(::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!probe) GTEST_SKIP() << "socket(AF_VSOCK): " << std::strerror(errno);
  UniqueFd listener = proto::vsock_listen(test_port());
  EXPECT_THROW(proto::accept_one(listener.get(), in(100ms)), DeadlineExceeded);
}

TEST_F(ProtoTransport, VsockLoopbackConnect) {
  std::string why = vsock_loopback_unavailable();
  if (!why.empty()) GTEST_SKIP() << why;
  uint32_t port = test_port() + 1;
  UniqueFd listener = proto::vsock_listen(port);
  UniqueFd client = proto::vsock_connect(VMADDR_CID_LOCAL, port, in(5s));
  UniqueFd server = proto::accept_one(listener.get(), in(5s));
  proto::Channel host(std::move(server), UINT64_MAX, "guest");
  proto::Channel guest(std::move(client), UINT64_MAX, "host");
  guest.send(proto::encode_stdout("via vsock"));
  EXPECT_EQ(host.recv(in(5s)).payload, "via vsock");
}
