// Integration: saturation-aware admission on the real binary against the
// demo model server in its saturation mode (a real queue with a fixed
// service rate, and a /metrics in vLLM's names). The scraper reads the
// model's queue; while it is saturated new requests wait in the admission
// queue, and go down the ladder when not admitted in time.
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace airbag::testing {
namespace {

constexpr char kConfig[] = R"(
listen: { address: ${LISTEN}, workers: 2 }
admin: { address: ${ADMIN} }
log: { level: warn, access_log: off }
upstreams:
  model:
    url: ${MODEL}
    saturation:
      metrics_path: ${METRICS_PATH}
      interval: 50ms
      when_any: [ { metric: "vllm:num_requests_waiting", gt: 1 } ]
routes:
  - name: r
    match: { path_prefix: / }
    upstream: model
    timeout: { total: 20s }
    admission:
      queue: { max: 8, timeout: ${QUEUE_TIMEOUT} }
    fallback:
      - respond: { status: 200, json: { answer: default } }
)";

std::string state(AirbagProcess& ab) {
  nlohmann::json j = ab.admin("GET", "/upstreams").json();
  if (j.is_discarded() || !j["model"]["saturation"].is_object()) return "";
  return j["model"]["saturation"]["state"].get<std::string>();
}

// Requests that fill the model's queue, each on its own connection and
// thread; every one is bounded by the client's timeout.
class Load {
 public:
  Load(int port, int n) {
    for (int i = 0; i < n; ++i)
      threads_.emplace_back(
          [port] { fetch(port, "POST", "/predict", {}, "{}", scaled(milliseconds(20000))); });
  }
  ~Load() {
    for (std::thread& t : threads_) t.join();
  }

 private:
  std::vector<std::thread> threads_;
};

TEST(AdmissionTest, WhileTheModelIsSaturatedTheOverflowGoesDownTheLadder) {
  auto model = DemoServer::start();
  ASSERT_TRUE(model.ok()) << model.status();
  // One request at a time, 400 ms each: six waiting take over two seconds.
  ASSERT_TRUE((*model)->setBehavior({{"capacity", 1}, {"service_ms", 400}}).ok());
  auto a = AirbagProcess::start(
      kConfig,
      {{"MODEL", (*model)->url()}, {"METRICS_PATH", "/metrics"}, {"QUEUE_TIMEOUT", "100ms"}});
  ASSERT_TRUE(a.ok()) << a.status();
  AirbagProcess& ab = **a;
  ASSERT_TRUE(pollUntil([&] { return state(ab) == "ok"; }, scaled(milliseconds(5000))));
  EXPECT_EQ(ab.metric(R"(airbag_upstream_saturated{upstream="model"})"), 0);

  {
    Load load(ab.port(), 6);
    ASSERT_TRUE(pollUntil([&] { return state(ab) == "saturated"; }, scaled(milliseconds(5000))))
        << ab.admin("GET", "/upstreams").body;
    nlohmann::json sat = ab.admin("GET", "/upstreams").json()["model"]["saturation"];
    EXPECT_EQ(sat["readings"][0]["metric"], "vllm:num_requests_waiting");
    EXPECT_EQ(sat["readings"][0]["over"], true);
    EXPECT_GT(sat["readings"][0]["value"].get<double>(), 1);
    EXPECT_EQ(ab.metric(R"(airbag_upstream_saturated{upstream="model"})"), 1);

    // Not admitted within the queue timeout: the ladder answers, and says why.
    Response r = ab.fetch("POST", "/predict", {}, "{}");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.header("x-airbag-source"), "default");
    EXPECT_EQ(r.header("x-airbag-admission"), "saturated");
    EXPECT_EQ(r.json()["answer"], "default");
    EXPECT_GE(ab.metric(R"(airbag_admission_total{route="r",outcome="saturated"})").value_or(0), 1);
    nlohmann::json routes = ab.admin("GET", "/routes/r").json();
    EXPECT_GE(routes["state"]["admission"]["refused_saturated"].get<int>(), 1);
    EXPECT_EQ(routes["state"]["upstream"]["saturation"]["state"], "saturated");
  }
  // The queue drained: requests reach the model again, without the header.
  ASSERT_TRUE(pollUntil([&] { return state(ab) == "ok"; }, scaled(milliseconds(10000))));
  Response r = ab.fetch("POST", "/predict", {}, "{}");
  EXPECT_EQ(r.header("x-airbag-source"), "upstream");
  EXPECT_EQ(r.header("x-airbag-admission"), "");
}

TEST(AdmissionTest, ARequestQueuedWhileSaturatedIsAdmittedWhenTheQueueDrains) {
  auto model = DemoServer::start();
  ASSERT_TRUE(model.ok()) << model.status();
  ASSERT_TRUE((*model)->setBehavior({{"capacity", 1}, {"service_ms", 200}}).ok());
  auto a = AirbagProcess::start(
      kConfig,
      {{"MODEL", (*model)->url()}, {"METRICS_PATH", "/metrics"}, {"QUEUE_TIMEOUT", "15s"}});
  ASSERT_TRUE(a.ok()) << a.status();
  AirbagProcess& ab = **a;
  ASSERT_TRUE(pollUntil([&] { return state(ab) == "ok"; }, scaled(milliseconds(5000))));
  Response r;
  {
    Load load(ab.port(), 4);
    ASSERT_TRUE(pollUntil([&] { return state(ab) == "saturated"; }, scaled(milliseconds(5000))));
    r = ab.fetch("POST", "/predict", {}, "{}", scaled(milliseconds(20000)));
  }
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("x-airbag-source"), "upstream");
  EXPECT_EQ(r.header("x-airbag-admission"), "queued");
  EXPECT_GE(ab.metric(R"(airbag_admission_total{route="r",outcome="queued"})").value_or(0), 1);
}

TEST(AdmissionTest, AFailedScrapeIsUnknownAndNeverHoldsRequests) {
  auto model = DemoServer::start();
  ASSERT_TRUE(model.ok()) << model.status();
  auto a = AirbagProcess::start(kConfig, {{"MODEL", (*model)->url()},
                                          {"METRICS_PATH", "/no-metrics-here"},
                                          {"QUEUE_TIMEOUT", "100ms"}});
  ASSERT_TRUE(a.ok()) << a.status();
  AirbagProcess& ab = **a;
  ASSERT_TRUE(pollUntil(
      [&] {
        nlohmann::json j = ab.admin("GET", "/upstreams").json();
        return !j.is_discarded() && j["model"]["saturation"]["scrapes_failed"].get<int>() >= 2;
      },
      scaled(milliseconds(5000))));
  nlohmann::json sat = ab.admin("GET", "/upstreams").json()["model"]["saturation"];
  EXPECT_EQ(sat["state"], "unknown");
  EXPECT_EQ(sat["error"], "the metrics answered status 404");
  EXPECT_EQ(ab.metric(R"(airbag_upstream_saturated{upstream="model"})"), 0);
  Response r = ab.fetch("POST", "/predict", {}, "{}");
  EXPECT_EQ(r.header("x-airbag-source"), "upstream");
  EXPECT_EQ(r.header("x-airbag-admission"), "");
}

}  // namespace
}  // namespace airbag::testing
