// Integration: the shared cache tier over TLS (rediss://) with Debian's redis-server on its
// --tls-port and a throwaway CA and certificate made with the openssl command at test time: two
// airbag processes share an answer through it, and a certificate the CA did not sign keeps the
// tier out (requests are still answered) with a log line saying why.
#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"
#include "tests/integration/redis_server.h"
#include "tests/integration/tls_certs.h"

namespace airbag::testing {
namespace {

using ::testing::HasSubstr;

constexpr char kConfig[] = R"(
listen: { address: ${LISTEN}, workers: 1 }
admin: { address: ${ADMIN} }
log: { level: info, access_log: off }
cache:
  shared: { redis: "${REDIS}", timeout: 200ms, tls: { ca: ${CA}${SNI} } }
upstreams:
  model: { url: ${MODEL}, connect_timeout: 200ms }
routes:
  - name: shared
    match: { path: /v2/models/shared/infer }
    upstream: model
    cache: { ttl: 30s, shared: true }
)";

constexpr char kInfer[] = R"({"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]})";

class SharedCacheTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    certs_ = Certs::makeCa();
    ASSERT_NE(certs_, nullptr);
    ASSERT_TRUE(certs_->leaf("redis", "DNS:redis.test", 1));
    auto redis = RedisServer::start(RedisServer::Options::tls(*certs_, "redis"));
    ASSERT_TRUE(redis.ok()) << redis.status();
    redis_ = *std::move(redis);
    auto demo = DemoServer::start({{"--seed", "7"}});
    ASSERT_TRUE(demo.ok()) << demo.status();
    demo_ = *std::move(demo);
  }

  absl::StatusOr<std::unique_ptr<AirbagProcess>> startAirbag(const std::string& ca,
                                                             const std::string& sni) {
    return AirbagProcess::start(kConfig, {{"MODEL", demo_->url()},
                                          {"REDIS", redis_->url()},
                                          {"CA", ca},
                                          {"SNI", sni.empty() ? "" : ", sni: " + sni}});
  }

  std::unique_ptr<Certs> certs_;
  std::unique_ptr<RedisServer> redis_;
  std::unique_ptr<DemoServer> demo_;
};

TEST_F(SharedCacheTlsTest, TwoAirbagsShareAnAnswerOverRediss) {
  ASSERT_EQ(redis_->url().rfind("rediss://", 0), 0u);
  // The certificate names redis.test, not 127.0.0.1: sni is the name checked.
  auto a = startAirbag(certs_->path("ca.pem"), "redis.test");
  ASSERT_TRUE(a.ok()) << a.status();
  auto b = startAirbag(certs_->path("ca.pem"), "redis.test");
  ASSERT_TRUE(b.ok()) << b.status();
  const std::string path = "/v2/models/shared/infer";

  Response filled = (*a)->fetch("POST", path, {}, kInfer);
  ASSERT_EQ(filled.status, 200) << filled.body;
  EXPECT_EQ(filled.header("x-airbag-cache"), "miss");
  // The write is asynchronous: wait for the key to show in Redis (read over TLS by redis-cli).
  ASSERT_TRUE(pollUntil(
      [&] {
        auto out = redis_->cli({"--scan", "--pattern", "airbag:*"});
        return out.ok() && out->find("airbag:shared:") != std::string::npos;
      },
      scaled(milliseconds(5000))));

  Response shared = (*b)->fetch("POST", path, {}, kInfer);
  ASSERT_EQ(shared.status, 200);
  EXPECT_EQ(shared.header("x-airbag-cache"), "hit");
  EXPECT_EQ(shared.header("x-airbag-cache-tier"), "shared");
  EXPECT_EQ(shared.body, filled.body);
  EXPECT_EQ(demo_->stat("requests").value_or(-1), 1) << "the second airbag called the model";
}

TEST_F(SharedCacheTlsTest, ACertificateTheCaDidNotSignKeepsTheTierOut) {
  auto other = Certs::makeCa("another-ca");
  ASSERT_NE(other, nullptr);
  auto a = startAirbag(other->path("ca.pem"), "redis.test");
  ASSERT_TRUE(a.ok()) << a.status();
  // Requests are answered by the model (two inputs, two cache keys); the tier is skipped, and
  // the log says why.
  for (std::string input : {"1", "2"}) {
    std::string body = kInfer;
    body.replace(body.find("[1]}"), 3, "[" + input + "]");
    Response r = (*a)->fetch("POST", "/v2/models/shared/infer", {}, body);
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.header("x-airbag-source"), "upstream");
  }
  auto line = (*a)->process().waitForLine("certificate verify failed", scaled(milliseconds(5000)));
  ASSERT_TRUE(line.has_value());
  EXPECT_THAT(*line, HasSubstr("shared cache"));
  auto keys = redis_->cli({"--scan", "--pattern", "airbag:*"});
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_EQ(*keys, "") << "airbag wrote through a connection it should have refused";
}

}  // namespace
}  // namespace airbag::testing
