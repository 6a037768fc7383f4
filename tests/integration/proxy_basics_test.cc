// Integration: routing, header handling, request limits and pipelining of the
// real airbag binary in front of the demo model server.
#include <cmath>
#include <optional>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace airbag::testing {
namespace {

using ::testing::HasSubstr;

constexpr char kConfig[] = R"(
listen:
  address: ${LISTEN}
  workers: 2
  limits: { max_header_bytes: 4KiB, max_body_bytes: 1KiB, header_timeout: 300ms, idle_timeout: 5s }
admin: { address: ${ADMIN} }
log: { level: warn, access_log: off }
upstreams:
  model: { url: ${MODEL} }
routes:
  - name: exact
    match: { path: /echo, methods: [GET, POST] }
    upstream: model
  - name: gold
    match: { path_prefix: /v1/, headers: { x-tenant: gold } }
    upstream: model
  - name: infer
    match: { path_regex: '^/v2/models/[^/]+/infer$', methods: [POST] }
    upstream: model
  - name: openai
    match: { path_prefix: /v1/ }
    upstream: model
  - name: predict
    match: { path: /predict, methods: [POST] }
    upstream: model
)";

class ProxyBasicsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto demo = DemoServer::start();
    ASSERT_TRUE(demo.ok()) << demo.status();
    demo_ = std::move(*demo);
    auto airbag = AirbagProcess::start(kConfig, {{"MODEL", demo_->url()}});
    ASSERT_TRUE(airbag.ok()) << airbag.status();
    airbag_ = std::move(*airbag);
  }

  int64_t demoRequests() {
    auto n = demo_->stat("requests");
    EXPECT_TRUE(n.ok()) << n.status();
    return n.ok() ? *n : -1;
  }

  // The metric sample line's value; a missing sample fails the test (and
  // reads as NaN, which equals nothing).
  double metric(const std::string& sample) {
    std::optional<double> v = airbag_->metric(sample);
    EXPECT_TRUE(v.has_value()) << sample << " is missing from /metrics";
    return v.value_or(std::nan(""));
  }

  std::unique_ptr<DemoServer> demo_;
  std::unique_ptr<AirbagProcess> airbag_;
};

TEST_F(ProxyBasicsTest, RoutesByPathMethodHeaderAndRegex) {
  Response r = airbag_->fetch("GET", "/echo?x=1");
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.json()["path"], "/echo");
  EXPECT_EQ(r.json()["query"], "x=1");
  EXPECT_EQ(r.header("x-airbag-source"), "upstream");
  EXPECT_EQ(r.header("x-airbag-attempts"), "1");

  r = airbag_->fetch("POST", "/v2/models/iris/infer", {}, R"({"id":"r1","inputs":[]})");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.json()["model_name"], "iris");

  r = airbag_->fetch("POST", "/v1/chat/completions", {{"x-tenant", "gold"}},
                     R"({"messages":[{"role":"user","content":"hi"}]})");
  ASSERT_EQ(r.status, 200);
  r = airbag_->fetch("POST", "/v1/chat/completions", {{"x-tenant", "silver"}},
                     R"({"messages":[{"role":"user","content":"hi"}]})");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(metric(R"(airbag_requests_total{route="gold",source="upstream",code="200"})"), 1);
  EXPECT_EQ(metric(R"(airbag_requests_total{route="openai",source="upstream",code="200"})"), 1);
  EXPECT_EQ(metric(R"(airbag_requests_total{route="infer",source="upstream",code="200"})"), 1);
}

TEST_F(ProxyBasicsTest, NoRouteIsA404JsonLocalReplyThatNeverReachesTheModel) {
  int64_t before = demoRequests();
  Response r = airbag_->fetch("GET", "/nowhere");
  ASSERT_EQ(r.status, 404);
  EXPECT_EQ(r.header("content-type"), "application/json");
  EXPECT_EQ(r.json()["error"]["code"], "no_route");
  EXPECT_EQ(r.header("x-airbag-source"), "none");
  // The method is part of the match: GET /predict has no route either.
  r = airbag_->fetch("GET", "/predict");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(demoRequests(), before);
}

TEST_F(ProxyBasicsTest, ForwardsEndToEndHeadersAndDropsHopByHopBothWays) {
  Response r = airbag_->fetch("GET", "/echo",
                              {{"Host", "api.example.test"},
                               {"traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
                               {"x-request-id", "req-123"},
                               {"x-custom", "kept"},
                               {"Connection", "keep-alive, x-secret"},
                               {"x-secret", "only-for-this-hop"},
                               {"Keep-Alive", "timeout=5"},
                               {"TE", "trailers"},
                               {"Upgrade", "websocket"},
                               {"Proxy-Authorization", "Basic Zm9vOmJhcg=="}});
  ASSERT_EQ(r.status, 200) << r.error;
  nlohmann::json h = r.json()["headers"];
  // The upstream is addressed by its own name, whatever Host the client used.
  EXPECT_EQ(h["host"], demo_->address());
  EXPECT_EQ(h["traceparent"], "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  EXPECT_EQ(h["x-request-id"], "req-123");
  EXPECT_EQ(h["x-custom"], "kept");
  for (const char* gone : {"connection", "x-secret", "keep-alive", "te", "upgrade",
                           "proxy-authorization", "transfer-encoding"})
    EXPECT_FALSE(h.contains(gone)) << gone << " was forwarded";
  EXPECT_EQ(r.header("x-request-id"), "req-123");
  // The demo's own Connection header never reaches the client; ours does the framing.
  EXPECT_EQ(r.headers.count("content-length"), 1u);
}

TEST_F(ProxyBasicsTest, GeneratesARequestIdWhenTheClientSentNone) {
  Response r = airbag_->fetch("GET", "/echo");
  ASSERT_EQ(r.status, 200);
  std::string id = r.header("x-request-id");
  EXPECT_EQ(id.size(), 32u);
  EXPECT_EQ(r.json()["headers"]["x-request-id"], id);
  Response r2 = airbag_->fetch("GET", "/echo");
  EXPECT_NE(r2.header("x-request-id"), id);
}

TEST_F(ProxyBasicsTest, OversizedHeadIs431AndOversizedBodyIs413) {
  int64_t before = demoRequests();
  Response r = airbag_->fetch("GET", "/echo", {{"x-big", std::string(5000, 'a')}});
  EXPECT_EQ(r.status, 431);
  EXPECT_EQ(r.json()["error"]["code"], "headers_too_large");

  r = airbag_->fetch("POST", "/predict", {}, std::string(2000, 'b'));
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(r.json()["error"]["code"], "body_too_large");

  // A chunked body is counted as it arrives.
  HttpClient c;
  ASSERT_TRUE(c.connect(airbag_->port()).ok());
  std::string chunk(600, 'c');
  std::string req = "POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 2; ++i) req += "258\r\n" + chunk + "\r\n";
  req += "0\r\n\r\n";
  ASSERT_TRUE(c.sendRaw(req).ok());
  r = c.readResponse();
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(demoRequests(), before);
}

TEST_F(ProxyBasicsTest, ContentLengthWithTransferEncodingIsRefusedAndNeverForwarded) {
  int64_t before = demoRequests();
  HttpClient c;
  ASSERT_TRUE(c.connect(airbag_->port()).ok());
  ASSERT_TRUE(c.sendRaw("POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                        "Transfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n")
                  .ok());
  Response r = c.readResponse();
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.json()["error"]["code"], "bad_request");
  EXPECT_TRUE(c.waitForPeerClose(milliseconds(2000)));

  for (const char* cl : {"abc", "-1", "1, 2"}) {
    HttpClient c2;
    ASSERT_TRUE(c2.connect(airbag_->port()).ok());
    ASSERT_TRUE(c2.sendRaw(std::string("POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: ") +
                           cl + "\r\n\r\nab")
                    .ok());
    Response r2 = c2.readResponse();
    EXPECT_EQ(r2.status, 400) << "Content-Length: " << cl;
  }
  EXPECT_EQ(demoRequests(), before);
}

TEST_F(ProxyBasicsTest, SlowHeaderIsCutAtTheHeaderTimeout) {
  HttpClient c;
  ASSERT_TRUE(c.connect(airbag_->port()).ok());
  Stopwatch sw;
  ASSERT_TRUE(c.sendRaw("GET /echo HTTP/1.1\r\nHost: x\r\n").ok());  // never finished
  Response r = c.readResponse(milliseconds(3000));
  EXPECT_EQ(r.status, 408);
  EXPECT_GE(sw.elapsedMs().count(), 250);
  EXPECT_LT(sw.elapsedMs().count(), 2000);
}

TEST_F(ProxyBasicsTest, PipelinedRequestsAreAnsweredInOrderOnOneConnection) {
  HttpClient c;
  ASSERT_TRUE(c.connect(airbag_->port()).ok());
  std::string all;
  for (int i = 0; i < 5; ++i)
    all += c.formatRequest("GET", "/echo?i=" + std::to_string(i), {}, {});
  ASSERT_TRUE(c.sendRaw(all).ok());
  for (int i = 0; i < 5; ++i) {
    Response r = c.readResponse();
    ASSERT_EQ(r.status, 200) << r.error;
    EXPECT_EQ(r.json()["query"], "i=" + std::to_string(i));
  }
}

TEST_F(ProxyBasicsTest, PipelinedRequestsCutAtEveryByteAreAnsweredInOrder) {
  HttpClient c;
  ASSERT_TRUE(c.connect(airbag_->port()).ok());
  // A chunked body and a Content-Length one, so every parser state sees a cut.
  std::string pair =
      "POST /echo?i=1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n" +
      c.formatRequest("POST", "/echo?i=2", {}, "fghijkl");
  for (size_t cut = 1; cut < pair.size(); ++cut) {
    ASSERT_TRUE(c.sendRaw(pair.substr(0, cut)).ok());
    ASSERT_TRUE(c.sendRaw(pair.substr(cut)).ok());
    for (int i = 1; i <= 2; ++i) {
      Response r = c.readResponse();
      ASSERT_EQ(r.status, 200) << "cut at " << cut << ": " << r.error;
      EXPECT_EQ(r.json()["query"], "i=" + std::to_string(i)) << "cut at " << cut;
      EXPECT_EQ(r.json()["body_length"], i == 1 ? 5 : 7) << "cut at " << cut;
    }
  }
}

TEST_F(ProxyBasicsTest, PipelinedInputBeyondTheReadBoundIsAnsweredInFull) {
  HttpClient c;
  ASSERT_TRUE(c.connect(airbag_->port()).ok());
  // About 1 MiB of requests in one go: reading pauses while a request is
  // answered with more than 256 KiB waiting, and resumes as answers go out.
  constexpr int kRequests = 1000;
  std::string body(1000, 'x');
  std::string all;
  for (int i = 0; i < kRequests; ++i)
    all += c.formatRequest("POST", "/echo?i=" + std::to_string(i), {}, body);
  ASSERT_TRUE(c.sendRaw(all, milliseconds(20000)).ok());
  for (int i = 0; i < kRequests; ++i) {
    Response r = c.readResponse();
    ASSERT_EQ(r.status, 200) << i << ": " << r.error;
    EXPECT_EQ(r.json()["query"], "i=" + std::to_string(i));
    EXPECT_EQ(r.json()["body_length"], 1000);
  }
}

TEST_F(ProxyBasicsTest, KeepAliveReusesUpstreamConnections) {
  HttpClient c;
  ASSERT_TRUE(c.connect(airbag_->port()).ok());
  for (int i = 0; i < 200; ++i) {
    Response r = c.request("POST", "/predict", {}, R"({"amount":1})");
    ASSERT_EQ(r.status, 200) << r.error;
  }
  // One client connection lives on one worker, which needs one upstream connection.
  EXPECT_LE(metric(R"(airbag_upstream_connections_opened_total{upstream="model"})"), 2);
  auto accepted = demo_->stat("connections_accepted");
  ASSERT_TRUE(accepted.ok());
  EXPECT_LE(*accepted, 2);
}

TEST_F(ProxyBasicsTest, AStaleKeepAliveConnectionIsReplacedWithoutFailingTheRequest) {
  Response r = airbag_->fetch("POST", "/predict", {}, "{}");
  ASSERT_EQ(r.status, 200);
  // Restart the model on the same port: every pooled connection is now dead.
  std::string address = demo_->address();
  demo_.reset();
  auto again = Process::spawn({demoServerBinary(), "--listen", address});
  ASSERT_TRUE(again.ok()) << again.status();
  ASSERT_TRUE((*again)->waitForLine("listening on", milliseconds(10000)));
  for (int i = 0; i < 10; ++i) {
    r = airbag_->fetch("POST", "/predict", {}, "{}");
    EXPECT_EQ(r.status, 200) << r.error << r.body;
    EXPECT_EQ(r.header("x-airbag-attempts"), "1");
  }
}

TEST_F(ProxyBasicsTest, ExpectContinueIsAnsweredSoLargeUploadsDoNotStall) {
  std::string body(900, 'x');
  Stopwatch sw;
  Response r = airbag_->fetch("POST", "/echo", {{"Expect", "100-continue"}}, body);
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.json()["body_length"], 900);
  EXPECT_FALSE(r.json()["headers"].contains("expect"));
  EXPECT_LT(sw.elapsedMs().count(), 900);
}

}  // namespace
}  // namespace airbag::testing
