// Integration: retries with backoff and a budget, the circuit breaker, the
// bulkhead, load shedding and the admin override, on the real binary in
// front of a misbehaving demo model server.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <string>
#include <thread>
#include <vector>

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
routes:
  - name: flaky
    match: { path: /predict }
    upstream: model
    retry:
      attempts: 5
      on: [5xx]
      backoff: { base: 1ms, max: 4ms }
      budget: { ratio: 100%, min_per_second: 100 }
  - name: guarded
    match: { path: /v2/models/m/infer }
    upstream: model
    circuit_breaker:
      consecutive_failures: 5
      minimum_calls: 1000
      open_for: 500ms
      max_open_for: 2s
      half_open_calls: 3
  - name: outage
    match: { path: /v1/completions }
    upstream: model
    retry:
      attempts: 3
      backoff: { base: 1ms, max: 2ms }
      budget: { ratio: 0.2, min_per_second: 10 }
  - name: polite
    match: { path: /v1/embeddings }
    upstream: model
    timeout: { total: 5s }
    retry:
      attempts: 2
      on: [retriable-status]
      retriable_status: [503]
      honor_retry_after: true
      backoff: { base: 1ms, max: 1ms }
  - name: hurried
    match: { path: /v1/chat/completions }
    upstream: model
    timeout: { total: 500ms }
    retry: { attempts: 2, on: [retriable-status], retriable_status: [503] }
  - name: bulkhead
    match: { path: /echo }
    upstream: model
    bulkhead: { max_in_flight: 4, max_queue: 4, queue_timeout: 300ms }
)";

// A sample's value; a missing sample fails the test (and reads as NaN, which
// equals nothing).
double metricValue(const std::string& text, const std::string& sample) {
  std::optional<double> v = metricSample(text, sample);
  EXPECT_TRUE(v.has_value()) << sample << " is missing from /metrics";
  return v.value_or(std::nan(""));
}

class ResilienceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto demo = DemoServer::start({{"--seed", "42"}});
    ASSERT_TRUE(demo.ok()) << demo.status();
    demo_ = std::move(*demo);
    auto airbag = AirbagProcess::start(kConfig, {{"MODEL", demo_->url()}});
    ASSERT_TRUE(airbag.ok()) << airbag.status();
    airbag_ = std::move(*airbag);
  }

  double metric(const std::string& sample) {
    auto text = airbag_->metrics();
    EXPECT_TRUE(text.ok()) << text.status();
    return text.ok() ? metricValue(*text, sample) : std::nan("");
  }

  std::unique_ptr<DemoServer> demo_;
  std::unique_ptr<AirbagProcess> airbag_;
};

TEST_F(ResilienceTest, RetriesCarryAFlakyUpstreamAndAttemptsAddUp) {
  ASSERT_TRUE(demo_->setBehavior({{"error_rate", 0.3}}).ok());
  HttpClient c;
  ASSERT_TRUE(c.connect(airbag_->port()).ok());
  int ok = 0;
  int tries_seen = 0;
  for (int i = 0; i < 1000; ++i) {
    Response r = c.request("POST", "/predict", {}, "{\"i\":" + std::to_string(i) + "}");
    ASSERT_NE(r.status, 0) << r.error;
    if (r.status == 200) ++ok;
    tries_seen += std::stoi(r.header("x-airbag-attempts"));
  }
  // 30% independent failures and 5 tries: P(all fail) = 0.24%.
  EXPECT_GE(ok, 990);
  auto demo_requests = demo_->stat("requests");
  ASSERT_TRUE(demo_requests.ok());
  EXPECT_EQ(*demo_requests, tries_seen);
  double ok_tries = metric(R"(airbag_upstream_attempts_total{route="flaky",upstream="model",outcome="ok"})");
  double bad_tries =
      metric(R"(airbag_upstream_attempts_total{route="flaky",upstream="model",outcome="error_5xx"})");
  EXPECT_EQ(ok_tries + bad_tries, *demo_requests);
  EXPECT_EQ(metric(R"(airbag_retries_total{route="flaky"})"), *demo_requests - 1000);
}

TEST_F(ResilienceTest, BreakerOpensOnConsecutiveFailuresThenProbesAndCloses) {
  ASSERT_TRUE(demo_->setBehavior({{"error_rate", 1.0}}).ok());
  for (int i = 0; i < 5; ++i) {
    Response r = airbag_->fetch("POST", "/v2/models/m/infer", {}, "{}");
    EXPECT_EQ(r.status, 500) << "a 5xx without a fallback passes through";
  }
  ASSERT_EQ(demo_->stat("requests").value_or(-1), 5);
  // Open: answered locally, fast, without touching the model.
  HttpClient c;
  ASSERT_TRUE(c.connect(airbag_->port()).ok());
  std::vector<SteadyClock::duration> took;
  for (int i = 0; i < 21; ++i) {
    Stopwatch sw;
    Response r = c.request("POST", "/v2/models/m/infer", {}, "{}");
    took.push_back(sw.elapsed());
    EXPECT_EQ(r.status, 503);
    EXPECT_EQ(r.json()["error"]["code"], "circuit_open");
    EXPECT_FALSE(r.header("retry-after").empty());
  }
  // The median, so one scheduling hiccup on a busy machine does not decide it.
  std::sort(took.begin(), took.end());
  EXPECT_LT(took[10], milliseconds(5));
  EXPECT_EQ(demo_->stat("requests").value_or(-1), 5);
  Response state = airbag_->admin("GET", "/routes/guarded");
  EXPECT_EQ(state.json()["state"]["circuit"]["state"], "open") << state.body;
  EXPECT_EQ(metric(R"(airbag_circuit_state{route="guarded"})"), 1);

  // The model recovers; after open_for the breaker lets exactly 3 probes through.
  ASSERT_TRUE(demo_->reset().ok());
  ASSERT_TRUE(pollUntil(
      [&] {
        return airbag_->admin("GET", "/routes/guarded").json()["state"]["circuit"]["state"] ==
               "half_open";
      },
      milliseconds(3000)));
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(airbag_->fetch("POST", "/v2/models/m/infer", {}, "{}").status, 200);
  EXPECT_EQ(demo_->stat("requests").value_or(-1), 3);
  EXPECT_EQ(airbag_->admin("GET", "/routes/guarded").json()["state"]["circuit"]["state"],
            "closed");
  EXPECT_EQ(metric(R"(airbag_circuit_transitions_total{route="guarded",to="open"})"), 1);
  EXPECT_EQ(metric(R"(airbag_circuit_transitions_total{route="guarded",to="half_open"})"), 1);
  EXPECT_EQ(metric(R"(airbag_circuit_transitions_total{route="guarded",to="closed"})"), 1);
  EXPECT_EQ(metric(R"(airbag_circuit_state{route="guarded"})"), 0);
}

TEST_F(ResilienceTest, BreakerOpensWhenTheUpstreamIsKilledUnderLoad) {
  std::string address = demo_->address();
  demo_.reset();  // the model process dies
  std::atomic<int> open_answers{0};
  std::vector<std::thread> load;
  for (int t = 0; t < 4; ++t) {
    load.emplace_back([&] {
      HttpClient c;
      if (!c.connect(airbag_->port()).ok()) return;
      for (int i = 0; i < 25; ++i) {
        Response r = c.request("POST", "/v2/models/m/infer", {}, "{}");
        if (r.status == 503 && r.json()["error"]["code"] == "circuit_open") ++open_answers;
      }
    });
  }
  for (auto& t : load) t.join();
  double connect_failures =
      metric(R"(airbag_upstream_attempts_total{route="guarded",upstream="model",outcome="connect"})");
  // Five consecutive failures trip it; at most the three other clients' tries
  // already admitted can fail on top.
  EXPECT_GE(connect_failures, 5);
  EXPECT_LE(connect_failures, 8);
  EXPECT_EQ(open_answers.load(), 100 - connect_failures);

  // The model comes back on the same address: probes close the breaker.
  auto again = Process::spawn({demoServerBinary(), "--listen", address});
  ASSERT_TRUE(again.ok());
  ASSERT_TRUE((*again)->waitForLine("listening on", milliseconds(10000)));
  ASSERT_TRUE(pollUntil(
      [&] { return airbag_->fetch("POST", "/v2/models/m/infer", {}, "{}").status == 200; },
      milliseconds(5000), milliseconds(50)));
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(airbag_->fetch("POST", "/v2/models/m/infer", {}, "{}").status, 200);
  EXPECT_EQ(airbag_->admin("GET", "/routes/guarded").json()["state"]["circuit"]["state"],
            "closed");
}

TEST_F(ResilienceTest, TotalOutageDoesNotTurnIntoARetryStorm) {
  ASSERT_TRUE(demo_->setBehavior({{"error_rate", 1.0}}).ok());
  // Steady load: ~100 requests/s for 3 s from one client, paced by wall time.
  HttpClient c;
  ASSERT_TRUE(c.connect(airbag_->port()).ok());
  Stopwatch sw;
  int requests = 0;
  while (sw.elapsed() < std::chrono::seconds(3)) {
    Response r = c.request("POST", "/v1/completions", {}, "{}");
    ASSERT_NE(r.status, 0) << r.error;
    ++requests;
    auto due = milliseconds(10 * requests);
    if (sw.elapsed() < due) std::this_thread::sleep_for(due - sw.elapsed());  // pacing, not waiting
  }
  double seconds = std::ceil(std::chrono::duration<double>(sw.elapsed()).count());
  int64_t tries = demo_->stat("requests").value_or(-1);
  EXPECT_LE(tries, requests * 1.2 + 10 * seconds)
      << requests << " requests over " << seconds << " s made " << tries << " tries";
  EXPECT_GT(metric(R"(airbag_retry_budget_exhausted_total{route="outage"})"), 0);
}

TEST_F(ResilienceTest, RetryAfterFromA503IsHonoured) {
  ASSERT_TRUE(demo_->setBehavior({{"fail_next", 1}, {"error_status", 503}, {"retry_after", 1}}).ok());
  Stopwatch sw;
  Response r = airbag_->fetch("POST", "/v1/embeddings", {}, R"({"input":"x"})");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("x-airbag-attempts"), "2");
  EXPECT_GE(sw.elapsed(), milliseconds(1000)) << "retried before Retry-After";
  EXPECT_LT(sw.elapsed(), milliseconds(1500));
}

TEST_F(ResilienceTest, ARetryAfterPastTheDeadlineIsNotAttempted) {
  ASSERT_TRUE(demo_->setBehavior({{"fail_next", 1}, {"error_status", 503}, {"retry_after", 2}}).ok());
  Stopwatch sw;
  Response r = airbag_->fetch("POST", "/v1/chat/completions", {},
                              R"({"messages":[{"role":"user","content":"x"}]})");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.header("x-airbag-attempts"), "1");
  EXPECT_LT(sw.elapsed(), milliseconds(400));
  EXPECT_EQ(demo_->stat("requests").value_or(-1), 1);
}

TEST_F(ResilienceTest, BulkheadRejectsTheNinthAndTimesOutTheQueued) {
  ASSERT_TRUE(demo_->setBehavior({{"latency_ms", 1500}}).ok());
  std::vector<std::unique_ptr<HttpClient>> clients;
  for (int i = 0; i < 8; ++i) {
    auto c = std::make_unique<HttpClient>();
    ASSERT_TRUE(c->connect(airbag_->port()).ok());
    ASSERT_TRUE(c->sendRequest("GET", "/echo").ok());
    clients.push_back(std::move(c));
    if (i == 3)  // the first four are in flight before the queue fills
      ASSERT_TRUE(pollUntil([&] { return demo_->stat("in_flight").value_or(0) == 4; },
                            milliseconds(3000)));
  }
  ASSERT_TRUE(pollUntil(
      [&] { return airbag_->admin("GET", "/routes/bulkhead").json()["state"]["bulkhead"]["queued"] == 4; },
      milliseconds(3000)));
  Stopwatch sw;
  Response ninth = airbag_->fetch("GET", "/echo");
  EXPECT_EQ(ninth.status, 429);
  EXPECT_EQ(ninth.json()["error"]["code"], "bulkhead_full");
  EXPECT_EQ(ninth.header("retry-after"), "1");
  EXPECT_LT(sw.elapsed(), milliseconds(100));
  // The queued four time out at queue_timeout, long before the model answers.
  for (int i = 4; i < 8; ++i) {
    Response r = clients[static_cast<size_t>(i)]->readResponse(milliseconds(3000));
    EXPECT_EQ(r.status, 429);
    EXPECT_EQ(r.json()["error"]["code"], "bulkhead_full");
  }
  EXPECT_LT(sw.elapsed(), milliseconds(1000));
  for (int i = 0; i < 4; ++i)
    EXPECT_EQ(clients[static_cast<size_t>(i)]->readResponse(milliseconds(5000)).status, 200);
  EXPECT_EQ(demo_->stat("requests").value_or(-1), 4);
  EXPECT_EQ(metric(R"(airbag_bulkhead_rejected_total{route="bulkhead"})"), 5);
}

TEST_F(ResilienceTest, QueuedRequestsGetSlotsInOrderAsTheyFree) {
  ASSERT_TRUE(demo_->setBehavior({{"latency_ms", 100}}).ok());
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      if (fetch(airbag_->port(), "GET", "/echo").status == 200) ++ok;
    });
  }
  for (auto& t : threads) t.join();
  // Four run, four wait less than queue_timeout (100 ms model latency < 300 ms).
  EXPECT_EQ(ok.load(), 8);
  EXPECT_LE(demo_->stat("max_concurrent").value_or(99), 4);
}

TEST_F(ResilienceTest, ManualCircuitOverrideTakesEffectOnTheNextRequest) {
  Response r = airbag_->admin("POST", "/routes/guarded/circuit", R"({"state":"open"})");
  ASSERT_EQ(r.status, 200) << r.body;
  r = airbag_->fetch("POST", "/v2/models/m/infer", {}, "{}");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.json()["error"]["code"], "circuit_open");
  EXPECT_EQ(demo_->stat("requests").value_or(-1), 0);
  ASSERT_EQ(airbag_->admin("POST", "/routes/guarded/circuit", R"({"state":"closed"})").status, 200);
  ASSERT_TRUE(demo_->setBehavior({{"error_rate", 1.0}}).ok());
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(airbag_->fetch("POST", "/v2/models/m/infer", {}, "{}").status, 500)
        << "forced closed never trips";
  ASSERT_EQ(airbag_->admin("POST", "/routes/guarded/circuit", R"({"state":"auto"})").status, 200);
  EXPECT_EQ(airbag_->admin("POST", "/routes/flaky/circuit", R"({"state":"open"})").status, 409)
      << "a route without a breaker cannot be overridden";
}

TEST_F(ResilienceTest, RuntimeFaultInjectionAbortsAndClears) {
  Response r = airbag_->admin("PUT", "/routes/bulkhead/fault",
                              R"({"abort":{"percent":100,"status":503}})");
  ASSERT_EQ(r.status, 200) << r.body;
  r = airbag_->fetch("GET", "/echo");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.json()["error"]["code"], "fault_abort");
  ASSERT_EQ(airbag_->admin("DELETE", "/routes/bulkhead/fault").status, 200);
  EXPECT_EQ(airbag_->fetch("GET", "/echo").status, 200);
  EXPECT_EQ(demo_->stat("requests").value_or(-1), 1);
}

constexpr char kShedConfig[] = R"(
listen: { address: ${LISTEN}, workers: 2 }
admin: { address: ${ADMIN} }
log: { level: warn, access_log: off }
shedding: { max_in_flight: 10 }
upstreams:
  model: { url: ${MODEL} }
routes:
  - name: batch
    match: { path: /echo }
    upstream: model
    priority: optional
  - name: checkout
    match: { path: /predict }
    upstream: model
    priority: critical
)";

TEST(SheddingTest, OptionalWorkIsShedFirstAndCriticalStillGetsIn) {
  auto demo = DemoServer::start();
  ASSERT_TRUE(demo.ok());
  auto airbag = AirbagProcess::start(kShedConfig, {{"MODEL", (*demo)->url()}});
  ASSERT_TRUE(airbag.ok()) << airbag.status();
  ASSERT_TRUE((*demo)->setBehavior({{"latency_ms", 1000}}).ok());
  // Optional work may use 8 of the 10 slots.
  std::vector<std::unique_ptr<HttpClient>> held;
  for (int i = 0; i < 8; ++i) {
    auto c = std::make_unique<HttpClient>();
    ASSERT_TRUE(c->connect((*airbag)->port()).ok());
    ASSERT_TRUE(c->sendRequest("GET", "/echo").ok());
    held.push_back(std::move(c));
  }
  ASSERT_TRUE(pollUntil([&] { return (*demo)->stat("in_flight").value_or(0) == 8; },
                        milliseconds(3000)));
  Response shed = (*airbag)->fetch("GET", "/echo");
  EXPECT_EQ(shed.status, 429);
  EXPECT_EQ(shed.json()["error"]["code"], "shed");
  Response critical = (*airbag)->fetch("POST", "/predict", {}, "{}");
  EXPECT_EQ(critical.status, 200);
  for (auto& c : held) EXPECT_EQ(c->readResponse(milliseconds(5000)).status, 200);
  auto text = (*airbag)->metrics();
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(metricValue(*text, R"(airbag_shed_total{priority="optional"})"), 1);
}

}  // namespace
}  // namespace airbag::testing
