// Integration: the shared (Redis) cache tier on the real binary with a real
// redis-server on loopback: two airbag processes share answers; a restarted
// airbag serves stale from Redis while the model is down; Redis killed,
// paused and restarted under a bounded load costs no failed request and no
// request much slower than the Redis timeout; a damaged value is a miss.
#include <algorithm>
#include <chrono>
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

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kConfig[] = R"(
listen: { address: ${LISTEN}, workers: 2 }
admin: { address: ${ADMIN} }
log: { level: warn, access_log: off }
cache:
  shared: { redis: ${REDIS}, password_file: ${PASSWORD_FILE}, timeout: ${TIMEOUT} }
upstreams:
  model: { url: ${MODEL}, connect_timeout: 200ms }
routes:
  - name: shared
    match: { path: /v2/models/shared/infer }
    upstream: model
    cache: { ttl: 30s, stale_if_error: 1h, shared: true }
  - name: stale
    match: { path: /v2/models/stale/infer }
    upstream: model
    cache: { ttl: 200ms, stale_if_error: 1h, shared: true }
    fallback:
      - respond: { status: 200, json: { degraded: true } }
  - name: local
    match: { path: /v2/models/local/infer }
    upstream: model
    cache: { ttl: 30s }
)";

constexpr char kInfer[] = R"({"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]})";
constexpr char kPassword[] = "fleet-secret";

class SharedCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RedisServer::Options options;
    options.password = kPassword;
    auto redis = RedisServer::start(options);
    ASSERT_TRUE(redis.ok()) << redis.status();
    redis_ = *std::move(redis);
    auto demo = DemoServer::start({{"--seed", "7"}});
    ASSERT_TRUE(demo.ok()) << demo.status();
    demo_ = *std::move(demo);
    auto dir = TempDir::create("airbag-shared");
    ASSERT_TRUE(dir.ok());
    dir_ = *std::move(dir);
    auto pw = dir_->write("redis-password", std::string(kPassword) + "\n");
    ASSERT_TRUE(pw.ok());
    password_file_ = pw->string();
  }

  absl::StatusOr<std::unique_ptr<AirbagProcess>> startAirbag(std::string timeout = "50ms") {
    return AirbagProcess::start(kConfig, {{"MODEL", demo_->url()},
                                          {"REDIS", redis_->url()},
                                          {"PASSWORD_FILE", password_file_},
                                          {"TIMEOUT", timeout}});
  }

  // The Redis keys airbag wrote so far.
  std::vector<std::string> keys() {
    auto out = redis_->cli({"--scan", "--pattern", "airbag:*"});
    std::vector<std::string> k;
    if (!out.ok()) return k;
    size_t start = 0;
    while (start < out->size()) {
      size_t nl = out->find('\n', start);
      if (nl == std::string::npos) nl = out->size();
      if (nl > start) k.push_back(out->substr(start, nl - start));
      start = nl + 1;
    }
    return k;
  }

  std::unique_ptr<RedisServer> redis_;
  std::unique_ptr<DemoServer> demo_;
  std::unique_ptr<TempDir> dir_;
  std::string password_file_;
};

TEST_F(SharedCacheTest, TwoAirbagsShareAnswers) {
  auto a = startAirbag();
  ASSERT_TRUE(a.ok()) << a.status();
  auto b = startAirbag();
  ASSERT_TRUE(b.ok()) << b.status();
  const std::string path = "/v2/models/shared/infer";

  Response filled = (*a)->fetch("POST", path, {}, kInfer);
  ASSERT_EQ(filled.status, 200) << filled.body;
  EXPECT_EQ(filled.header("x-airbag-cache"), "miss");
  EXPECT_EQ(demo_->stat("requests").value_or(-1), 1);
  // The write is asynchronous: wait for the key to show in Redis.
  ASSERT_TRUE(pollUntil([&] { return keys().size() == 1; }, scaled(milliseconds(5000))));
  EXPECT_THAT(keys()[0], HasSubstr("airbag:shared:"));

  Response shared = (*b)->fetch("POST", path, {}, kInfer);
  ASSERT_EQ(shared.status, 200);
  EXPECT_EQ(shared.header("x-airbag-cache"), "hit");
  EXPECT_EQ(shared.header("x-airbag-cache-tier"), "shared");
  EXPECT_EQ(shared.header("x-airbag-source"), "cache");
  EXPECT_EQ(shared.body, filled.body);
  EXPECT_EQ(demo_->stat("requests").value_or(-1), 1) << "the second airbag called the model";

  // Kept locally now: the same worker or another of b answers from memory
  // or from Redis, never from the model.
  for (int i = 0; i < 4; ++i) {
    Response again = (*b)->fetch("POST", path, {}, kInfer);
    EXPECT_EQ(again.header("x-airbag-cache"), "hit");
    EXPECT_THAT(again.header("x-airbag-cache-tier"), ::testing::AnyOf("local", "shared"));
  }
  EXPECT_EQ(demo_->stat("requests").value_or(-1), 1);
  EXPECT_GE((*b)->metric(R"(airbag_shared_cache_lookups_total{route="shared",result="hit"})")
                .value_or(0),
            1);

  // GET /routes/{name} shows the tier and its breaker.
  Response route = (*b)->admin("GET", "/routes/shared");
  ASSERT_EQ(route.status, 200) << route.body;
  nlohmann::json shared_state = route.json()["state"]["cache"]["shared"];
  EXPECT_EQ(shared_state["redis"], redis_->url());
  EXPECT_EQ(shared_state["breaker"], "closed");
  Response local_route = (*b)->admin("GET", "/routes/local");
  EXPECT_FALSE(local_route.json()["state"]["cache"].contains("shared"));

  // A route without shared: true neither writes to nor reads from Redis,
  // and its hits carry no tier header.
  Response local = (*a)->fetch("POST", "/v2/models/local/infer", {}, kInfer);
  ASSERT_EQ(local.status, 200);
  Response local_hit = (*a)->fetch("POST", "/v2/models/local/infer", {}, kInfer);
  EXPECT_EQ(local_hit.header("x-airbag-cache"), "hit");
  EXPECT_FALSE(local_hit.headers.has("x-airbag-cache-tier"));
  EXPECT_EQ(keys().size(), 1u);
}

TEST_F(SharedCacheTest, ARestartedAirbagServesStaleFromRedisWhileTheModelIsDown) {
  const std::string path = "/v2/models/stale/infer";
  Stopwatch since_stored;
  std::string original;
  {
    auto a = startAirbag();
    ASSERT_TRUE(a.ok()) << a.status();
    Response filled = (*a)->fetch("POST", path, {}, kInfer);
    ASSERT_EQ(filled.status, 200);
    original = filled.body;
    since_stored.reset();
    ASSERT_TRUE(pollUntil([&] { return keys().size() == 1; }, scaled(milliseconds(5000))));
  }  // the pod is gone, and its memory with it
  ASSERT_TRUE(demo_->setBehavior({{"error_rate", 1.0}}).ok());
  auto fresh = startAirbag();
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  // Waiting for time itself: the 200 ms ttl must be over, so that only
  // stale_if_error can serve the entry.
  auto left = milliseconds(400) - since_stored.elapsed();
  if (left > SteadyClock::duration::zero()) std::this_thread::sleep_for(left);
  // The new pod has nothing in memory and the model fails: the answer comes
  // from Redis, served stale.
  Response stale = (*fresh)->fetch("POST", path, {}, kInfer);
  ASSERT_EQ(stale.status, 200) << stale.body;
  EXPECT_EQ(stale.header("x-airbag-source"), "stale");
  EXPECT_EQ(stale.header("x-airbag-cache"), "stale");
  EXPECT_EQ(stale.header("x-airbag-cache-tier"), "shared");
  EXPECT_EQ(stale.body, original);
  EXPECT_THAT(stale.body, Not(HasSubstr("degraded")));
}

TEST_F(SharedCacheTest, ADamagedValueInRedisIsAMiss) {
  auto a = startAirbag();
  ASSERT_TRUE(a.ok()) << a.status();
  const std::string path = "/v2/models/shared/infer";
  ASSERT_EQ((*a)->fetch("POST", path, {}, kInfer).status, 200);
  ASSERT_TRUE(pollUntil([&] { return keys().size() == 1; }, scaled(milliseconds(5000))));
  std::string key = keys()[0];
  ASSERT_TRUE(redis_->cli({"SET", key, "AB\x01garbage that is not an entry"}).ok());

  auto b = startAirbag();  // empty memory: it must ask Redis
  ASSERT_TRUE(b.ok()) << b.status();
  Response r = (*b)->fetch("POST", path, {}, kInfer);
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.header("x-airbag-cache"), "miss");
  EXPECT_EQ(r.header("x-airbag-source"), "upstream");
  EXPECT_EQ(demo_->stat("requests").value_or(-1), 2);
  EXPECT_EQ((*b)->metric(R"(airbag_shared_cache_lookups_total{route="shared",result="error"})")
                .value_or(0),
            1);
  EXPECT_TRUE((*b)->process().running());
}

// Redis goes away three ways while clients keep asking: every request is
// answered, none waits much past the lookup timeout. Each request asks for a
// key of its own, so every one of them consults Redis.
TEST_F(SharedCacheTest, RedisKilledPausedAndRestartedUnderLoadFailsNoRequest) {
  constexpr int kTimeoutMs = 20;
  auto a = startAirbag(std::to_string(kTimeoutMs) + "ms");
  ASSERT_TRUE(a.ok()) << a.status();
  HttpClient c;
  ASSERT_TRUE(c.connect((*a)->port()).ok());
  int n = 0, failed = 0;
  SteadyClock::duration worst{};
  // One request after another on one connection; the slowest is kept (the demo model answers
  // in about a millisecond, so nearly all of it is what Redis added).
  auto load = [&](int count) {
    for (int i = 0; i < count; ++i, ++n) {
      std::string body = R"({"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[)" +
                         std::to_string(n) + "]}]}";
      Stopwatch sw;
      Response r =
          c.request("POST", "/v2/models/shared/infer", {}, body, scaled(milliseconds(5000)));
      worst = std::max(worst, sw.elapsed());
      if (r.status != 200) ++failed;
      if (!c.connected() || r.status == 0) {
        ASSERT_TRUE(c.connect((*a)->port()).ok());
      }
    }
  };
  load(50);
  redis_->kill();
  load(50);
  ASSERT_TRUE(redis_->restart().ok());
  // Back: once the breaker lets lookups through again, they miss (not skip).
  auto misses = [&] {
    return (*a)->metric(R"(airbag_shared_cache_lookups_total{route="shared",result="miss"})")
        .value_or(0);
  };
  double before = misses();
  ASSERT_TRUE(pollUntil(
      [&] {
        load(1);
        return misses() > before;
      },
      scaled(milliseconds(40000)), milliseconds(50)));
  // Paused: DEBUG SLEEP holds Redis while lookups time out.
  auto get_errors = [&] {
    return (*a)->metric(R"(airbag_shared_cache_errors_total{op="get"})").value_or(0);
  };
  double errors_before = get_errors();
  // Long enough for a load of a few requests to reach it in a slow (sanitizer) build.
  constexpr int kSleepSeconds = kSanitizerSlowdown > 1 ? 2 : 1;
  auto sleeper = Process::spawn({"redis-cli", "-h", "127.0.0.1", "-p",
                                 std::to_string(redis_->port()), "--no-auth-warning", "-a",
                                 kPassword, "DEBUG", "SLEEP", std::to_string(kSleepSeconds)});
  ASSERT_TRUE(sleeper.ok());
  // Load until lookups have timed out on the sleeping Redis, then some more.
  EXPECT_TRUE(pollUntil(
      [&] {
        load(5);
        return get_errors() > errors_before;
      },
      milliseconds(kSleepSeconds * 1000 - 100), milliseconds(1)))
      << "no lookup waited on the paused Redis";
  load(50);
  ASSERT_TRUE((*sleeper)->waitExit(scaled(milliseconds(10000))).has_value());
  load(50);
  EXPECT_EQ(failed, 0);
  auto worst_ms = std::chrono::duration_cast<milliseconds>(worst).count();
  std::printf("shared cache outage: %d requests, slowest %lld ms (lookup timeout %d ms)\n", n,
              static_cast<long long>(worst_ms), kTimeoutMs);
  // The model answers in about a millisecond; a lookup that outlived its
  // timeout by much would show here. Generous for a busy machine.
  EXPECT_LT(worst_ms, kTimeoutMs + 10 + 200);
}

}  // namespace
}  // namespace airbag::testing
