// Integration: one route driven from every worker at once, so that the state the workers share
// (the breaker, the bulkhead, the cache, the config snapshot) is touched from all of them
// together: breaker transitions, bulkhead grants, cache fill and eviction, reloads during
// traffic. In the ThreadSanitizer build these are the tests that find races; everywhere they
// check the shared state stays right under contention.
#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace airbag::testing {
namespace {

constexpr int kClients = 8;

constexpr char kConfig[] = R"(
listen: { address: ${LISTEN}, workers: 4 }
admin: { address: ${ADMIN} }
log: { level: error, access_log: off }
cache: { max_bytes: ${CACHE_BYTES} }
upstreams:
  model: { url: ${MODEL}, connect_timeout: 500ms }
routes:
  - name: breaker
    match: { path: /v2/models/m/infer }
    upstream: model
    circuit_breaker:
      consecutive_failures: 3
      minimum_calls: 1000
      open_for: 20ms
      max_open_for: 40ms
      half_open_calls: 2
  - name: bulkhead
    match: { path: /echo }
    upstream: model
    bulkhead: { max_in_flight: 3, max_queue: 3, queue_timeout: ${QUEUE_TIMEOUT} }
  - name: cached
    match: { path: /predict }
    upstream: model
    cache: { ttl: ${TTL} }
)";

AirbagProcess::Vars vars(const std::string& model, const char* ttl = "2s",
                         const char* queue_timeout = "200ms") {
  return {{"MODEL", model},
          {"CACHE_BYTES", "48KiB"},
          {"TTL", ttl},
          {"QUEUE_TIMEOUT", queue_timeout}};
}

// Runs `per_client` calls of `fn(client_index, call_index, connection)` on each of kClients
// threads, each with its own keep-alive connection (spread by the kernel over the workers'
// listeners), reconnecting whenever airbag closed it. With a `pace`, each client starts a call
// at most every `pace`, so that the load spans time (timers such as open_for run out during it).
void fromEveryWorker(int port, int per_client,
                     const std::function<void(int, int, HttpClient&)>& fn,
                     std::chrono::microseconds pace = std::chrono::microseconds(0)) {
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      HttpClient conn;
      auto next = SteadyClock::now();
      for (int i = 0; i < per_client; ++i) {
        std::this_thread::sleep_until(next);  // pacing the load, not waiting for a condition
        next += pace;
        if (!conn.connected() || conn.peerClosed()) {
          conn.close();
          if (!conn.connect(port).ok()) continue;
        }
        fn(c, i, conn);
      }
    });
  }
  for (auto& t : threads) t.join();
}

class WorkerStressTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto demo = DemoServer::start({{"--seed", "3"}});
    ASSERT_TRUE(demo.ok()) << demo.status();
    demo_ = std::move(*demo);
    auto airbag = AirbagProcess::start(kConfig, vars(demo_->url()));
    ASSERT_TRUE(airbag.ok()) << airbag.status();
    airbag_ = std::move(*airbag);
  }

  double metric(const std::string& sample) { return airbag_->metric(sample).value_or(-1); }

  std::unique_ptr<DemoServer> demo_;
  std::unique_ptr<AirbagProcess> airbag_;
};

TEST_F(WorkerStressTest, BreakerTransitionsFromEveryWorker) {
  ASSERT_TRUE(demo_->setBehavior({{"error_rate", 0.5}}).ok());
  std::mutex mu;
  std::map<int, int> statuses;
  // ~0.5 s of load: the breaker's 20 ms open_for runs out many times over.
  fromEveryWorker(
      airbag_->port(), 250,
      [&](int, int, HttpClient& c) {
        Response r = c.request("POST", "/v2/models/m/infer", {}, "{}");
        std::lock_guard<std::mutex> lock(mu);
        ++statuses[r.status];
      },
      std::chrono::microseconds(2000));
  // Only the model's answers and the breaker's own: nothing lost, nothing else.
  int total = 0;
  for (const auto& [status, n] : statuses) {
    EXPECT_THAT(status, ::testing::AnyOf(200, 500, 503)) << n << " answers";
    total += n;
  }
  EXPECT_EQ(total, kClients * 250);
  EXPECT_GT(statuses[503], 0) << "the breaker never opened";
  EXPECT_GE(metric(R"(airbag_circuit_transitions_total{route="breaker",to="open"})"), 1);
  EXPECT_GE(metric(R"(airbag_circuit_transitions_total{route="breaker",to="half_open"})"), 1);
  EXPECT_GE(metric(R"(airbag_circuit_transitions_total{route="breaker",to="closed"})"), 1);
  // Every try the model saw was admitted by the breaker and answered once.
  auto requests = demo_->stat("requests");
  ASSERT_TRUE(requests.ok());
  EXPECT_EQ(*requests, statuses[200] + statuses[500]);

  // A healthy model closes it again, whichever worker probes.
  ASSERT_TRUE(demo_->reset().ok());
  EXPECT_TRUE(pollUntil(
      [&] {
        airbag_->fetch("POST", "/v2/models/m/infer", {}, "{}");
        return metric(R"(airbag_circuit_state{route="breaker"})") == 0;
      },
      milliseconds(5000), milliseconds(10)));
}

TEST_F(WorkerStressTest, BulkheadGrantsFromEveryWorker) {
  ASSERT_TRUE(demo_->setBehavior({{"latency_ms", 10}}).ok());
  std::atomic<int> ok{0}, full{0}, other{0};
  fromEveryWorker(airbag_->port(), 40, [&](int, int, HttpClient& c) {
    Response r = c.request("GET", "/echo");
    if (r.status == 200) {
      ++ok;
    } else if (r.status == 429 && r.json()["error"]["code"] == "bulkhead_full") {
      ++full;
    } else {
      ++other;
    }
  });
  EXPECT_EQ(other.load(), 0);
  EXPECT_EQ(ok + full, kClients * 40);
  EXPECT_GT(ok.load(), 0);
  EXPECT_GT(full.load(), 0) << "eight clients never overflowed a bulkhead of 3 + 3";
  // However the workers interleave, the model never saw more than max_in_flight at once.
  auto max_concurrent = demo_->stat("max_concurrent");
  ASSERT_TRUE(max_concurrent.ok());
  EXPECT_LE(*max_concurrent, 3);
  EXPECT_EQ(metric(R"(airbag_bulkhead_rejected_total{route="bulkhead"})"), full.load());
  // Every grant was given back.
  EXPECT_TRUE(pollUntil(
      [&] {
        return metric(R"(airbag_bulkhead_in_flight{route="bulkhead"})") == 0 &&
               metric(R"(airbag_bulkhead_queued{route="bulkhead"})") == 0;
      },
      milliseconds(3000)));
}

TEST_F(WorkerStressTest, CacheFillAndEvictionFromEveryWorker) {
  // ~1 KiB answers, 100 keys, a 48 KiB cache: the workers fill it and evict from it together.
  ASSERT_TRUE(demo_->setBehavior({{"response_bytes", 1024}}).ok());
  constexpr int kKeys = 100;
  std::mutex mu;
  std::map<int, std::string> first_body;
  std::atomic<int> mismatched{0}, failed{0}, hits{0};
  fromEveryWorker(airbag_->port(), 150, [&](int client, int i, HttpClient& c) {
    const int key = (client * 31 + i * 7) % kKeys;
    Response r = c.request("POST", "/predict", {}, absl::StrCat("{\"key\":", key, "}"));
    if (r.status != 200 || !r.complete) {
      ++failed;
      return;
    }
    if (r.header("x-airbag-cache") == "hit") ++hits;
    std::lock_guard<std::mutex> lock(mu);
    auto [it, inserted] = first_body.emplace(key, r.body);
    if (!inserted && it->second != r.body) ++mismatched;
  });
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(mismatched.load(), 0) << "an entry was served for the wrong key, or torn";
  EXPECT_GT(hits.load(), 0);
  double bytes = metric("airbag_cache_bytes");
  EXPECT_GT(bytes, 0);
  EXPECT_LE(bytes, 48 * 1024);
  EXPECT_LT(metric("airbag_cache_entries"), kKeys) << "nothing was evicted";
}

TEST_F(WorkerStressTest, ReloadsDuringTrafficFromEveryWorker) {
  std::atomic<bool> done{false};
  std::atomic<int> bad{0}, answered{0};
  std::thread traffic([&] {
    // Bounded both ways: stops when the reloads are done, or after its own count.
    fromEveryWorker(airbag_->port(), 2000, [&](int client, int i, HttpClient& c) {
      if (done.load()) return;
      const char* paths[] = {"/predict", "/echo", "/v2/models/m/infer"};
      const char* path = paths[(client + i) % 3];
      Response r = c.request(path[1] == 'e' ? "GET" : "POST", path, {},
                             path[1] == 'e' ? "" : absl::StrCat("{\"k\":", i % 10, "}"));
      ++answered;
      if (r.status != 200 && r.status != 429) ++bad;
    });
  });
  constexpr int kReloads = 20;
  int reloaded = 0;
  for (int n = 0; n < kReloads; ++n) {
    // Alternate the cache ttl and the bulkhead's queue timeout: each reload changes the routes.
    ASSERT_TRUE(airbag_
                    ->rewriteConfig(kConfig, vars(demo_->url(), n % 2 ? "3s" : "2s",
                                                  n % 2 ? "250ms" : "200ms"))
                    .ok());
    if (airbag_->admin("POST", "/reload").status == 200) ++reloaded;
    // Let some traffic run on the new snapshot before the next swap (bounded).
    int before = answered.load();
    pollUntil([&] { return answered.load() > before + 20; }, milliseconds(2000), milliseconds(1));
  }
  done = true;
  traffic.join();
  EXPECT_EQ(reloaded, kReloads);
  EXPECT_EQ(bad.load(), 0) << "of " << answered.load() << " answers during reloads";
  EXPECT_EQ(metric(R"(airbag_config_reloads_total{result="success"})"), kReloads);
}

}  // namespace
}  // namespace airbag::testing
