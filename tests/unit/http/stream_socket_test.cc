// Tests for StreamSocket on a real event loop: write-first sends, a partial
// send queued and drained with the write event armed only meanwhile, reads,
// connect, errors reported from the loop, and silence after stop().
#include "proxy/http/stream_socket.h"
#include "tests/unit/http/socket_test_util.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace airbag::http {
namespace {

using testing::EventBasePtr;
using testing::pattern;

class Recorder : public StreamSocket::Listener {
 public:
  void onReadable() override {
    ++readable;
    if (on_readable) on_readable();
  }
  void onFlushed() override { ++flushed; }
  void onWriteError(int error) override {
    write_error = error;
    EXPECT_FALSE(inside_call) << "a write error must be reported from the loop";
  }
  void onConnected(int error) override {
    connected = true;
    connect_error = error;
  }

  std::function<void()> on_readable;
  int readable = 0;
  int flushed = 0;
  int write_error = 0;
  bool connected = false;
  int connect_error = 0;
  bool inside_call = false;
};

class StreamSocketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_.reset(event_base_new());
    ASSERT_TRUE(base_);
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    mine_ = sv[0];
    peer_ = sv[1];
  }
  void TearDown() override {
    sock_.reset();
    if (peer_ >= 0) ::close(peer_);
  }

  // Makes the socket under test on our end of the pair; a small send buffer
  // makes large writes partial.
  StreamSocket& adopt(bool small_send_buffer = false) {
    int small = 4096;
    if (small_send_buffer)
      EXPECT_EQ(::setsockopt(mine_, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
    sock_ = std::make_unique<StreamSocket>(base_.get(), &rec_);
    EXPECT_TRUE(sock_->adopt(mine_));
    return *sock_;
  }

  // Runs loop passes until `done` (true) or the bound passes (false).
  bool runUntil(const std::function<bool()>& done) { return testing::runUntil(base_.get(), done); }

  // Whatever the peer can read right now.
  std::string peerRead() {
    std::string out;
    char buf[65536];
    while (true) {
      ssize_t n = ::recv(peer_, buf, sizeof(buf), MSG_DONTWAIT);
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }

  // Runs the loop until `s` has sent everything, reading as the peer; returns
  // what the peer got, or "(timed out)".
  std::string drain(StreamSocket& s) {
    std::string got;
    if (!runUntil([&] {
          got += peerRead();
          return s.pending() == 0;
        }))
      return "(timed out)";
    return got + peerRead();
  }

  EventBasePtr base_;
  Recorder rec_;
  std::unique_ptr<StreamSocket> sock_;
  int mine_ = -1;
  int peer_ = -1;
};

TEST_F(StreamSocketTest, WriteFirstSendsEveryPartAtOnceAndArmsNothing) {
  StreamSocket& s = adopt();
  s.write({"HTTP/1.1 200 OK\r\n", "content-length: 2\r\n\r\n", "ok"});
  EXPECT_EQ(s.pending(), 0u);
  EXPECT_FALSE(s.writeArmed());
  EXPECT_EQ(peerRead(), "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
}

TEST_F(StreamSocketTest, PartialSendIsQueuedThenDrainedAndTheWriteEventDisarmed) {
  StreamSocket& s = adopt(/*small_send_buffer=*/true);
  std::string head = "head:";
  std::string body = pattern(1 << 20, 'a');
  s.write({head, body});
  ASSERT_GT(s.pending(), 0u) << "the kernel took 1 MiB at once; the test needs a partial send";
  EXPECT_TRUE(s.writeArmed());
  // Written while the queue is not empty: goes after it, not straight out.
  std::string tail = pattern(100, 'K');
  s.write({tail});
  std::string got = drain(s);
  EXPECT_FALSE(s.writeArmed());
  EXPECT_GE(rec_.flushed, 1);
  EXPECT_EQ(got.size(), head.size() + body.size() + tail.size());
  EXPECT_TRUE(got == head + body + tail);
  // Drained: the next write goes straight out again.
  s.write({"more"});
  EXPECT_EQ(s.pending(), 0u);
  EXPECT_FALSE(s.writeArmed());
  EXPECT_EQ(peerRead(), "more");
}

TEST_F(StreamSocketTest, BorrowedBytesAreSentWithoutACopyAndKeepTheirOrder) {
  StreamSocket& s = adopt(/*small_send_buffer=*/true);
  std::string body = pattern(512 * 1024, 'b');
  s.write({"H:", body}, StreamSocket::Keep::kBorrow);
  ASSERT_GT(s.pending(), 0u);
  s.write({":T"});  // copied, after the borrowed bytes
  std::string got = drain(s);
  EXPECT_TRUE(got == "H:" + body + ":T");
}

TEST_F(StreamSocketTest, ReadsWhatArrivesAndTheEndOfTheStream) {
  StreamSocket& s = adopt();
  char buf[16];
  EXPECT_EQ(s.read(buf, sizeof(buf)), StreamSocket::kWouldBlock);
  s.setReading(true);
  std::string got;
  bool eof = false;
  rec_.on_readable = [&] {
    ssize_t n = s.read(buf, sizeof(buf));
    if (n > 0) got.append(buf, static_cast<size_t>(n));
    if (n == 0) {
      eof = true;
      s.setReading(false);
    }
  };
  std::string sent = pattern(100, 'r');  // more than one read's worth
  ASSERT_EQ(::send(peer_, sent.data(), sent.size(), 0), static_cast<ssize_t>(sent.size()));
  ::shutdown(peer_, SHUT_WR);
  ASSERT_TRUE(runUntil([&] { return eof; }));
  EXPECT_EQ(got, sent);
  EXPECT_FALSE(s.reading());
}

TEST_F(StreamSocketTest, ReadingOffMeansNoReadableCallback) {
  StreamSocket& s = adopt(/*small_send_buffer=*/true);
  s.setReading(true);
  s.setReading(false);
  ASSERT_EQ(::send(peer_, "x", 1, 0), 1);
  // A write that must queue gives the loop something to finish on.
  std::string big = pattern(256 * 1024, 'w');
  s.write({big});
  ASSERT_EQ(drain(s).size(), big.size());
  EXPECT_EQ(rec_.readable, 0);
  s.setReading(true);
  ASSERT_TRUE(runUntil([&] { return rec_.readable > 0; }));
}

TEST_F(StreamSocketTest, AWriteErrorIsReportedFromTheLoop) {
  StreamSocket& s = adopt();
  ::close(peer_);
  peer_ = -1;
  rec_.inside_call = true;
  s.write({"to nobody"});
  rec_.inside_call = false;
  EXPECT_EQ(rec_.write_error, 0);
  ASSERT_TRUE(runUntil([&] { return rec_.write_error != 0; }));
  EXPECT_EQ(rec_.write_error, EPIPE);
  EXPECT_FALSE(s.writeArmed());
}

TEST_F(StreamSocketTest, StopSilencesEveryEvent) {
  StreamSocket& s = adopt();
  s.setReading(true);
  ::close(peer_);  // readable (EOF) and writable (error) from now on
  peer_ = -1;
  s.write({"x"});
  s.stop();
  int passes = 0;
  ASSERT_TRUE(runUntil([&] { return ++passes > 20; }));
  EXPECT_EQ(rec_.readable, 0);
  EXPECT_EQ(rec_.write_error, 0);
  EXPECT_EQ(rec_.flushed, 0);
}

class StreamSocketConnectTest : public StreamSocketTest {
 protected:
  // A listening loopback socket; its address in `addr_`.
  int listenLoopback() {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    addr_ = {};
    addr_.sin_family = AF_INET;
    addr_.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr_);
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr_), sizeof(addr_)), 0);
    EXPECT_EQ(::listen(fd, 4), 0);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr_), &len);
    return fd;
  }
  sockaddr_in addr_{};
};

TEST_F(StreamSocketConnectTest, OutputWrittenWhileConnectingGoesOutOnceConnected) {
  int lfd = listenLoopback();
  sock_ = std::make_unique<StreamSocket>(base_.get(), &rec_);
  ASSERT_TRUE(sock_->connect(reinterpret_cast<sockaddr*>(&addr_), sizeof(addr_), absl::Seconds(5)));
  EXPECT_TRUE(sock_->connecting());
  sock_->write({"GET / HTTP/1.1\r\n", "\r\n"}, StreamSocket::Keep::kBorrow);
  EXPECT_GT(sock_->pending(), 0u);
  EXPECT_FALSE(rec_.connected) << "connect must report from the loop";
  ASSERT_TRUE(runUntil([&] { return rec_.connected; }));
  EXPECT_EQ(rec_.connect_error, 0);
  EXPECT_FALSE(sock_->connecting());
  EXPECT_EQ(sock_->pending(), 0u);
  EXPECT_FALSE(sock_->writeArmed());
  int accepted = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(accepted, 0);
  char buf[64];
  ssize_t n = ::recv(accepted, buf, sizeof(buf), 0);
  EXPECT_EQ(std::string(buf, n > 0 ? static_cast<size_t>(n) : 0), "GET / HTTP/1.1\r\n\r\n");
  ::close(accepted);
  ::close(lfd);
}

TEST_F(StreamSocketConnectTest, ARefusedConnectIsReportedFromTheLoop) {
  int lfd = listenLoopback();
  ::close(lfd);  // nothing listens on addr_ now
  sock_ = std::make_unique<StreamSocket>(base_.get(), &rec_);
  ASSERT_TRUE(sock_->connect(reinterpret_cast<sockaddr*>(&addr_), sizeof(addr_), absl::Seconds(5)));
  EXPECT_FALSE(rec_.connected);
  ASSERT_TRUE(runUntil([&] { return rec_.connected; }));
  EXPECT_EQ(rec_.connect_error, ECONNREFUSED);
}

}  // namespace
}  // namespace airbag::http
