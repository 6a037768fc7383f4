// Integration: graceful degradation on the real binary: the response cache (stale-while-
// revalidate, stale-if-error, coalescing, canonical keys, the memory cap, streams), answer
// validation, and the fallback ladder down to the safe default.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <latch>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace airbag::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kConfig[] = R"(
listen: { address: ${LISTEN}, workers: 2 }
admin: { address: ${ADMIN} }
log: { level: warn, access_log: off }
cache: { max_bytes: 256KiB }
upstreams:
  model: { url: ${MODEL}, connect_timeout: 200ms }
  small-model: { url: ${SMALL}, connect_timeout: 200ms }
routes:
  - name: swr
    match: { path: /v2/models/swr/infer }
    upstream: model
    cache: { ttl: 300ms, stale_while_revalidate: 5s }
  - name: sie
    match: { path: /v2/models/sie/infer }
    upstream: model
    cache: { ttl: 200ms, stale_if_error: 1500ms }
    fallback:
      - respond: { status: 200, json: { degraded: true } }
  - name: coalesce
    match: { path: /v2/models/coalesce/infer }
    upstream: model
    cache: { ttl: 30s }
  - name: canon
    match: { path: /v2/models/canon/infer }
    upstream: model
    cache:
      ttl: 30s
      key: { body: json-canonical, ignore: [/id] }
  - name: mem
    match: { path: /v2/models/mem/infer }
    upstream: model
    cache: { ttl: 60s, max_entry_bytes: 64KiB }
  - name: pass
    match: { path: /v2/models/pass/infer }
    upstream: model
    cache: { ttl: 30s }
    fallback:
      - upstream: small-model
        timeout: 500ms
      - respond: { status: 200, json: { degraded: true } }
  - name: ladder
    match: { path: /v2/models/ladder/infer }
    upstream: model
    fallback:
      - upstream: small-model
        timeout: 500ms
      - rules:
          - name: high-amount
            when: [ { pointer: /amount, gt: 5000 } ]
            respond: { status: 200, json: { score: 0.7 } }
      - respond:
          status: 200
          headers: { x-degraded: "true" }
          json: { score: 0.0 }
  - name: validated
    match: { path: /predict, methods: [POST] }
    upstream: model
    cache: { ttl: 30s }
    validate:
      status: [200]
      json:
        - { pointer: /predictions/0/score, finite: true, min: 0, max: 1 }
        - { pointer: /predictions, type: array, min_items: 1 }
    fallback:
      - respond: { status: 200, json: { predictions: [ { score: 0 } ], degraded: true } }
  - name: chat
    match: { path: /v1/chat/completions }
    upstream: model
    cache: { ttl: 30s, streams: true }
  - name: forced
    match: { path: /v1/completions }
    upstream: model
    circuit_breaker: { consecutive_failures: 5, open_for: 30s, max_open_for: 60s }
    fallback:
      - respond: { status: 200, json: { degraded: true } }
  - name: narrow
    match: { path: /echo }
    upstream: model
    bulkhead: { max_in_flight: 1, max_queue: 0 }
    fallback:
      - respond: { status: 200, json: { degraded: true } }
)";

constexpr int64_t kCacheCapBytes = 256 * 1024;

// The value of one sample line ("name{labels} value") of a Prometheus text exposition.
// Resident set size of a process in KiB, from the kernel's per-process status file; -1 if unknown.
int64_t residentKib(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  }
  return -1;
}

// Sleeps until `sw` shows at least `at`: waiting for time itself to pass (a ttl to run out), not
// for a condition.
void sleepUntil(const Stopwatch& sw, milliseconds at) {
  auto left = at - sw.elapsed();
  if (left > SteadyClock::duration::zero()) std::this_thread::sleep_for(left);
}

class DegradationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto demo = DemoServer::start({{"--seed", "7"}});
    ASSERT_TRUE(demo.ok()) << demo.status();
    demo_ = std::move(*demo);
    auto small = DemoServer::start({{"--name", "small-model"}});
    ASSERT_TRUE(small.ok()) << small.status();
    small_ = std::move(*small);
    auto airbag =
        AirbagProcess::start(kConfig, {{"MODEL", demo_->url()}, {"SMALL", small_->url()}});
    ASSERT_TRUE(airbag.ok()) << airbag.status();
    airbag_ = std::move(*airbag);
  }

  // One sample of /metrics; nullopt when absent (or /metrics failed).
  std::optional<double> metric(const std::string& sample) { return airbag_->metric(sample); }

  // Requests a demo server saw on `path` since its start or last reset.
  static int64_t seen(DemoServer& server, const std::string& path) {
    auto stats = server.stats();
    if (!stats.ok() || !stats->contains("by_path")) return -1;
    return stats->at("by_path").value(path, int64_t{0});
  }

  std::unique_ptr<DemoServer> demo_;
  std::unique_ptr<DemoServer> small_;
  std::unique_ptr<AirbagProcess> airbag_;
};

constexpr char kInfer[] = R"({"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]})";

TEST_F(DegradationTest, StaleWhileRevalidateServesAtOnceAndRefreshesExactlyOnce) {
  const std::string path = "/v2/models/swr/infer";
  HttpClient c;
  ASSERT_TRUE(c.connect(airbag_->port()).ok());

  Response first = c.request("POST", path, {}, kInfer);
  Stopwatch since_stored;
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(first.header("x-airbag-source"), "upstream");
  EXPECT_EQ(first.header("x-airbag-cache"), "miss");

  Response hit = c.request("POST", path, {}, kInfer);
  ASSERT_EQ(hit.status, 200);
  EXPECT_EQ(hit.header("x-airbag-source"), "cache");
  EXPECT_EQ(hit.header("x-airbag-cache"), "hit");
  EXPECT_EQ(hit.body, first.body);
  EXPECT_EQ(demo_->stat("requests").value_or(-1), 1);

  // The refresh is slow, so an answer that waited for it would show.
  ASSERT_TRUE(demo_->setBehavior({{"latency_ms", 300}}).ok());
  sleepUntil(since_stored, milliseconds(350));
  Stopwatch sw;
  Response stale = c.request("POST", path, {}, kInfer);
  EXPECT_LT(sw.elapsedMs().count(), 150) << "a stale answer must not wait for the refresh";
  ASSERT_EQ(stale.status, 200);
  EXPECT_EQ(stale.header("x-airbag-source"), "stale");
  EXPECT_EQ(stale.header("x-airbag-cache"), "stale");
  EXPECT_EQ(stale.body, first.body);
  EXPECT_TRUE(
      pollUntil([&] { return demo_->stat("requests").value_or(-1) == 2; }, milliseconds(2000)))
      << "one background refresh reaches the model";

  // More stale lookups while the refresh runs start no other refresh.
  for (int i = 0; i < 5; ++i) {
    Response r = c.request("POST", path, {}, kInfer);
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.header("x-airbag-source"), "stale") << "request " << i;
  }
  EXPECT_EQ(demo_->stat("requests").value_or(-1), 2);

  // Once the refresh is stored, the answer is fresh again: it is the refresh's (the model's
  // second answer, by its sequence header).
  Response fresh;
  EXPECT_TRUE(pollUntil(
      [&] {
        fresh = c.request("POST", path, {}, kInfer);
        return fresh.header("x-airbag-cache") == "hit";
      },
      milliseconds(3000), milliseconds(20)));
  EXPECT_EQ(fresh.header("x-airbag-source"), "cache");
  EXPECT_EQ(fresh.header("x-demo-request-seq"), "2");
  EXPECT_EQ(demo_->stat("requests").value_or(-1), 2);
}

TEST_F(DegradationTest, StaleIfErrorCoversAFailingModelOnlyWithinItsWindow) {
  const std::string path = "/v2/models/sie/infer";
  Stopwatch sw;
  Response warm = airbag_->fetch("POST", path, {}, kInfer);
  ASSERT_EQ(warm.status, 200);
  EXPECT_EQ(warm.header("x-airbag-source"), "upstream");
  ASSERT_TRUE(demo_->setBehavior({{"error_rate", 1.0}}).ok());

  // Past ttl (200ms), within ttl + stale_if_error (1700ms): the model is asked, fails, and the
  // stale answer covers for it.
  sleepUntil(sw, milliseconds(400));
  Response covered = airbag_->fetch("POST", path, {}, kInfer);
  EXPECT_EQ(covered.status, 200);
  EXPECT_EQ(covered.header("x-airbag-source"), "stale");
  EXPECT_EQ(covered.body, warm.body);
  EXPECT_EQ(demo_->stat("requests").value_or(-1), 2) << "stale-if-error still tries the model";

  // Past the window the entry is gone: the next level of the ladder answers.
  sleepUntil(sw, milliseconds(1950));
  Response late = airbag_->fetch("POST", path, {}, kInfer);
  EXPECT_EQ(late.status, 200);
  EXPECT_EQ(late.header("x-airbag-source"), "default");
  EXPECT_EQ(late.json(), nlohmann::json({{"degraded", true}})) << late.body;
  EXPECT_EQ(metric(R"(airbag_fallbacks_total{route="sie",level="stale"})").value_or(-1), 1);
  EXPECT_EQ(metric(R"(airbag_fallbacks_total{route="sie",level="default"})").value_or(-1), 1);
}

TEST_F(DegradationTest, AHundredConcurrentMissesMakeOneUpstreamCall) {
  const std::string path = "/v2/models/coalesce/infer";
  ASSERT_TRUE(demo_->setBehavior({{"latency_ms", 300}}).ok());
  constexpr int kClients = 100;
  std::vector<Response> answers(kClients);
  std::latch ready(kClients);
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&, i] {
      HttpClient c;
      bool connected = c.connect(airbag_->port()).ok();
      ready.arrive_and_wait();  // every connection is up before any request goes out
      if (connected) answers[i] = c.request("POST", path, {}, kInfer, milliseconds(10000));
    });
  }
  for (auto& t : clients) t.join();

  int ok = 0;
  for (int i = 0; i < kClients; ++i) {
    EXPECT_EQ(answers[i].status, 200) << "client " << i << ": " << answers[i].error;
    if (answers[i].status != 200) continue;
    ++ok;
    EXPECT_EQ(answers[i].body, answers[0].body) << "client " << i;
  }
  EXPECT_EQ(ok, kClients);
  EXPECT_EQ(seen(*demo_, path), 1);
}

TEST_F(DegradationTest, CanonicalKeyIgnoresSpellingAndIgnoredFields) {
  const std::string path = "/v2/models/canon/infer";
  HttpClient c;
  ASSERT_TRUE(c.connect(airbag_->port()).ok());
  auto cacheOf = [&](std::string_view body, const Headers& headers = {}) {
    Response r = c.request("POST", path, headers, body);
    EXPECT_EQ(r.status, 200) << body << ": " << r.body;
    return r.header("x-airbag-cache");
  };

  EXPECT_EQ(cacheOf(R"({"b":1,"a":2})"), "miss");
  EXPECT_EQ(cacheOf(R"({ "a": 2, "b": 1.0 })"), "hit");
  EXPECT_EQ(cacheOf("{\n  \"a\" : 2e0,\t\"b\" : 1\n}"), "hit");
  EXPECT_EQ(cacheOf(R"({"a":3,"b":1})"), "miss");
  EXPECT_EQ(cacheOf(R"({"id":"x1","a":2,"b":1})"), "hit");
  EXPECT_EQ(cacheOf(R"({"id":"x2","a":2,"b":1})"), "hit");
  EXPECT_EQ(seen(*demo_, path), 2);

  // A client asking for a fresh answer skips the lookup, and its answer replaces the entry.
  EXPECT_EQ(cacheOf(R"({"a":2,"b":1})", {{"cache-control", "no-cache"}}), "bypass");
  EXPECT_EQ(seen(*demo_, path), 3);
  Response after = c.request("POST", path, {}, R"({"b":1,"a":2})");
  EXPECT_EQ(after.header("x-airbag-cache"), "hit");
  EXPECT_EQ(after.header("x-demo-request-seq"), "3");
  EXPECT_EQ(cacheOf(R"({"a":3,"b":1})", {{"pragma", "no-cache"}}), "bypass");
  EXPECT_EQ(seen(*demo_, path), 4);

  // /routes counts the same lookups: 5 hits, 2 misses, 2 bypassed, and the
  // route's entries.
  nlohmann::json cache = airbag_->admin("GET", "/routes/canon").json()["state"]["cache"];
  EXPECT_EQ(cache["hits"], 5) << cache;
  EXPECT_EQ(cache["misses"], 2) << cache;
  EXPECT_EQ(cache["bypassed"], 2) << cache;
  EXPECT_EQ(cache["stale"], 0) << cache;
  EXPECT_EQ(cache["entries"], 2) << cache;
  EXPECT_GT(cache["bytes"], 0) << cache;
}

// The resident size a small airbag stays under with its cache full. Under
// AddressSanitizer the runtime's shadow memory and quarantine come on top (the
// build under test is sanitized too), so the bound there only catches runaway
// growth.
#if defined(AIRBAG_TEST_ASAN)  // see harness.h
constexpr int64_t kSmallProcessKib = 192 * 1024;
#else
constexpr int64_t kSmallProcessKib = 64 * 1024;
#endif

TEST_F(DegradationTest, TheCacheStaysUnderItsByteCapAndTheProcessStaysSmall) {
  const std::string path = "/v2/models/mem/infer";
  ASSERT_TRUE(demo_->setBehavior({{"response_bytes", 8000}}).ok());
  HttpClient c;
  ASSERT_TRUE(c.connect(airbag_->port()).ok());
  // Ten times the cap in distinct answers of ~8 KB each.
  constexpr int kDistinct = 330;
  std::string last_body;
  for (int i = 0; i < kDistinct; ++i) {
    last_body = R"({"n":)" + std::to_string(i) + "}";
    Response r = c.request("POST", path, {}, last_body);
    ASSERT_EQ(r.status, 200) << r.error;
    ASSERT_GE(r.body.size(), 8000u);
    if (i % 50 == 49) {
      auto bytes = metric("airbag_cache_bytes");
      ASSERT_TRUE(bytes.has_value()) << "airbag_cache_bytes missing from /metrics";
      EXPECT_GT(*bytes, 0) << "after " << i + 1 << " answers";
      EXPECT_LE(*bytes, kCacheCapBytes) << "after " << i + 1 << " answers";
      EXPECT_LT(residentKib(airbag_->process().pid()), kSmallProcessKib) << "after " << i + 1;
    }
  }
  EXPECT_EQ(seen(*demo_, path), kDistinct);
  auto bytes = metric("airbag_cache_bytes");
  auto entries = metric("airbag_cache_entries");
  ASSERT_TRUE(bytes.has_value());
  ASSERT_TRUE(entries.has_value());
  EXPECT_LE(*bytes, kCacheCapBytes);
  EXPECT_GE(*entries, 1);
  EXPECT_LE(*entries, kCacheCapBytes / 8000);
  int64_t rss = residentKib(airbag_->process().pid());
  EXPECT_GT(rss, 0);
  EXPECT_LT(rss, kSmallProcessKib);
  // The newest entry survived the evictions.
  Response again = c.request("POST", path, {}, last_body);
  EXPECT_EQ(again.header("x-airbag-cache"), "hit");
}

TEST_F(DegradationTest, InvalidAnswersFallBackAndAreNeverCached) {
  const std::string body = R"({"features":[1,2,3]})";
  const nlohmann::json kDefault = {{"predictions", {{{"score", 0}}}}, {"degraded", true}};

  ASSERT_TRUE(demo_->setBehavior({{"nan", true}}).ok());
  Response nan = airbag_->fetch("POST", "/predict", {}, body);
  EXPECT_EQ(nan.status, 200);
  EXPECT_EQ(nan.header("x-airbag-source"), "default");
  EXPECT_EQ(nan.json(), kDefault) << nan.body;
  EXPECT_GE(metric(R"(airbag_validation_failures_total{route="validated"})").value_or(0), 1);

  ASSERT_TRUE(demo_->setBehavior({{"nan", false}, {"missing_field", true}}).ok());
  Response missing = airbag_->fetch("POST", "/predict", {}, body);
  EXPECT_EQ(missing.status, 200);
  EXPECT_EQ(missing.header("x-airbag-source"), "default");
  EXPECT_EQ(missing.json(), kDefault) << missing.body;
  EXPECT_GE(metric(R"(airbag_validation_failures_total{route="validated"})").value_or(0), 2);
  EXPECT_EQ(metric(R"(airbag_fallbacks_total{route="validated",level="default"})").value_or(-1), 2);

  // Neither the invalid answers nor the default stood in for them were stored.
  ASSERT_TRUE(demo_->reset().ok());
  Response good = airbag_->fetch("POST", "/predict", {}, body);
  EXPECT_EQ(good.status, 200);
  EXPECT_EQ(good.header("x-airbag-cache"), "miss");
  EXPECT_EQ(good.header("x-airbag-source"), "upstream");
  EXPECT_TRUE(good.json()["predictions"][0]["score"].is_number()) << good.body;
  EXPECT_EQ(airbag_->fetch("POST", "/predict", {}, body).header("x-airbag-cache"), "hit");
  EXPECT_EQ(seen(*demo_, "/predict"), 1);
}

TEST_F(DegradationTest, TheLadderGoesFallbackUpstreamThenRulesThenDefault) {
  const std::string path = "/v2/models/ladder/infer";
  ASSERT_TRUE(demo_->setBehavior({{"error_rate", 1.0}}).ok());
  Response smaller = airbag_->fetch("POST", path, {}, R"({"amount":9000})");
  EXPECT_EQ(smaller.status, 200);
  EXPECT_EQ(smaller.header("x-airbag-source"), "fallback:small-model");
  EXPECT_EQ(smaller.header("x-demo-server"), "small-model");
  EXPECT_EQ(seen(*demo_, path), 1);
  EXPECT_EQ(seen(*small_, path), 1);

  ASSERT_TRUE(small_->setBehavior({{"error_rate", 1.0}}).ok());
  Response rule = airbag_->fetch("POST", path, {}, R"({"amount":9000})");
  EXPECT_EQ(rule.status, 200);
  EXPECT_EQ(rule.header("x-airbag-source"), "rule:high-amount");
  EXPECT_EQ(rule.json(), nlohmann::json({{"score", 0.7}})) << rule.body;

  Response fallback_default = airbag_->fetch("POST", path, {}, R"({"amount":10})");
  EXPECT_EQ(fallback_default.status, 200);
  EXPECT_EQ(fallback_default.header("x-airbag-source"), "default");
  EXPECT_EQ(fallback_default.header("x-degraded"), "true");
  EXPECT_EQ(fallback_default.json(), nlohmann::json({{"score", 0.0}})) << fallback_default.body;
  EXPECT_EQ(seen(*demo_, path), 3);
  EXPECT_EQ(seen(*small_, path), 3);

  EXPECT_EQ(
      metric(R"(airbag_fallbacks_total{route="ladder",level="fallback:small-model"})").value_or(-1),
      1);
  EXPECT_EQ(
      metric(R"(airbag_fallbacks_total{route="ladder",level="rule:high-amount"})").value_or(-1), 1);
  EXPECT_EQ(metric(R"(airbag_fallbacks_total{route="ladder",level="default"})").value_or(-1), 1);
}

TEST_F(DegradationTest, AClientErrorFromTheModelPassesThroughUntouched) {
  const std::string path = "/v2/models/pass/infer";
  ASSERT_TRUE(demo_->setBehavior({{"status_override", 400}}).ok());
  Response r = airbag_->fetch("POST", path, {}, kInfer);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.header("x-airbag-source"), "upstream");
  EXPECT_EQ(r.header("x-demo-server"), "model");
  EXPECT_EQ(r.json()["error"]["type"], "demo_error") << r.body;
  EXPECT_EQ(r.json()["error"]["code"], 400) << r.body;
  EXPECT_EQ(seen(*small_, path), 0) << "a 4xx is the model's answer, not a failure";
  auto text = airbag_->metrics();
  ASSERT_TRUE(text.ok());
  EXPECT_THAT(*text, Not(HasSubstr(R"(airbag_fallbacks_total{route="pass")")));

  ASSERT_TRUE(demo_->reset().ok());
  Response next = airbag_->fetch("POST", path, {}, kInfer);
  EXPECT_EQ(next.status, 200);
  EXPECT_EQ(next.header("x-airbag-cache"), "miss") << "the 400 was not cached";
  EXPECT_EQ(next.header("x-airbag-source"), "upstream");
  EXPECT_EQ(seen(*demo_, path), 1);
}

constexpr char kStreamChat[] =
    R"({"stream":true,"messages":[{"role":"user","content":"one two three four"}]})";

TEST_F(DegradationTest, ACompleteStreamIsCachedAndReplayedAsAStream) {
  const std::string path = "/v1/chat/completions";
  Response first = airbag_->fetch("POST", path, {}, kStreamChat);
  ASSERT_EQ(first.status, 200);
  EXPECT_TRUE(first.complete) << first.error;
  EXPECT_EQ(first.header("x-airbag-source"), "upstream");
  EXPECT_EQ(first.header("x-airbag-cache"), "miss");
  EXPECT_THAT(first.header("content-type"), HasSubstr("text/event-stream"));
  EXPECT_THAT(first.body, HasSubstr("data: [DONE]"));

  Response replay = airbag_->fetch("POST", path, {}, kStreamChat);
  ASSERT_EQ(replay.status, 200);
  EXPECT_TRUE(replay.complete) << replay.error;
  EXPECT_EQ(replay.header("x-airbag-source"), "cache");
  EXPECT_EQ(replay.header("x-airbag-cache"), "hit");
  EXPECT_THAT(replay.header("content-type"), HasSubstr("text/event-stream"));
  EXPECT_EQ(replay.body, first.body) << "the same events, ids included";
  EXPECT_EQ(seen(*demo_, path), 1);
}

TEST_F(DegradationTest, AStreamCutMidwayIsNotCached) {
  const std::string path = "/v1/chat/completions";
  ASSERT_TRUE(demo_->setBehavior({{"stream_events", 5}, {"abort_after_events", 2}}).ok());
  Response cut = airbag_->fetch("POST", path, {}, kStreamChat);
  EXPECT_EQ(cut.status, 200);
  EXPECT_THAT(cut.body, Not(HasSubstr("data: [DONE]")));

  ASSERT_TRUE(demo_->reset().ok());
  Response whole = airbag_->fetch("POST", path, {}, kStreamChat);
  ASSERT_EQ(whole.status, 200);
  EXPECT_EQ(whole.header("x-airbag-source"), "upstream");
  EXPECT_EQ(whole.header("x-airbag-cache"), "miss");
  EXPECT_THAT(whole.body, HasSubstr("data: [DONE]"));
  EXPECT_EQ(seen(*demo_, path), 1) << "the cut stream left nothing to replay";
  EXPECT_EQ(airbag_->fetch("POST", path, {}, kStreamChat).header("x-airbag-cache"), "hit");
  EXPECT_EQ(seen(*demo_, path), 1);
}

TEST_F(DegradationTest, AForcedOpenBreakerLeadsToTheLadderNotA503) {
  Response set = airbag_->admin("POST", "/routes/forced/circuit", R"({"state":"open"})");
  ASSERT_EQ(set.status, 200) << set.body;
  Response r = airbag_->fetch("POST", "/v1/completions", {}, R"({"prompt":"hi"})");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("x-airbag-source"), "default");
  EXPECT_EQ(r.json(), nlohmann::json({{"degraded", true}})) << r.body;
  EXPECT_EQ(seen(*demo_, "/v1/completions"), 0);
  EXPECT_EQ(metric(R"(airbag_fallbacks_total{route="forced",level="default"})").value_or(-1), 1);
}

TEST_F(DegradationTest, AFullBulkheadLeadsToTheLadder) {
  ASSERT_TRUE(demo_->setBehavior({{"latency_ms", 1000}}).ok());
  HttpClient holder;
  ASSERT_TRUE(holder.connect(airbag_->port()).ok());
  ASSERT_TRUE(holder.sendRequest("POST", "/echo", {}, "hold").ok());
  ASSERT_TRUE(
      pollUntil([&] { return demo_->stat("in_flight").value_or(0) == 1; }, milliseconds(2000)));

  Stopwatch sw;
  Response r = airbag_->fetch("POST", "/echo", {}, "second");
  EXPECT_LT(sw.elapsedMs().count(), 500) << "answered without waiting for the slot";
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("x-airbag-source"), "default");
  EXPECT_EQ(r.json(), nlohmann::json({{"degraded", true}})) << r.body;

  Response held = holder.readResponse(milliseconds(3000));
  EXPECT_EQ(held.status, 200);
  EXPECT_EQ(held.header("x-airbag-source"), "upstream");
  EXPECT_EQ(seen(*demo_, "/echo"), 1);
}

}  // namespace
}  // namespace airbag::testing
