// Integration: timeouts (per-try, total, first-byte, idle), streamed answers
// relayed as they arrive, slow-client backpressure, client disconnects and
// mid-stream upstream failures.
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
log: { level: warn, access_log: off }
upstreams:
  model: { url: ${MODEL}, connect_timeout: 200ms }
  nowhere: { url: ${NOWHERE}, connect_timeout: 200ms }
routes:
  - name: per-try
    match: { path: /predict }
    upstream: model
    timeout: { total: 2s, per_try: 300ms }
  - name: total
    match: { path: /v2/models/m/infer }
    upstream: model
    timeout: { total: 400ms }
  - name: patient-stream
    match: { path: /v1/completions }
    upstream: model
    timeout: { total: 1s, idle: 30s }
  - name: stream
    match: { path_prefix: /v1/ }
    upstream: model
    timeout: { total: 1s, first_byte: 300ms, idle: 300ms }
  - name: down
    match: { path: /down }
    upstream: nowhere
)";

class StreamingTimeoutsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto demo = DemoServer::start();
    ASSERT_TRUE(demo.ok()) << demo.status();
    demo_ = std::move(*demo);
    // A port nothing listens on: connections are refused.
    std::string nowhere = "http://127.0.0.1:" + std::to_string(freePort());
    auto airbag = AirbagProcess::start(kConfig, {{"MODEL", demo_->url()}, {"NOWHERE", nowhere}});
    ASSERT_TRUE(airbag.ok()) << airbag.status();
    airbag_ = std::move(*airbag);
  }

  std::string metricsText() {
    auto m = airbag_->metrics();
    return m.ok() ? *m : "";
  }

  std::unique_ptr<DemoServer> demo_;
  std::unique_ptr<AirbagProcess> airbag_;
};

constexpr char kChat[] = R"({"stream":true,"messages":[{"role":"user","content":"one two three four"}]})";

TEST_F(StreamingTimeoutsTest, PerTryTimeoutGives504WithinFiftyMillisecondsOfTheDeadline) {
  ASSERT_TRUE(demo_->setBehavior({{"latency_ms", 2000}}).ok());
  Stopwatch sw;
  Response r = airbag_->fetch("POST", "/predict", {}, "{}");
  auto ms = sw.elapsedMs().count();
  EXPECT_EQ(r.status, 504);
  EXPECT_EQ(r.json()["error"]["code"], "timeout");
  EXPECT_EQ(r.json()["error"]["route"], "per-try");
  EXPECT_GE(ms, 300);
  EXPECT_LT(ms, 350);
  EXPECT_THAT(metricsText(),
              HasSubstr(R"(airbag_upstream_attempts_total{route="per-try",upstream="model",outcome="timeout"} 1)"));
}

TEST_F(StreamingTimeoutsTest, TotalTimeoutGives504InTime) {
  ASSERT_TRUE(demo_->setBehavior({{"latency_ms", 2000}}).ok());
  Stopwatch sw;
  Response r = airbag_->fetch("POST", "/v2/models/m/infer", {}, "{}");
  auto ms = sw.elapsedMs().count();
  EXPECT_EQ(r.status, 504);
  EXPECT_GE(ms, 400);
  EXPECT_LT(ms, 450);
}

TEST_F(StreamingTimeoutsTest, ClientBudgetHeaderLowersTheDeadlineAndIsPassedOn) {
  ASSERT_TRUE(demo_->setBehavior({{"latency_ms", 2000}}).ok());
  Stopwatch sw;
  Response r = airbag_->fetch("POST", "/v2/models/m/infer", {{"x-airbag-timeout-ms", "150"}}, "{}");
  EXPECT_EQ(r.status, 504);
  EXPECT_LT(sw.elapsedMs().count(), 200);
  ASSERT_TRUE(demo_->reset().ok());
  // A budget above the route's total does not raise it; the remaining budget goes upstream.
  r = airbag_->fetch("POST", "/predict", {{"x-airbag-timeout-ms", "60000"}}, "{}");
  ASSERT_EQ(r.status, 200);
}

TEST_F(StreamingTimeoutsTest, RefusedConnectionIs503UpstreamUnavailable) {
  Response r = airbag_->fetch("GET", "/down");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.json()["error"]["code"], "upstream_unavailable");
  EXPECT_THAT(metricsText(),
              HasSubstr(R"(airbag_upstream_attempts_total{route="down",upstream="nowhere",outcome="connect"} 1)"));
}

TEST_F(StreamingTimeoutsTest, SseEventsReachTheClientBeforeTheUpstreamHasFinished) {
  ASSERT_TRUE(demo_->setBehavior({{"stream_events", 6}, {"stream_interval_ms", 150}}).ok());
  HttpClient c;
  ASSERT_TRUE(c.connect(airbag_->port()).ok());
  Stopwatch sw;
  ASSERT_TRUE(c.sendRequest("POST", "/v1/chat/completions", {}, kChat).ok());
  Response head = c.readHead(milliseconds(3000));
  ASSERT_EQ(head.status, 200);
  EXPECT_EQ(head.header("content-type"), "text/event-stream");
  EXPECT_EQ(head.header("x-airbag-source"), "upstream");
  std::string first = c.readUntil("\n\n", milliseconds(3000));
  EXPECT_THAT(first, HasSubstr("data: {"));
  auto first_ms = sw.elapsedMs().count();
  // The upstream needs >= 750 ms for the whole stream; the first event came long before.
  EXPECT_LT(first_ms, 400);
  auto streams_completed = demo_->stat("streams_completed");
  ASSERT_TRUE(streams_completed.ok());
  EXPECT_EQ(*streams_completed, 0);
  Response rest = head;
  c.readRest(rest, milliseconds(5000));
  EXPECT_TRUE(rest.complete) << rest.error;
  EXPECT_THAT(first + rest.body, HasSubstr("data: [DONE]"));
  EXPECT_GE(sw.elapsedMs().count(), 750);
}

TEST_F(StreamingTimeoutsTest, NdjsonIsRelayedChunkByChunk) {
  ASSERT_TRUE(demo_->setBehavior({{"stream_events", 4}, {"stream_interval_ms", 150}}).ok());
  HttpClient c;
  ASSERT_TRUE(c.connect(airbag_->port()).ok());
  ASSERT_TRUE(c.sendRequest("POST", "/v1/stream-ndjson", {}, R"({"prompt":"a b c d"})").ok());
  Response head = c.readHead(milliseconds(3000));
  ASSERT_EQ(head.status, 200);
  Stopwatch sw;
  std::string line = c.readUntil("\n", milliseconds(3000));
  EXPECT_THAT(line, HasSubstr(R"("index":0)"));
  EXPECT_LT(sw.elapsedMs().count(), 300);
  c.readRest(head, milliseconds(5000));
  EXPECT_TRUE(head.complete);
}

TEST_F(StreamingTimeoutsTest, MidStreamUpstreamFailureIsVisibleToTheClient) {
  ASSERT_TRUE(demo_->setBehavior({{"stream_events", 10}, {"abort_after_events", 3}}).ok());
  Response r = airbag_->fetch("POST", "/v1/chat/completions", {}, kChat);
  EXPECT_EQ(r.status, 200);
  EXPECT_FALSE(r.complete) << "a cut stream must not look complete";
  EXPECT_THAT(r.body, HasSubstr("event: error"));
  EXPECT_THAT(r.body, ::testing::Not(HasSubstr("[DONE]")));
  EXPECT_THAT(metricsText(),
              HasSubstr(R"(airbag_upstream_attempts_total{route="stream",upstream="model",outcome="reset"} 1)"));
}

TEST_F(StreamingTimeoutsTest, StalledStreamIsCutAtTheIdleTimeout) {
  ASSERT_TRUE(demo_->setBehavior({{"stream_events", 10}, {"stall_after_events", 2}}).ok());
  Stopwatch sw;
  Response r = airbag_->fetch("POST", "/v1/chat/completions", {}, kChat, milliseconds(5000));
  EXPECT_EQ(r.status, 200);
  EXPECT_FALSE(r.complete);
  EXPECT_LT(sw.elapsedMs().count(), 1500);
  // The upstream call is cancelled, not left hanging.
  EXPECT_TRUE(pollUntil([&] { return demo_->stat("cancelled").value_or(0) == 1; },
                        milliseconds(3000)));
}

TEST_F(StreamingTimeoutsTest, FirstByteTimeoutAppliesBeforeAnyEvent) {
  ASSERT_TRUE(demo_->setBehavior({{"latency_ms", 1000}}).ok());
  Stopwatch sw;
  Response r = airbag_->fetch("POST", "/v1/chat/completions", {}, kChat);
  EXPECT_EQ(r.status, 504);
  // Timers have millisecond granularity; the deadline counts from when airbag read the request.
  EXPECT_GE(sw.elapsedMs().count(), 295);
  EXPECT_LT(sw.elapsedMs().count(), 350);
}

TEST_F(StreamingTimeoutsTest, ClientDisconnectCancelsTheUpstreamCallAtOnce) {
  ASSERT_TRUE(demo_->setBehavior({{"latency_ms", 5000}}).ok());
  HttpClient c;
  ASSERT_TRUE(c.connect(airbag_->port()).ok());
  ASSERT_TRUE(c.sendRequest("POST", "/predict", {}, "{}").ok());
  ASSERT_TRUE(pollUntil([&] { return demo_->stat("in_flight").value_or(0) == 1; },
                        milliseconds(3000)));
  Stopwatch sw;
  c.closeAbruptly();
  ASSERT_TRUE(pollUntil([&] { return demo_->stat("cancelled").value_or(0) == 1; },
                        milliseconds(3000)));
  EXPECT_LT(sw.elapsedMs().count(), 500);
  EXPECT_THAT(metricsText(), HasSubstr(R"(airbag_requests_total{route="per-try",source="none",code="499"} 1)"));
}

TEST_F(StreamingTimeoutsTest, ClientLeavingMidStreamCancelsTheStream) {
  ASSERT_TRUE(demo_->setBehavior({{"stream_events", 100}, {"stream_interval_ms", 20}}).ok());
  HttpClient c;
  ASSERT_TRUE(c.connect(airbag_->port()).ok());
  ASSERT_TRUE(c.sendRequest("POST", "/v1/chat/completions", {}, kChat).ok());
  ASSERT_EQ(c.readHead(milliseconds(3000)).status, 200);
  ASSERT_FALSE(c.readSome(milliseconds(3000)).empty());
  c.close();
  ASSERT_TRUE(pollUntil([&] { return demo_->stat("cancelled").value_or(0) == 1; },
                        milliseconds(3000)));
  EXPECT_EQ(demo_->stat("streams_completed").value_or(-1), 0);
}

TEST_F(StreamingTimeoutsTest, SlowClientPausesTheUpstreamInsteadOfBufferingWithoutLimit) {
  // 20,000 events of ~8 KiB (~160 MiB) with no pause between them.
  ASSERT_TRUE(demo_->setBehavior({{"stream_events", 20000},
                                  {"stream_interval_ms", 0},
                                  {"stream_event_bytes", 8192}})
                  .ok());
  HttpClient c;
  HttpClient::ConnectOptions o;
  o.receive_buffer_bytes = 64 * 1024;
  ASSERT_TRUE(c.connect(airbag_->port(), o).ok());
  ASSERT_TRUE(c.sendRequest("POST", "/v1/completions", {}, R"({"stream":true,"prompt":"x"})").ok());
  ASSERT_EQ(c.readHead(milliseconds(3000)).status, 200);
  // Stop reading. The upstream must come to a standstill well short of the whole stream.
  auto bytes_sent = [&] { return demo_->stat("stream_bytes_sent").value_or(0); };
  std::optional<int64_t> stalled = waitForStandstill(bytes_sent, milliseconds(5000));
  ASSERT_TRUE(stalled.has_value()) << "the stream never came to a standstill";
  const int64_t last = *stalled;
  EXPECT_LT(last, 32 * 1024 * 1024) << "the proxy kept reading for a client that does not read";
  // Reading again resumes the stream (once the socket buffers between have drained).
  EXPECT_TRUE(readUntilCounterPasses(c, bytes_sent, last, milliseconds(10000)));
}

}  // namespace
}  // namespace airbag::testing
