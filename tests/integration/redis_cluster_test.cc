// Integration: the shared cache tier on a three-master Redis Cluster made by
// the test from Debian's redis-server and `redis-cli --cluster create`. Two
// airbag processes share answers through it; then the slot of a cached key is
// moved to another master by hand (the steps of `redis-cli --cluster
// reshard`) while traffic runs: airbag follows ASK while the slot is mid-
// migration and MOVED once it has moved, the key keeps hitting, and no
// request fails.
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"
#include "tests/integration/redis_server.h"
#include "tests/integration/shared_cluster.h"

namespace airbag::testing {
namespace {

using ::testing::HasSubstr;

constexpr const char* kPath = kSharedClusterPath;

class RedisClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = RedisCluster::start(3);
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = *std::move(cluster);
    for (auto& n : nodes()) {
      auto id = n->cli({"CLUSTER", "MYID"});
      ASSERT_TRUE(id.ok()) << id.status();
      ids_.push_back(std::string(absl::StripAsciiWhitespace(*id)));
    }
    auto demo = DemoServer::start({{"--seed", "7"}});
    ASSERT_TRUE(demo.ok()) << demo.status();
    demo_ = *std::move(demo);
  }

  // One worker: one connection per node and one slot map, so what the map
  // says before a migration is what the next lookup meets.
  absl::StatusOr<std::unique_ptr<AirbagProcess>> startAirbag(int workers = 1) {
    return AirbagProcess::start(kSharedClusterConfig, {{"MODEL", demo_->url()},
                                                       {"REDIS", nodes()[0]->url()},
                                                       {"WORKERS", std::to_string(workers)},
                                                       {"SHARED", ""}});
  }

  std::vector<std::unique_ptr<RedisServer>>& nodes() { return cluster_->nodes(); }
  // Every airbag key in the cluster, and the index of the node holding it.
  std::map<std::string, int> keys() { return cluster_->keys("airbag:*"); }

  std::unique_ptr<RedisCluster> cluster_;
  std::vector<std::string> ids_;
  std::unique_ptr<DemoServer> demo_;
};

TEST_F(RedisClusterTest, AirbagsShareAnswersAndFollowASlotMigration) {
  constexpr int kKeys = 12;
  auto a = startAirbag(2);
  ASSERT_TRUE(a.ok()) << a.status();
  // Fill: a different answer per body, each written to the master of its
  // slot. Body 0 first, to know its key.
  std::string key;
  for (int i = 0; i < kKeys; ++i) {
    Response r = (*a)->fetch("POST", kPath, {}, inferBody(i));
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.header("x-airbag-cache"), "miss");
    if (i == 0) {
      ASSERT_TRUE(pollUntil([&] { return keys().size() == 1; }, scaled(milliseconds(5000))));
      key = keys().begin()->first;
    }
  }
  ASSERT_TRUE(pollUntil([&] { return keys().size() == kKeys; }, scaled(milliseconds(5000))))
      << keys().size();
  std::map<std::string, int> where = keys();
  std::set<int> masters_used;
  for (const auto& [k, n] : where) masters_used.insert(n);
  EXPECT_GE(masters_used.size(), 2u) << "the keys all landed on one master";
  EXPECT_EQ(demo_->stat("requests").value_or(-1), kKeys);

  // Three more airbags, each with an empty memory and the slot map as it is
  // now (learned on their first lookup, of body 1): they share a's answers.
  std::vector<std::unique_ptr<AirbagProcess>> fresh;
  for (int i = 0; i < 3; ++i) {
    auto p = startAirbag();
    ASSERT_TRUE(p.ok()) << p.status();
    Response r = p.value()->fetch("POST", kPath, {}, inferBody(1));
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.header("x-airbag-cache"), "hit");
    EXPECT_EQ(r.header("x-airbag-cache-tier"), "shared");
    fresh.push_back(*std::move(p));
  }
  EXPECT_EQ(demo_->stat("requests").value_or(-1), kKeys) << "a fresh airbag asked the model";

  // Bounded traffic through another airbag while the slot moves: new bodies
  // (a Redis miss, the model, a Redis write) and the filled ones.
  auto busy = startAirbag(2);
  ASSERT_TRUE(busy.ok()) << busy.status();
  std::atomic<bool> stop{false};
  std::atomic<int> sent{0}, failed{0};
  std::thread traffic([&] {
    HttpClient c;
    Stopwatch sw;
    for (int i = 0; i < 3000 && !stop.load() && sw.elapsed() < milliseconds(60000); ++i) {
      if (!c.connected() && !c.connect((*busy)->port()).ok()) {
        ++failed;
        continue;
      }
      Response r = c.request("POST", kPath, {}, inferBody(i % 2 == 0 ? 1000 + i : i % kKeys),
                             scaled(milliseconds(5000)));
      ++sent;
      if (r.status != 200) ++failed;
    }
  });

  // Move body 0's slot from its master to the next, as `redis-cli --cluster
  // reshard` would: mark it importing and migrating, move the key, then tell
  // every node the slot's new owner.
  auto slot_out = nodes()[0]->cli({"CLUSTER", "KEYSLOT", key});
  ASSERT_TRUE(slot_out.ok()) << slot_out.status();
  const std::string slot(absl::StripAsciiWhitespace(*slot_out));
  const int from = where[key];
  const int to = (from + 1) % 3;
  auto run = [&](int node, std::vector<std::string> args) {
    auto out = nodes()[node]->cli(std::move(args));
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_THAT(*out, HasSubstr("OK"));
  };
  run(to, {"CLUSTER", "SETSLOT", slot, "IMPORTING", ids_[from]});
  run(from, {"CLUSTER", "SETSLOT", slot, "MIGRATING", ids_[to]});
  run(from,
      {"MIGRATE", "127.0.0.1", std::to_string(nodes()[to]->port()), "", "0", "5000", "KEYS", key});
  ASSERT_EQ(keys()[key], to);

  // Mid-migration: the old master answers ASK for the key it no longer has.
  Response ask = fresh[0]->fetch("POST", kPath, {}, inferBody(0));
  ASSERT_EQ(ask.status, 200) << ask.body;
  EXPECT_EQ(ask.header("x-airbag-cache"), "hit");
  EXPECT_EQ(ask.header("x-airbag-cache-tier"), "shared");

  for (int n = 0; n < 3; ++n) run(n, {"CLUSTER", "SETSLOT", slot, "NODE", ids_[to]});
  // Moved: the old master answers MOVED; the airbag that still maps the slot
  // to it follows, and so does the one that followed ASK before.
  for (int i : {1, 2}) {
    Response moved = fresh[i]->fetch("POST", kPath, {}, inferBody(0));
    ASSERT_EQ(moved.status, 200) << moved.body;
    EXPECT_EQ(moved.header("x-airbag-cache"), "hit") << i;
    EXPECT_EQ(moved.header("x-airbag-cache-tier"), "shared") << i;
  }
  Response again = fresh[0]->fetch("POST", kPath, {}, inferBody(0));
  EXPECT_EQ(again.header("x-airbag-cache"), "hit");

  // Let the traffic meet the moved slot too, then stop it.
  ASSERT_TRUE(pollUntil([&] { return sent.load() >= 200; }, scaled(milliseconds(30000))));
  stop = true;
  traffic.join();
  EXPECT_EQ(failed.load(), 0) << "of " << sent.load();
  // Body 0 was never asked of the model again, by any airbag.
  for (auto* p : {fresh[0].get(), fresh[1].get(), fresh[2].get()})
    EXPECT_EQ(p->metric(R"(airbag_shared_cache_lookups_total{route="shared",result="error"})")
                  .value_or(0),
              0);
}

}  // namespace
}  // namespace airbag::testing
