// Integration: POST /cache/purge empties the shared (Redis) tier of the route
// it names, on the real binary with a real redis-server on loopback: the
// route's keys go, a route whose name it prefixes keeps its own, and the
// purged route calls the model again; on a three-master Redis Cluster every
// master is purged; with Redis down the answer says so at once.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"
#include "tests/integration/redis_server.h"
#include "tests/integration/shared_cluster.h"

namespace airbag::testing {
namespace {

using ::testing::AnyOf;
using ::testing::HasSubstr;
using Json = nlohmann::json;

// Route `ab`'s name starts with route `a`'s: a purge of `a` must leave it.
constexpr char kConfig[] = R"(
listen: { address: ${LISTEN}, workers: 2 }
admin: { address: ${ADMIN} }
log: { level: warn, access_log: off }
cache:
  shared: { redis: ${REDIS}, cluster: ${CLUSTER}, timeout: 200ms }
upstreams:
  model: { url: ${MODEL}, connect_timeout: 200ms }
routes:
  - name: a
    match: { path: /v2/models/a/infer }
    upstream: model
    cache: { ttl: 60s, shared: true }
  - name: ab
    match: { path: /v2/models/ab/infer }
    upstream: model
    cache: { ttl: 60s, shared: true }
  - name: local
    match: { path: /v2/models/local/infer }
    upstream: model
    cache: { ttl: 60s }
)";

std::string path(std::string_view route) { return "/v2/models/" + std::string(route) + "/infer"; }

class SharedCachePurgeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto demo = DemoServer::start({{"--seed", "7"}});
    ASSERT_TRUE(demo.ok()) << demo.status();
    demo_ = *std::move(demo);
  }

  absl::StatusOr<std::unique_ptr<AirbagProcess>> startAirbag(const std::string& redis_url,
                                                             bool cluster) {
    return AirbagProcess::start(kConfig, {{"MODEL", demo_->url()},
                                          {"REDIS", redis_url},
                                          {"CLUSTER", cluster ? "true" : "false"}});
  }

  // `n` different answers of each route through `airbag`, each a model call.
  void fill(AirbagProcess& airbag, std::string_view route, int n) {
    for (int i = 0; i < n; ++i) {
      Response r = airbag.fetch("POST", path(route), {}, inferBody(i));
      ASSERT_EQ(r.status, 200) << r.body;
      EXPECT_EQ(r.header("x-airbag-cache"), "miss");
    }
  }

  // The keys of `route` on each of `nodes`, counted.
  static size_t count(const std::vector<RedisServer*>& nodes, std::string_view route) {
    size_t n = 0;
    for (RedisServer* node : nodes) n += node->scan("airbag:" + std::string(route) + ":*").size();
    return n;
  }

  std::unique_ptr<DemoServer> demo_;
};

TEST_F(SharedCachePurgeTest, PurgesTheRoutesKeysAndNoOtherRoutes) {
  auto redis = RedisServer::start();
  ASSERT_TRUE(redis.ok()) << redis.status();
  std::vector<RedisServer*> nodes = {redis->get()};
  auto a = startAirbag((*redis)->url(), false);
  ASSERT_TRUE(a.ok()) << a.status();
  fill(**a, "a", 5);
  fill(**a, "ab", 4);
  // The writes are asynchronous: wait for them to show in Redis.
  ASSERT_TRUE(pollUntil([&] { return count(nodes, "a") == 5 && count(nodes, "ab") == 4; },
                        milliseconds(5000)));
  const int64_t calls = demo_->stat("requests").value_or(-1);

  Response purged = (*a)->admin("POST", "/cache/purge", R"({"route":"a"})");
  ASSERT_EQ(purged.status, 200) << purged.body;
  EXPECT_EQ(purged.json(), (Json{{"purged", "a"},
                                 {"shared", {{"purged", 5}, {"complete", true}, {"nodes", 1}}}}));
  EXPECT_EQ(count(nodes, "a"), 0u);
  EXPECT_EQ(count(nodes, "ab"), 4u) << "the purge of route a took route ab's keys";
  EXPECT_EQ((*a)->metric("airbag_shared_cache_purged_total").value_or(-1), 5);

  // Route a asks the model again; route ab still hits, in memory and, for a
  // fresh airbag, in Redis.
  Response again = (*a)->fetch("POST", path("a"), {}, inferBody(1));
  EXPECT_EQ(again.header("x-airbag-cache"), "miss");
  EXPECT_EQ(demo_->stat("requests").value_or(-1), calls + 1);
  auto b = startAirbag((*redis)->url(), false);
  ASSERT_TRUE(b.ok()) << b.status();
  Response ab = (*b)->fetch("POST", path("ab"), {}, inferBody(2));
  EXPECT_EQ(ab.header("x-airbag-cache"), "hit");
  EXPECT_EQ(ab.header("x-airbag-cache-tier"), "shared");
  Response other = (*b)->fetch("POST", path("a"), {}, inferBody(3));
  EXPECT_EQ(other.header("x-airbag-cache"), "miss") << "route a's entry survived in Redis";
  EXPECT_EQ(demo_->stat("requests").value_or(-1), calls + 2);

  // A route outside the shared tier: memory only, answered as before.
  Response local = (*b)->admin("POST", "/cache/purge", R"({"route":"local"})");
  EXPECT_EQ(local.status, 200);
  EXPECT_EQ(local.json(), (Json{{"purged", "local"}}));

  // Every route: what is left of a (the two refilled) and all of ab.
  ASSERT_TRUE(pollUntil([&] { return count(nodes, "a") == 2; }, milliseconds(5000)));
  Response all = (*b)->admin("POST", "/cache/purge");
  ASSERT_EQ(all.status, 200) << all.body;
  EXPECT_EQ(all.json()["purged"], "all");
  EXPECT_EQ(all.json()["shared"]["purged"], 6);
  EXPECT_EQ(all.json()["shared"]["complete"], true);
  EXPECT_TRUE((*redis)->scan("airbag:*").empty());
}

TEST_F(SharedCachePurgeTest, ARedisThatIsDownIsAClearAnswerNotAWait) {
  auto redis = RedisServer::start();
  ASSERT_TRUE(redis.ok()) << redis.status();
  auto a = startAirbag((*redis)->url(), false);
  ASSERT_TRUE(a.ok()) << a.status();
  fill(**a, "a", 2);
  (*redis)->kill();

  // Asked twice: first the refused connection, then (after more failures)
  // perhaps the open breaker; either way an error named in the answer, the
  // memory purged, and no wait for the admin's own 5 s bound (that is 504).
  for (int i = 0; i < 2; ++i) {
    Response r = (*a)->admin("POST", "/cache/purge", R"({"route":"a"})");
    EXPECT_EQ(r.status, 502) << r.body;
    EXPECT_EQ(r.json()["purged"], "a");
    EXPECT_EQ(r.json()["shared"]["complete"], false);
    EXPECT_THAT(r.json()["shared"]["error"].get<std::string>(),
                AnyOf(HasSubstr("connection failed"), HasSubstr("breaker is open")));
    EXPECT_THAT(r.json()["shared"]["error"].get<std::string>(), HasSubstr((*redis)->url()));
  }
  EXPECT_EQ((*a)->metric(R"(airbag_shared_cache_errors_total{op="purge"})").value_or(-1), 2);
  // The local tier was purged all the same: the model is asked again (and
  // still answers, Redis or not).
  const int64_t calls = demo_->stat("requests").value_or(-1);
  Response again = (*a)->fetch("POST", path("a"), {}, inferBody(0));
  EXPECT_EQ(again.status, 200);
  EXPECT_EQ(again.header("x-airbag-cache"), "miss");
  EXPECT_EQ(demo_->stat("requests").value_or(-1), calls + 1);
}

TEST_F(SharedCachePurgeTest, OnAClusterEveryMasterIsPurged) {
  auto cluster = RedisCluster::start(3);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  std::vector<RedisServer*> nodes;
  for (auto& n : (*cluster)->nodes()) nodes.push_back(n.get());
  auto a = startAirbag(nodes[0]->url(), true);
  ASSERT_TRUE(a.ok()) << a.status();
  constexpr int kKeys = 12;
  fill(**a, "a", kKeys);
  fill(**a, "ab", 6);
  ASSERT_TRUE(pollUntil([&] { return count(nodes, "a") == kKeys && count(nodes, "ab") == 6; },
                        milliseconds(5000)));
  size_t masters_with_a = 0;
  for (RedisServer* n : nodes) masters_with_a += count({n}, "a") > 0;
  EXPECT_GE(masters_with_a, 2u) << "the keys all landed on one master";

  Response purged = (*a)->admin("POST", "/cache/purge", R"({"route":"a"})");
  ASSERT_EQ(purged.status, 200) << purged.body;
  EXPECT_EQ(purged.json()["shared"],
            (Json{{"purged", kKeys}, {"complete", true}, {"nodes", 3}}));
  for (RedisServer* n : nodes) EXPECT_EQ(count({n}, "a"), 0u) << n->url();
  EXPECT_EQ(count(nodes, "ab"), 6u);

  const int64_t calls = demo_->stat("requests").value_or(-1);
  Response again = (*a)->fetch("POST", path("a"), {}, inferBody(4));
  EXPECT_EQ(again.header("x-airbag-cache"), "miss");
  EXPECT_EQ(demo_->stat("requests").value_or(-1), calls + 1);
}

}  // namespace
}  // namespace airbag::testing
