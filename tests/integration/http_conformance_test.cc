// Integration: what a proxy must never let through, found by black-box fuzzing.
// Malformed upstream answers are failures (retried, replaced by the ladder),
// never relayed; answers without a body never carry one; bad request framing
// and bad Host headers are refused before anything reaches the upstream; a
// client that half-closes after its requests is answered in order.
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace airbag::testing {
namespace {

using ::testing::HasSubstr;

constexpr char kConfig[] = R"(
listen:
  address: ${LISTEN}
  workers: 1
  limits: { header_timeout: 2s, idle_timeout: 5s }
admin: { address: ${ADMIN} }
log: { level: warn, access_log: off }
upstreams:
  raw: { url: ${RAW} }
  model: { url: ${MODEL} }
routes:
  - name: model
    match: { path: /echo }
    upstream: model
  - name: with-default
    match: { path_prefix: /fb }
    upstream: raw
    fallback:
      - respond: { status: 200, json: { answered_by: default } }
  - name: plain
    match: { path_prefix: /p }
    upstream: raw
)";

class HttpConformanceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    raw_ = std::make_unique<ScriptedServer>(std::vector<Step>{});
    auto demo = DemoServer::start();
    ASSERT_TRUE(demo.ok()) << demo.status();
    demo_ = std::move(*demo);
    auto airbag = AirbagProcess::start(kConfig, {{"RAW", raw_->url()}, {"MODEL", demo_->url()}});
    ASSERT_TRUE(airbag.ok()) << airbag.status();
    airbag_ = std::move(*airbag);
  }

  // The upstream answers every request with `answer`, then closes.
  void upstreamAnswers(std::string answer) {
    raw_->setScript({readRequest(), write(std::move(answer)), closeConnection()});
  }

  HttpClient connect() {
    HttpClient c;
    absl::Status s = c.connect(airbag_->port());
    EXPECT_TRUE(s.ok()) << s;
    return c;
  }

  std::unique_ptr<ScriptedServer> raw_;
  std::unique_ptr<DemoServer> demo_;
  std::unique_ptr<AirbagProcess> airbag_;
};

// Finding 1: a client that sends a request and leaves at once, while the
// upstream connection is still being made, must not leave a freed connection
// for the next request of the worker.
TEST_F(HttpConformanceTest, ClientsThatLeaveAtOnceDoNotBreakTheNextRequest) {
  for (int i = 0; i < 30; ++i) {
    {
      HttpClient gone = connect();
      ASSERT_TRUE(gone.sendRaw("GET /echo HTTP/1.1\r\nHost: x\r\n\r\n").ok());
      gone.closeAbruptly();
    }
    HttpClient next = connect();
    ASSERT_TRUE(
        next.sendRaw("GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok());
    Response r = next.readResponse(milliseconds(5000));
    ASSERT_EQ(r.status, 200) << "round " << i << ": " << r.error;
    EXPECT_TRUE(r.complete);
  }
  EXPECT_TRUE(airbag_->process().running());
}

// Finding 2: a status line llhttp reads but HTTP does not allow.
TEST_F(HttpConformanceTest, MalformedStatusLineIsAnUpstreamFailureNeverRelayed) {
  for (std::string bad : {"HTTP/1.1 20 X\r\nContent-Length: 5\r\n\r\nhello", "HTTP/1.1 50\r\n\r\n",
                          "HTTP/1.1 600 X\r\nContent-Length: 5\r\n\r\nhello"}) {
    upstreamAnswers(bad);
    Response fb = airbag_->fetch("GET", "/fb");
    EXPECT_EQ(fb.status, 200) << bad;
    EXPECT_EQ(fb.header("x-airbag-source"), "default") << bad;
    EXPECT_EQ(fb.json()["answered_by"], "default") << bad;

    Response plain = airbag_->fetch("GET", "/p");
    EXPECT_EQ(plain.status, 503) << bad;
    EXPECT_EQ(plain.header("x-airbag-source"), "none") << bad;
    EXPECT_EQ(plain.json()["error"]["code"], "upstream_unavailable") << bad;
    EXPECT_EQ(plain.body.find("hello"), std::string::npos) << bad;
  }
  EXPECT_EQ(airbag_->metric(
                R"(airbag_upstream_attempts_total{route="plain",upstream="raw",outcome="reset"})"),
            3);
}

// Finding 5: a header name with a space (or any byte outside tchar).
TEST_F(HttpConformanceTest, InvalidAnswerHeaderNameIsAnUpstreamFailure) {
  upstreamAnswers("HTTP/1.1 200 OK\r\nBad Name: v\r\nContent-Length: 2\r\n\r\nok");
  Response fb = airbag_->fetch("GET", "/fb");
  EXPECT_EQ(fb.status, 200);
  EXPECT_EQ(fb.header("x-airbag-source"), "default");
  EXPECT_FALSE(fb.headers.has("bad name"));
  Response plain = airbag_->fetch("GET", "/p");
  EXPECT_EQ(plain.status, 503);
  EXPECT_FALSE(plain.headers.has("bad name"));
}

// Finding 3: 204 and 304 end with their head, whatever length they claim.
TEST_F(HttpConformanceTest, NoContentAndNotModifiedReachTheClientWithoutABody) {
  HttpClient c = connect();
  for (std::string status : {"204 No Content", "304 Not Modified"}) {
    upstreamAnswers("HTTP/1.1 " + status + "\r\nContent-Length: 8\r\n\r\n12345678");
    ASSERT_TRUE(c.sendRequest("GET", "/p").ok());
    Response r = c.readResponse(milliseconds(5000));
    ASSERT_EQ(r.status, std::stoi(status)) << r.error;
    EXPECT_EQ(r.body, "");
    if (r.status == 204) {
      EXPECT_FALSE(r.headers.has("content-length"));
    }
    EXPECT_EQ(r.header("x-airbag-source"), "upstream");
    // The same connection goes on in step: the next answer is the next request's.
    upstreamAnswers("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext");
    ASSERT_TRUE(c.sendRequest("GET", "/p").ok());
    Response next = c.readResponse(milliseconds(5000));
    ASSERT_EQ(next.status, 200) << next.error;
    EXPECT_EQ(next.body, "next");
    EXPECT_TRUE(c.buffered().empty()) << "bytes no request asked for: " << c.buffered();
  }
}

// Finding 4: HEAD answered by airbag itself.
TEST_F(HttpConformanceTest, HeadAnsweredLocallyHasNoBody) {
  upstreamAnswers("HTTP/1.1 500 Oops\r\nContent-Length: 4\r\n\r\noops");
  HttpClient c = connect();
  // A local error reply (no route) and a fallback `respond`, on one connection.
  ASSERT_TRUE(c.sendRequest("HEAD", "/nowhere").ok());
  Response none = c.readResponse(milliseconds(5000));
  ASSERT_EQ(none.status, 404) << none.error;
  EXPECT_EQ(none.body, "");
  EXPECT_NE(none.header("content-length"), "0");
  ASSERT_TRUE(c.sendRequest("HEAD", "/fb").ok());
  Response fb = c.readResponse(milliseconds(5000));
  ASSERT_EQ(fb.status, 200) << fb.error;
  EXPECT_EQ(fb.header("x-airbag-source"), "default");
  EXPECT_EQ(fb.body, "");
  EXPECT_EQ(fb.header("content-length"), "25");  // {"answered_by":"default"}
  ASSERT_TRUE(c.sendRequest("GET", "/fb").ok());
  Response get = c.readResponse(milliseconds(5000));
  ASSERT_EQ(get.status, 200) << get.error;
  EXPECT_EQ(get.body, R"({"answered_by":"default"})");
  EXPECT_EQ(get.header("content-length"), "25");
  EXPECT_TRUE(c.buffered().empty()) << c.buffered();
}

// Finding 6: RFC 9112 §3.2.
TEST_F(HttpConformanceTest, BadHostHeadersAre400AndNeverForwarded) {
  upstreamAnswers("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  for (std::string head : {"GET /p HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
                           "GET /p HTTP/1.1\r\n\r\n", "GET /p HTTP/1.1\r\nHost:\r\n\r\n",
                           "GET /p HTTP/1.1\r\nHost: 4 x\r\n\r\n",
                           "GET /p HTTP/1.1\r\nHost: a/b\r\n\r\n",
                           "GET /p HTTP/1.1\r\nHost: a:port\r\n\r\n"}) {
    HttpClient c = connect();
    ASSERT_TRUE(c.sendRaw(head).ok());
    Response r = c.readResponse(milliseconds(5000));
    EXPECT_EQ(r.status, 400) << head;
    EXPECT_EQ(r.json()["error"]["code"], "bad_request") << head;
    EXPECT_EQ(r.header("connection"), "close") << head;
  }
  EXPECT_TRUE(raw_->requests().empty());

  // What does go upstream: one Host, the upstream's own.
  for (std::string head : {"GET /p HTTP/1.1\r\nHost: client.example:8080\r\n\r\n",
                           "GET /p HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", "GET /p HTTP/1.0\r\n\r\n"}) {
    HttpClient c = connect();
    ASSERT_TRUE(c.sendRaw(head).ok());
    Response r = c.readResponse(milliseconds(5000));
    EXPECT_EQ(r.status, 200) << head << r.error;
  }
  std::vector<std::string> seen = raw_->requests();
  ASSERT_EQ(seen.size(), 3u);
  std::string host_line = "\r\nhost: 127.0.0.1:" + std::to_string(raw_->port()) + "\r\n";
  for (const std::string& req : seen) {
    EXPECT_THAT(req, HasSubstr(host_line));
    EXPECT_EQ(req.find("Host:"), std::string::npos) << req;
    EXPECT_EQ(req.find("client.example"), std::string::npos) << req;
  }
}

// Finding 7: lenient chunked framing is a smuggling primitive.
TEST_F(HttpConformanceTest, BadChunkFramingAndUnknownCodingsAreRefused) {
  upstreamAnswers("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  {
    HttpClient c = connect();
    ASSERT_TRUE(c.sendRaw("POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "5\r\nhelloXX0\r\n\r\nGET /p/smuggled HTTP/1.1\r\nHost: x\r\n\r\n")
                    .ok());
    Response r = c.readResponse(milliseconds(5000));
    EXPECT_EQ(r.status, 400);
    EXPECT_EQ(r.header("connection"), "close");
    EXPECT_TRUE(c.waitForPeerClose(milliseconds(5000)));
  }
  {
    HttpClient c = connect();
    ASSERT_TRUE(c.sendRaw("POST /p HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                          "5\r\nhello\r\n0\r\n\r\n")
                    .ok());
    Response r = c.readResponse(milliseconds(5000));
    EXPECT_EQ(r.status, 501);
    EXPECT_EQ(r.json()["error"]["code"], "unsupported_transfer_coding");
  }
  EXPECT_TRUE(raw_->requests().empty()) << raw_->requests().front();
}

// Finding 8: the complete request is answered first, then the rest gets its 400.
TEST_F(HttpConformanceTest, HalfCloseAfterARequestAndStrayBytesAnswersBothInOrder) {
  upstreamAnswers("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  HttpClient c = connect();
  ASSERT_TRUE(c.sendRaw("GET /p HTTP/1.1\r\nHost: x\r\n\r\nG").ok());
  c.shutdownWrite();
  Response first = c.readResponse(milliseconds(5000));
  ASSERT_EQ(first.status, 200) << first.error;
  EXPECT_EQ(first.body, "ok");
  Response second = c.readResponse(milliseconds(5000));
  EXPECT_EQ(second.status, 400) << second.error;
  EXPECT_EQ(second.header("connection"), "close");
  EXPECT_TRUE(c.waitForPeerClose(milliseconds(5000)));
}

TEST_F(HttpConformanceTest, HalfCloseAfterExpectContinueAndAPartialRequest) {
  upstreamAnswers("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  HttpClient c = connect();
  ASSERT_TRUE(c.sendRaw("POST /p HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                        "Content-Length: 2\r\n\r\nhiGET /p HTTP/1.1\r\nHo")
                  .ok());
  c.shutdownWrite();
  Response first = c.readResponse(milliseconds(5000));  // skips the 100 Continue
  ASSERT_EQ(first.status, 200) << first.error;
  EXPECT_EQ(first.body, "ok");
  Response second = c.readResponse(milliseconds(5000));
  EXPECT_EQ(second.status, 400) << second.error;
  EXPECT_TRUE(c.waitForPeerClose(milliseconds(5000)));
}

TEST_F(HttpConformanceTest, PipelinedRequestsThenHalfCloseAreAllAnswered) {
  upstreamAnswers("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  HttpClient c = connect();
  ASSERT_TRUE(c.sendRaw("GET /p HTTP/1.1\r\nHost: x\r\n\r\nGET /p HTTP/1.1\r\nHost: x\r\n\r\n"
                        "GET /p HTTP/1.1\r\nHost: x\r\n\r\n")
                  .ok());
  c.shutdownWrite();
  for (int i = 0; i < 3; ++i) {
    Response r = c.readResponse(milliseconds(5000));
    ASSERT_EQ(r.status, 200) << i << ": " << r.error;
  }
  EXPECT_TRUE(c.waitForPeerClose(milliseconds(5000)));
  EXPECT_TRUE(c.buffered().empty()) << c.buffered();
}

}  // namespace
}  // namespace airbag::testing
