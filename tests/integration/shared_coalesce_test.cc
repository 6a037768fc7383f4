// Integration: coalescing across pods (cache.shared.coalesce) on the real
// binary with a real redis-server on loopback and a slow model: concurrent
// identical requests split over two airbag processes cost the model one
// call; an airbag killed while it holds the fill lock stalls the other no
// longer than coalesce_wait, after which it calls the model itself.
#include <atomic>
#include <csignal>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"
#include "tests/integration/redis_server.h"

namespace airbag::testing {
namespace {

constexpr char kConfig[] = R"(
listen: { address: ${LISTEN}, workers: 2 }
admin: { address: ${ADMIN} }
log: { level: warn, access_log: off }
cache:
  shared: { redis: ${REDIS}, timeout: 200ms, coalesce: true, coalesce_wait: ${WAIT} }
upstreams:
  model: { url: ${MODEL}, connect_timeout: 500ms }
routes:
  - name: fill
    match: { path: /v2/models/fill/infer }
    upstream: model
    timeout: { total: 20s }
    cache: { ttl: 30s, shared: true }
)";

constexpr char kInfer[] = R"({"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]})";
constexpr char kPath[] = "/v2/models/fill/infer";

class SharedCoalesceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto redis = RedisServer::start();
    ASSERT_TRUE(redis.ok()) << redis.status();
    redis_ = *std::move(redis);
    auto demo = DemoServer::start({{"--seed", "7"}});
    ASSERT_TRUE(demo.ok()) << demo.status();
    demo_ = *std::move(demo);
  }

  absl::StatusOr<std::unique_ptr<AirbagProcess>> startAirbag(const std::string& wait) {
    return AirbagProcess::start(
        kConfig, {{"MODEL", demo_->url()}, {"REDIS", redis_->url()}, {"WAIT", wait}});
  }

  static double coalesce(AirbagProcess& a, const std::string& outcome) {
    return a.metric(R"(airbag_shared_cache_coalesce_total{route="fill",outcome=")" + outcome +
                    "\"}")
        .value_or(0);
  }

  int64_t modelCalls() { return demo_->stat("requests").value_or(-1); }

  std::unique_ptr<RedisServer> redis_;
  std::unique_ptr<DemoServer> demo_;
};

TEST_F(SharedCoalesceTest, ConcurrentIdenticalRequestsOnTwoAirbagsCallTheModelOnce) {
  // The model is slow enough that every request arrives while the first
  // one's call is still out; the wait covers that call with room to spare.
  ASSERT_TRUE(demo_->setBehavior({{"latency_ms", 1500}}).ok());
  auto a = startAirbag("5s");
  ASSERT_TRUE(a.ok()) << a.status();
  auto b = startAirbag("5s");
  ASSERT_TRUE(b.ok()) << b.status();

  constexpr int kClients = 8;
  std::vector<Response> answers(kClients);
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i) {
    int port = (i % 2 == 0 ? *a : *b)->port();
    clients.emplace_back([&answers, i, port] {
      answers[i] = fetch(port, "POST", kPath, {}, kInfer, scaled(milliseconds(15000)));
    });
  }
  for (std::thread& t : clients) t.join();

  for (int i = 0; i < kClients; ++i) {
    ASSERT_EQ(answers[i].status, 200) << i << ": " << answers[i].body;
    EXPECT_EQ(answers[i].body, answers[0].body) << i;
  }
  EXPECT_EQ(modelCalls(), 1) << "the model was called more than once for one key";
  // One pod took the lock; the other waited for its answer in Redis (one
  // request per process polls, the rest wait behind it locally).
  double taken = coalesce(**a, "lock_taken") + coalesce(**b, "lock_taken");
  double waited = coalesce(**a, "waited_hit") + coalesce(**b, "waited_hit");
  EXPECT_EQ(taken, 1);
  EXPECT_EQ(waited, 1);
  EXPECT_EQ(coalesce(**a, "wait_timeout") + coalesce(**b, "wait_timeout"), 0);
  // The holder gave the lock back once its answer was written.
  ASSERT_TRUE(pollUntil(
      [&] {
        auto n = redis_->cli({"--scan", "--pattern", "airbag:*:lock"});
        return n.ok() && n->empty();
      },
      scaled(milliseconds(5000))));
}

TEST_F(SharedCoalesceTest, AHolderKilledMidFillStallsTheOtherNoLongerThanTheWait) {
  constexpr int kWaitMs = 1500;
  constexpr int kModelMs = 400;
  ASSERT_TRUE(demo_->setBehavior({{"latency_ms", kModelMs}}).ok());
  auto a = startAirbag(std::to_string(kWaitMs) + "ms");
  ASSERT_TRUE(a.ok()) << a.status();
  auto b = startAirbag(std::to_string(kWaitMs) + "ms");
  ASSERT_TRUE(b.ok()) << b.status();

  // a takes the lock and calls the model; it dies before answering.
  int a_port = (*a)->port();
  std::thread doomed(
      [a_port] { fetch(a_port, "POST", kPath, {}, kInfer, scaled(milliseconds(5000))); });
  bool called = pollUntil([&] { return modelCalls() == 1; }, scaled(milliseconds(5000)));
  if (called) (*a)->process().kill();
  doomed.join();
  ASSERT_TRUE(called) << "the first airbag never called the model";

  Stopwatch sw;
  Response r = (*b)->fetch("POST", kPath, {}, kInfer, scaled(milliseconds(15000)));
  auto took = std::chrono::duration_cast<milliseconds>(sw.elapsed()).count();
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("x-airbag-source"), "upstream");
  EXPECT_EQ(modelCalls(), 2);
  EXPECT_EQ(coalesce(**b, "wait_timeout"), 1) << "b did not wait on a's lock";
  EXPECT_EQ(coalesce(**b, "lock_taken"), 0);
  std::printf("holder killed: the other answered in %lld ms (wait %d ms, model %d ms)\n",
              static_cast<long long>(took), kWaitMs, kModelMs);
  // The wait, then one model call; generous slack for a busy machine.
  EXPECT_LT(took, kWaitMs + kModelMs + 1500);
  EXPECT_GE(took, kModelMs);
}

TEST_F(SharedCoalesceTest, WithRedisGoneEveryRequestGoesStraightToTheModel) {
  auto a = startAirbag("2s");
  ASSERT_TRUE(a.ok()) << a.status();
  redis_->kill();
  for (int i = 0; i < 10; ++i) {
    std::string body = R"({"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[)" +
                       std::to_string(i) + "]}]}";
    Stopwatch sw;
    Response r = (*a)->fetch("POST", kPath, {}, body);
    auto took = std::chrono::duration_cast<milliseconds>(sw.elapsed()).count();
    ASSERT_EQ(r.status, 200) << r.body;
    // No wait for a lock nobody can hold: far below the 2 s coalesce_wait.
    EXPECT_LT(took, 1000) << i;
  }
  EXPECT_EQ(modelCalls(), 10);
  EXPECT_EQ(coalesce(**a, "wait_timeout"), 0);
  EXPECT_EQ(coalesce(**a, "waited_hit"), 0);
}

}  // namespace
}  // namespace airbag::testing
