// Integration: a drain (POST /drain or SIGTERM) refuses new connections at once
// instead of letting the kernel queue them, while streams already running
// finish and idle keep-alive connections are closed.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace airbag::testing {
namespace {

using ::testing::HasSubstr;

constexpr char kConfig[] = R"(
listen: { address: ${LISTEN}, workers: 2 }
admin: { address: ${ADMIN} }
log: { level: info, access_log: off }
upstreams:
  model: { url: ${MODEL} }
routes:
  - name: chat
    match: { path: /v1/chat/completions, methods: [POST] }
    upstream: model
    timeout: { total: 30s, first_byte: 5s, idle: 5s }
  - name: predict
    match: { path: /predict, methods: [POST] }
    upstream: model
)";

constexpr char kStreamBody[] =
    R"({"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]})";

// connect() to 127.0.0.1:port with a blocking socket; returns 0 on success or the errno.
// Loopback answers a SYN at once (SYN-ACK or RST), so this never waits long.
int connectErrno(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  timeval tv{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa));
  int err = rc == 0 ? 0 : errno;
  ::close(fd);
  return err;
}

class DrainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto demo = DemoServer::start();
    ASSERT_TRUE(demo.ok()) << demo.status();
    demo_ = std::move(*demo);
    // A stream of 30 events 50 ms apart: about 1.5 s, long enough to drain in the middle of it.
    ASSERT_TRUE(demo_->setBehavior({{"stream_events", 30}, {"stream_interval_ms", 50}}).ok());
    auto airbag = AirbagProcess::start(kConfig, {{"MODEL", demo_->url()}});
    ASSERT_TRUE(airbag.ok()) << airbag.status();
    airbag_ = std::move(*airbag);
  }

  // Starts a stream on `c` and waits for its first event.
  void startStream(HttpClient& c) {
    ASSERT_TRUE(c.connect(airbag_->port()).ok());
    ASSERT_TRUE(c.sendRequest("POST", "/v1/chat/completions",
                              {{"content-type", "application/json"}}, kStreamBody)
                    .ok());
    Response head = c.readHead(milliseconds(5000));
    ASSERT_EQ(head.status, 200) << head.error;
    ASSERT_THAT(head.header("content-type"), HasSubstr("text/event-stream"));
    ASSERT_THAT(c.readUntil("data:", milliseconds(5000)), HasSubstr("data:"));
  }

  // Reads the rest of the stream started by startStream(); it must end properly with [DONE].
  void expectStreamCompletes(HttpClient& c) {
    std::string rest = c.readUntil("data: [DONE]", milliseconds(10000));
    EXPECT_THAT(rest, HasSubstr("data: [DONE]"));
    // The chunked framing ends properly, then the connection closes: no keep-alive while draining.
    EXPECT_TRUE(pollUntil(
        [&] {
          c.readSome(milliseconds(100));
          return c.bodyEnded();
        },
        milliseconds(5000)));
    EXPECT_TRUE(c.bodyComplete()) << c.bodyError();
    EXPECT_TRUE(c.waitForPeerClose(milliseconds(3000)));
  }

  std::unique_ptr<DemoServer> demo_;
  std::unique_ptr<AirbagProcess> airbag_;
};

TEST_F(DrainTest, PostDrainRefusesNewConnectionsWhileAStreamFinishes) {
  ASSERT_EQ(connectErrno(airbag_->port()), 0);  // accepting before
  HttpClient idle;
  ASSERT_TRUE(idle.connect(airbag_->port()).ok());
  ASSERT_EQ(idle.request("POST", "/predict", {}, "{}").status, 200);  // now idle, kept alive
  HttpClient stream;
  startStream(stream);

  Response d = airbag_->admin("POST", "/drain");
  ASSERT_EQ(d.status, 200) << d.body;
  // Once POST /drain has answered, a connect is refused outright: not accepted into a backlog
  // nobody reads (a client would hang there until the process exits).
  EXPECT_EQ(connectErrno(airbag_->port()), ECONNREFUSED);
  Response ready = airbag_->admin("GET", "/readyz");
  EXPECT_EQ(ready.status, 503);
  EXPECT_THAT(ready.body, HasSubstr("draining"));
  // The idle keep-alive connection is closed; the running stream is not.
  EXPECT_TRUE(idle.waitForPeerClose(milliseconds(3000)));
  EXPECT_FALSE(stream.bodyEnded());
  expectStreamCompletes(stream);
  // Still refusing afterwards, and the admin port still serves.
  EXPECT_EQ(connectErrno(airbag_->port()), ECONNREFUSED);
  EXPECT_EQ(airbag_->admin("GET", "/healthz").status, 200);
  EXPECT_TRUE(airbag_->process().running());
}

TEST_F(DrainTest, SigtermRefusesNewConnectionsFinishesTheStreamThenExitsZero) {
  HttpClient stream;
  startStream(stream);
  ASSERT_TRUE(airbag_->process().signal(SIGTERM).ok());
  // The signal is handled asynchronously; the refusal must come quickly, while the stream (over
  // a second long) still runs.
  EXPECT_TRUE(pollUntil([&] { return connectErrno(airbag_->port()) == ECONNREFUSED; },
                        milliseconds(1000), milliseconds(2)));
  EXPECT_FALSE(stream.bodyEnded());
  Response ready = airbag_->admin("GET", "/readyz");
  EXPECT_EQ(ready.status, 503);
  EXPECT_THAT(ready.body, HasSubstr("draining"));
  expectStreamCompletes(stream);
  auto exit = airbag_->process().waitExit(milliseconds(5000));
  ASSERT_TRUE(exit.has_value());
  EXPECT_TRUE(exit->success()) << exit->toString();
}

TEST_F(DrainTest, ABusyRequestIsAnsweredWithConnectionClose) {
  ASSERT_TRUE(demo_->setBehavior({{"latency_ms", 500}}).ok());
  HttpClient c;
  ASSERT_TRUE(c.connect(airbag_->port()).ok());
  ASSERT_TRUE(c.sendRequest("POST", "/predict", {}, "{}").ok());
  ASSERT_TRUE(pollUntil([&] { return demo_->stat("in_flight").value_or(0) == 1; },
                        milliseconds(3000)));
  ASSERT_EQ(airbag_->admin("POST", "/drain").status, 200);
  Response r = c.readResponse(milliseconds(5000));
  EXPECT_EQ(r.status, 200) << r.error;
  EXPECT_TRUE(r.complete);
  EXPECT_EQ(r.header("connection"), "close");
  EXPECT_TRUE(c.waitForPeerClose(milliseconds(3000)));
}

}  // namespace
}  // namespace airbag::testing
