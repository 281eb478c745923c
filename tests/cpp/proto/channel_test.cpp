// channel_test.cpp: Channel over socketpairs and pipes: round trips, deadlines, peer closing,
// the total-bytes cap and flooding peers.
#include "benchrun/proto/channel.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <string>
#include <thread>

#include "benchrun/common/error.hpp"
#include "benchrun/proto/messages.hpp"

namespace proto = benchrun::proto;
using benchrun::DeadlineExceeded;
using benchrun::ProtocolError;
using benchrun::UniqueFd;
using proto::Channel;
using proto::FrameType;
using namespace std::chrono_literals;

namespace {

struct Pair {
  UniqueFd a, b;
};

Pair socket_pair() {
  int fds[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

void write_raw(int fd, const std::string& bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    ASSERT_GT(n, 0);
    done += static_cast<size_t>(n);
  }
}

Channel::Clock::time_point in(std::chrono::milliseconds d) { return Channel::Clock::now() + d; }

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const benchrun::Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no exception";
  return "";
}

}  // namespace

TEST(ProtoChannel, RoundTripsFramesBothWays) {
  auto [a, b] = socket_pair();
  Channel host(std::move(a), UINT64_MAX, "guest");
  Channel guest(std::move(b), UINT64_MAX, "host");
  guest.send(proto::encode_hello({1, "v", "6.1", 5}));
  auto f = host.recv(in(5s), "hello");
  EXPECT_EQ(proto::decode_hello(f).kernel_release, "6.1");
  proto::RunConfig c;
  c.argv = {"/bin/echo", "hi"};
  host.send(proto::encode_run_config(c));
  EXPECT_EQ(proto::decode_run_config(guest.recv(in(5s))).argv, c.argv);
  EXPECT_EQ(host.received_bytes(), proto::encode_hello({1, "v", "6.1", 5}).size());
  EXPECT_TRUE(::fcntl(host.fd(), F_GETFL) & O_NONBLOCK);
}

TEST(ProtoChannel, LargeFramesNeedConcurrentReader) {
  auto [a, b] = socket_pair();
  Channel host(std::move(a));
  Channel guest(std::move(b));
  const std::string big(proto::kMaxPayload, 'B');
  std::thread sender([&] {
    for (int i = 0; i < 4; ++i) guest.send(proto::encode_stdout(big), in(10s));
    guest.send(proto::encode_end(), in(10s));
  });
  for (int i = 0; i < 4; ++i) {
    auto f = host.recv(in(10s));
    EXPECT_EQ(f.type, FrameType::kStdout);
    EXPECT_EQ(f.payload, big);
  }
  EXPECT_EQ(host.recv(in(10s)).type, FrameType::kEnd);
  sender.join();
}

TEST(ProtoChannel, WorksOverPipesWithWrite) {
  // A pipe is not a socket: the channel must fall back to write(), as on a virtio-serial port.
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  Channel reader{UniqueFd(fds[0])};
  Channel writer{UniqueFd(fds[1])};
  writer.send(proto::encode_stderr("over a pipe"));
  writer.send(proto::encode_end());
  EXPECT_EQ(reader.recv(in(5s)).payload, "over a pipe");
  EXPECT_EQ(reader.recv(in(5s)).type, FrameType::kEnd);
}

TEST(ProtoChannel, RecvDeadlineRaisesDeadlineExceeded) {
  auto [a, b] = socket_pair();
  Channel host(std::move(a), UINT64_MAX, "guest");
  auto start = Channel::Clock::now();
  auto msg = message_of([&] {
    try {
      host.recv(in(150ms), "end-of-results");
    } catch (const DeadlineExceeded&) {
      throw;
    } catch (...) {
      ADD_FAILURE() << "not DeadlineExceeded";
    }
  });
  auto took = Channel::Clock::now() - start;
  EXPECT_GE(took, 150ms);
  EXPECT_LT(took, 2s);
  EXPECT_EQ(msg,
            "channel to guest: deadline passed while waiting for end-of-results (0 bytes "
            "received)");
}

TEST(ProtoChannel, DeadlineAlsoCoversAHalfSentFrame) {
  auto [a, b] = socket_pair();
  Channel host(std::move(a));
  std::string f = proto::encode_stdout("0123456789");
  write_raw(b.get(), f.substr(0, 20));
  EXPECT_THROW(host.recv(in(100ms)), DeadlineExceeded);
}

TEST(ProtoChannel, RecvDeadlineKeepsAPartialFrame) {
  // The VM backend waits in 100 ms slices to check for Ctrl-C: a timeout must lose nothing.
  auto [a, b] = socket_pair();
  Channel host(std::move(a));
  std::string f = proto::encode_stdout("0123456789") + proto::encode_end();
  write_raw(b.get(), f.substr(0, 20));
  EXPECT_THROW(host.recv(in(50ms)), DeadlineExceeded);
  write_raw(b.get(), f.substr(20, 4));  // 24 of its 26 bytes
  EXPECT_THROW(host.recv(in(50ms)), DeadlineExceeded);
  write_raw(b.get(), f.substr(24));
  EXPECT_EQ(host.recv(in(5s)).payload, "0123456789");
  EXPECT_EQ(host.recv(in(5s)).type, FrameType::kEnd);
}

TEST(ProtoChannel, SendDeadlineWhenThePeerDoesNotRead) {
  auto [a, b] = socket_pair();
  Channel guest(std::move(a), UINT64_MAX, "host");
  const std::string frame = proto::encode_stdout(std::string(proto::kMaxPayload, 's'));
  auto msg = message_of([&] {
    for (int i = 0; i < 64; ++i) guest.send(frame, in(200ms));
  });
  EXPECT_NE(msg.find("channel to host: deadline passed while sending the stdout frame"),
            std::string::npos)
      << msg;
  // Half a frame went out: the stream is out of sync and the channel refuses to send more.
  ASSERT_EQ(msg.find("(0 of"), std::string::npos) << msg;
  msg = message_of([&] { guest.send(proto::encode_end(), in(5s)); });
  EXPECT_NE(msg.find("out of sync"), std::string::npos) << msg;
}

TEST(ProtoChannel, PeerClosedBeforeAFrame) {
  auto [a, b] = socket_pair();
  Channel host(std::move(a), UINT64_MAX, "guest");
  write_raw(b.get(), proto::encode_stdout("out"));
  b.reset();
  EXPECT_EQ(host.recv(in(5s)).payload, "out");
  auto msg = message_of([&] { host.recv(in(5s), "end-of-results"); });
  EXPECT_EQ(msg,
            "channel to guest: guest closed the channel before end-of-results (19 bytes "
            "received)");
}

TEST(ProtoChannel, PeerClosedMidFrame) {
  auto [a, b] = socket_pair();
  Channel host(std::move(a), UINT64_MAX, "guest");
  write_raw(b.get(), proto::encode_stdout("0123456789").substr(0, 20));
  b.reset();
  auto msg = message_of([&] { host.recv(in(5s), "end-of-results"); });
  EXPECT_EQ(msg,
            "channel to guest: guest closed the channel in the middle of a frame (20 bytes of it "
            "received) while we waited for end-of-results");
}

TEST(ProtoChannel, PeerClosedMidHeader) {
  auto [a, b] = socket_pair();
  Channel host(std::move(a));
  write_raw(b.get(), "BRP1");
  b.reset();
  EXPECT_THROW(host.recv(in(5s)), ProtocolError);
}

TEST(ProtoChannel, MalformedInputIsAProtocolError) {
  auto [a, b] = socket_pair();
  Channel host(std::move(a));
  write_raw(b.get(), std::string(16, 'x'));
  auto msg = message_of([&] { host.recv(in(5s)); });
  EXPECT_NE(msg.find("bad magic"), std::string::npos) << msg;
}

TEST(ProtoChannel, SendToAClosedPeerIsAProtocolErrorNotSigpipe) {
  auto [a, b] = socket_pair();
  Channel guest(std::move(a), UINT64_MAX, "host");
  b.reset();
  auto msg = message_of([&] { guest.send(proto::encode_end(), in(5s)); });
  EXPECT_EQ(msg, "channel to host: host closed the channel while we sent the end frame");
}

TEST(ProtoChannel, MaxTotalExceeded) {
  auto [a, b] = socket_pair();
  const uint64_t cap = 1000;
  Channel host(std::move(a), cap, "guest");
  std::thread flood([fd = b.get()] {
    std::string f = proto::encode_stdout(std::string(100, 'f'));
    for (int i = 0; i < 100; ++i)
      if (::send(fd, f.data(), f.size(), MSG_NOSIGNAL) < 0) break;
  });
  auto msg = message_of([&] {
    for (;;) host.recv(in(5s));
  });
  EXPECT_EQ(msg, "channel to guest: guest sent more than the 1000 bytes allowed over the channel");
  // Noticed at most one byte past the cap: the rest of the flood was never read.
  EXPECT_EQ(host.received_bytes(), cap + 1);
  ::shutdown(host.fd(), SHUT_RDWR);  // a flooder blocked on a full socket gets EPIPE
  flood.join();
}

TEST(ProtoChannel, ExactlyMaxTotalIsAllowed) {
  auto [a, b] = socket_pair();
  std::string f = proto::encode_stdout("12345") + proto::encode_end();
  Channel host(std::move(a), f.size());
  write_raw(b.get(), f);
  EXPECT_EQ(host.recv(in(5s)).type, FrameType::kStdout);
  EXPECT_EQ(host.recv(in(5s)).type, FrameType::kEnd);
}

TEST(ProtoChannel, FloodOfManyValidFramesArrivesInOrder) {
  auto [a, b] = socket_pair();
  Channel host(std::move(a), UINT64_MAX, "guest");
  Channel guest(std::move(b), UINT64_MAX, "host");
  constexpr int kFrames = 100000;
  std::thread sender([&] {
    std::string batch;
    for (int i = 0; i < kFrames; ++i) {
      batch += proto::encode_stdout(std::to_string(i));
      if (batch.size() > 200000) {
        guest.send(batch, in(30s));  // many frames per write, as a fast guest would send
        batch.clear();
      }
    }
    batch += proto::encode_end();
    guest.send(batch, in(30s));
  });
  int n = 0;
  for (;;) {
    auto f = host.recv(in(30s), "end-of-results");
    if (f.type == FrameType::kEnd) break;
    ASSERT_EQ(f.payload, std::to_string(n));
    ++n;
  }
  EXPECT_EQ(n, kFrames);
  sender.join();
}
