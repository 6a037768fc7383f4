// Integration: the shared cache tier on a three-master Redis Cluster over TLS (rediss://, the
// nodes' bus and replication on TLS too), made by the test from Debian's redis-server with a
// throwaway CA. The cluster's one certificate is a wildcard for *.redis.test, and no node is
// announced by that name (they are 127.0.0.1): every node is checked against the seed's name
// (tls.sni). Two airbags share answers through it, with keys on more than one master; a CA that
// did not sign the certificate is a miss for every lookup and never a failed request; a node
// whose certificate names another host is refused; POST /cache/purge empties every master.
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"
#include "tests/integration/redis_server.h"
#include "tests/integration/shared_cluster.h"
#include "tests/integration/tls_certs.h"

namespace airbag::testing {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::json;

constexpr const char* kPath = kSharedClusterPath;
constexpr int kKeys = 12;

class RedisClusterTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    certs_ = Certs::makeCa();
    ASSERT_NE(certs_, nullptr);
    ASSERT_TRUE(certs_->leaf("redis", "DNS:*.redis.test", 1));
    auto demo = DemoServer::start({{"--seed", "7"}});
    ASSERT_TRUE(demo.ok()) << demo.status();
    demo_ = *std::move(demo);
  }

  // Three TLS masters, each with the leaf named in `leaves` (all signed by the one CA).
  void startCluster(const std::vector<std::string>& leaves = {"redis", "redis", "redis"}) {
    std::vector<RedisServer::Options> nodes;
    for (const std::string& leaf : leaves)
      nodes.push_back(RedisServer::Options::tls(*certs_, leaf));
    auto cluster = RedisCluster::start(std::move(nodes));
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = *std::move(cluster);
  }

  absl::StatusOr<std::unique_ptr<AirbagProcess>> startAirbag(const std::string& ca,
                                                             int workers = 1) {
    return AirbagProcess::start(kSharedClusterConfig,
                                {{"MODEL", demo_->url()},
                                 {"REDIS", cluster_->nodes()[0]->url()},
                                 {"WORKERS", std::to_string(workers)},
                                 {"SHARED", ", tls: { ca: " + ca + ", sni: cluster.redis.test }"}});
  }

  // `kKeys` different answers through `airbag`, each a model call; their bodies.
  std::vector<std::string> fill(AirbagProcess& airbag) {
    std::vector<std::string> bodies;
    for (int i = 0; i < kKeys; ++i) {
      Response r = airbag.fetch("POST", kPath, {}, inferBody(i));
      EXPECT_EQ(r.status, 200) << r.body;
      EXPECT_EQ(r.header("x-airbag-cache"), "miss");
      bodies.push_back(r.body);
    }
    return bodies;
  }

  // How many masters hold at least one airbag key.
  size_t mastersUsed() {
    std::set<int> used;
    for (const auto& [key, node] : cluster_->keys("airbag:*")) used.insert(node);
    return used.size();
  }

  std::unique_ptr<Certs> certs_;
  std::unique_ptr<RedisCluster> cluster_;
  std::unique_ptr<DemoServer> demo_;
};

TEST_F(RedisClusterTlsTest, TwoAirbagsShareAnswersThroughATlsCluster) {
  ASSERT_NO_FATAL_FAILURE(startCluster());
  ASSERT_EQ(cluster_->nodes()[0]->url().rfind("rediss://", 0), 0u);
  // The map a TLS client is given names each node's TLS port (there is no plain one).
  auto slots = cluster_->nodes()[0]->cli({"CLUSTER", "SLOTS"});
  ASSERT_TRUE(slots.ok()) << slots.status();
  for (auto& n : cluster_->nodes()) EXPECT_THAT(*slots, HasSubstr(std::to_string(n->port())));

  auto a = startAirbag(certs_->path("ca.pem"), 2);
  ASSERT_TRUE(a.ok()) << a.status();
  std::vector<std::string> answers = fill(**a);
  // The writes are asynchronous: wait for them to show, each on the master of its slot.
  ASSERT_TRUE(pollUntil([&] { return cluster_->keys("airbag:*").size() == kKeys; },
                        scaled(milliseconds(5000))))
      << cluster_->keys("airbag:*").size();
  EXPECT_GE(mastersUsed(), 2u) << "the keys all landed on one master";
  EXPECT_EQ(demo_->stat("requests").value_or(-1), kKeys);

  // A second airbag, its memory empty: every answer comes from the cluster, over TLS.
  auto b = startAirbag(certs_->path("ca.pem"));
  ASSERT_TRUE(b.ok()) << b.status();
  for (int i = 0; i < kKeys; ++i) {
    Response r = (*b)->fetch("POST", kPath, {}, inferBody(i));
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.header("x-airbag-cache"), "hit") << i;
    EXPECT_EQ(r.header("x-airbag-cache-tier"), "shared") << i;
    EXPECT_EQ(r.body, answers[i]) << i;
  }
  EXPECT_EQ(demo_->stat("requests").value_or(-1), kKeys) << "the second airbag asked the model";
  EXPECT_TRUE((*b)->process().waitForLine("3 masters serve 16384 of 16384 slots",
                                          scaled(milliseconds(5000))));
  EXPECT_EQ((*b)->metric(R"(airbag_shared_cache_lookups_total{route="shared",result="error"})")
                .value_or(0),
            0);
}

TEST_F(RedisClusterTlsTest, AWrongCaIsAMissForEveryLookupNeverAFailedRequest) {
  ASSERT_NO_FATAL_FAILURE(startCluster());
  auto other = Certs::makeCa("another-ca");
  ASSERT_NE(other, nullptr);
  auto a = startAirbag(other->path("ca.pem"));
  ASSERT_TRUE(a.ok()) << a.status();
  for (int i = 0; i < kKeys; ++i) {
    Response r = (*a)->fetch("POST", kPath, {}, inferBody(i));
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.header("x-airbag-source"), "upstream");
    EXPECT_EQ(r.header("x-airbag-cache"), "miss");
  }
  EXPECT_EQ(demo_->stat("requests").value_or(-1), kKeys);
  auto line = (*a)->process().waitForLine("certificate verify failed", scaled(milliseconds(5000)));
  ASSERT_TRUE(line.has_value());
  EXPECT_THAT(*line, HasSubstr("shared cache"));
  EXPECT_EQ(
      (*a)->metric(R"(airbag_shared_cache_lookups_total{route="shared",result="hit"})").value_or(0),
      0);
  EXPECT_TRUE(cluster_->keys("airbag:*").empty())
      << "airbag wrote through a connection it should have refused";
}

TEST_F(RedisClusterTlsTest, ANodeWhoseCertificateNamesAnotherHostIsRefused) {
  // The third master's certificate is signed by the same CA, for another name: the cluster
  // forms (its bus checks the CA only), but airbag checks that node against the seed's name.
  ASSERT_TRUE(certs_->leaf("stranger", "DNS:stranger.test", 1));
  ASSERT_NO_FATAL_FAILURE(startCluster({"redis", "redis", "stranger"}));
  auto a = startAirbag(certs_->path("ca.pem"));
  ASSERT_TRUE(a.ok()) << a.status();
  fill(**a);
  // The log names the node and why.
  const std::string stranger = std::to_string(cluster_->nodes()[2]->port());
  EXPECT_TRUE((*a)->process().waitForRegex(
      R"(shared cache: .*\(node 127\.0\.0\.1:)" + stranger +
          R"(\): connect: certificate verify failed: hostname mismatch)",
      scaled(milliseconds(5000))));
  // Writes reached the other masters (while the one breaker let them through), never the third.
  ASSERT_TRUE(
      pollUntil([&] { return !cluster_->keys("airbag:*").empty(); }, scaled(milliseconds(5000))));
  EXPECT_TRUE(cluster_->nodes()[2]->scan("airbag:*").empty());
}

TEST_F(RedisClusterTlsTest, PurgeEmptiesEveryMasterOverTls) {
  ASSERT_NO_FATAL_FAILURE(startCluster());
  auto a = startAirbag(certs_->path("ca.pem"), 2);
  ASSERT_TRUE(a.ok()) << a.status();
  fill(**a);
  ASSERT_TRUE(pollUntil([&] { return cluster_->keys("airbag:*").size() == kKeys; },
                        scaled(milliseconds(5000))));
  EXPECT_GE(mastersUsed(), 2u) << "the keys all landed on one master";

  Response purged = (*a)->admin("POST", "/cache/purge", R"({"route":"shared"})");
  ASSERT_EQ(purged.status, 200) << purged.body;
  EXPECT_EQ(purged.json()["shared"], (Json{{"purged", kKeys}, {"complete", true}, {"nodes", 3}}));
  EXPECT_TRUE(cluster_->keys("airbag:*").empty());

  // Gone from memory and from the cluster: the model is asked again.
  const int64_t calls = demo_->stat("requests").value_or(-1);
  Response again = (*a)->fetch("POST", kPath, {}, inferBody(3));
  EXPECT_EQ(again.header("x-airbag-cache"), "miss");
  EXPECT_EQ(demo_->stat("requests").value_or(-1), calls + 1);
}

}  // namespace
}  // namespace airbag::testing
