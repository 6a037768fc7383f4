// Integration: active health checks (rise/fall, /readyz, /upstreams, metrics) and passive
// health (connect failures take an upstream out for a while) on the real binary, with a
// fallback model to show where requests go instead.
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace airbag::testing {
namespace {

constexpr char kActive[] = R"(
listen: { address: ${LISTEN}, workers: 2 }
admin: { address: ${ADMIN} }
log: { level: warn, access_log: off }
readiness: { require_upstream: true }
upstreams:
  model:
    url: ${MODEL}
    connect_timeout: 200ms
    health: { path: /health, interval: 100ms, timeout: 100ms, rise: 2, fall: 2 }
  small-model: { url: ${SMALL} }
routes:
  - name: r
    match: { path_prefix: / }
    upstream: model
    fallback:
      - upstream: small-model
)";

std::string connectAttempts() {
  return R"(airbag_upstream_attempts_total{route="r",upstream="model",outcome="connect"})";
}

// A demo model server on a port chosen by the test (to restart it on the same one).
std::unique_ptr<Process> demoOn(int port) {
  auto p = Process::spawn(
      {demoServerBinary(), "--listen", "127.0.0.1:" + std::to_string(port)});
  if (!p.ok()) return nullptr;
  if (!(*p)->waitForLine("listening on", milliseconds(10000))) return nullptr;
  return std::move(*p);
}

TEST(HealthChecksTest, UnhealthyPrimaryIsSkippedUntilItRises) {
  auto small = DemoServer::start({.extra_args = {"--name", "small-model"}});
  ASSERT_TRUE(small.ok()) << small.status();
  const int port = freePort();
  auto model = demoOn(port);
  ASSERT_NE(model, nullptr);
  auto a = AirbagProcess::start(
      kActive, {{"MODEL", "http://127.0.0.1:" + std::to_string(port)}, {"SMALL", (*small)->url()}});
  ASSERT_TRUE(a.ok()) << a.status();
  AirbagProcess& ab = **a;

  EXPECT_TRUE(pollUntil([&] { return ab.metric(R"(airbag_health_probes_total{upstream="model",result="pass"})").value_or(0) >= 1; },
                        milliseconds(3000)));
  Response r = ab.fetch("GET", "/v1/models");
  EXPECT_EQ(r.header("x-airbag-source"), "upstream");
  EXPECT_EQ(ab.admin("GET", "/readyz").status, 200);

  model.reset();  // killed
  ASSERT_TRUE(pollUntil(
      [&] { return ab.admin("GET", "/upstreams").json()["model"]["health"]["usable"] == false; },
      milliseconds(3000)));
  Response ready = ab.admin("GET", "/readyz");
  EXPECT_EQ(ready.status, 503);
  EXPECT_THAT(ready.body, ::testing::HasSubstr("upstream_unhealthy:model"));
  EXPECT_EQ(ab.metric(R"(airbag_upstream_healthy{upstream="model"})"), 0);
  EXPECT_GE(ab.metric(R"(airbag_health_probes_total{upstream="model",result="connect"})").value_or(0), 2);
  Response routes = ab.admin("GET", "/routes/r");
  EXPECT_EQ(routes.json()["state"]["upstream"]["health"]["active"]["healthy"], false);

  // Requests go straight to the fallback: no connect to the dead model.
  double before = ab.metric(connectAttempts()).value_or(0);
  for (int i = 0; i < 5; ++i) {
    Response f = ab.fetch("GET", "/v1/models");
    EXPECT_EQ(f.status, 200);
    EXPECT_EQ(f.header("x-airbag-source"), "fallback:small-model");
  }
  EXPECT_EQ(ab.metric(connectAttempts()).value_or(0), before);

  model = demoOn(port);  // back
  ASSERT_NE(model, nullptr);
  EXPECT_TRUE(pollUntil([&] { return ab.fetch("GET", "/v1/models").header("x-airbag-source") == "upstream"; },
                        milliseconds(3000)));
  EXPECT_EQ(ab.admin("GET", "/readyz").status, 200);
  EXPECT_EQ(ab.metric(R"(airbag_upstream_healthy{upstream="model"})"), 1);
}

constexpr char kPassive[] = R"(
listen: { address: ${LISTEN}, workers: 1 }
admin: { address: ${ADMIN} }
log: { level: error, access_log: off }
upstreams:
  model:
    url: ${MODEL}
    connect_timeout: 200ms
    passive: { consecutive_connect_failures: 2, down_for: 400ms }
  small-model: { url: ${SMALL} }
routes:
  - name: r
    match: { path_prefix: / }
    upstream: model
    fallback:
      - upstream: small-model
)";

TEST(HealthChecksTest, ConnectFailuresTakeThePrimaryOutForAWhile) {
  auto small = DemoServer::start({.extra_args = {"--name", "small-model"}});
  ASSERT_TRUE(small.ok()) << small.status();
  const int port = freePort();  // nothing listens there: connections are refused
  auto a = AirbagProcess::start(
      kPassive, {{"MODEL", "http://127.0.0.1:" + std::to_string(port)}, {"SMALL", (*small)->url()}});
  ASSERT_TRUE(a.ok()) << a.status();
  AirbagProcess& ab = **a;

  for (int i = 0; i < 2; ++i)
    EXPECT_EQ(ab.fetch("GET", "/v1/models").header("x-airbag-source"), "fallback:small-model");
  EXPECT_EQ(ab.metric(connectAttempts()), 2);
  // Down now: more requests, no more connects.
  Stopwatch down;
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(ab.fetch("GET", "/v1/models").header("x-airbag-source"), "fallback:small-model");
  if (down.elapsedMs() < milliseconds(350)) {
    EXPECT_EQ(ab.metric(connectAttempts()), 2);
  }
  EXPECT_EQ(ab.admin("GET", "/upstreams").json()["model"]["health"]["passive"]["down"], true);
  EXPECT_EQ(ab.metric(R"(airbag_upstream_healthy{upstream="model"})"), 0);

  // After down_for one request tries again; the model is back, so it stays up.
  auto model = demoOn(port);
  ASSERT_NE(model, nullptr);
  EXPECT_TRUE(pollUntil([&] { return ab.fetch("GET", "/v1/models").header("x-airbag-source") == "upstream"; },
                        milliseconds(3000)));
  EXPECT_EQ(ab.metric(connectAttempts()), 2);
  EXPECT_EQ(ab.admin("GET", "/upstreams").json()["model"]["health"]["passive"]["down"], false);
}

constexpr char kLadder[] = R"(
listen: { address: ${LISTEN}, workers: 2 }
admin: { address: ${ADMIN} }
log: { level: error, access_log: off }
upstreams:
  model: { url: ${DEAD}, connect_timeout: 200ms }
  hosted:
    url: ${DEAD}
    connect_timeout: 200ms
    health: { path: /health, interval: 100ms, timeout: 100ms, rise: 2, fall: 2 }
  small-model: { url: ${SMALL} }
routes:
  - name: r
    match: { path_prefix: / }
    upstream: model
    fallback:
      - upstream: hosted
      - upstream: small-model
)";

TEST(HealthChecksTest, AFallbackUpstreamThatIsDownIsPassedOverWithoutAConnect) {
  auto small = DemoServer::start({.extra_args = {"--name", "small-model"}});
  ASSERT_TRUE(small.ok()) << small.status();
  const std::string dead = "http://127.0.0.1:" + std::to_string(freePort());  // refuses
  auto a = AirbagProcess::start(kLadder, {{"DEAD", dead}, {"SMALL", (*small)->url()}});
  ASSERT_TRUE(a.ok()) << a.status();
  AirbagProcess& ab = **a;
  ASSERT_TRUE(pollUntil(
      [&] { return ab.admin("GET", "/upstreams").json()["hosted"]["health"]["usable"] == false; },
      milliseconds(3000)));
  const std::string hosted_connects =
      R"(airbag_upstream_attempts_total{route="r",upstream="hosted",outcome="connect"})";
  for (int i = 0; i < 4; ++i) {
    Response r = ab.fetch("GET", "/v1/models");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.header("x-airbag-source"), "fallback:small-model");
  }
  // The route's own upstream was tried each time; the down fallback never.
  EXPECT_EQ(ab.metric(connectAttempts()), 4);
  EXPECT_EQ(ab.metric(hosted_connects).value_or(0), 0);

  // The connections airbag keeps: small-model's, idle between requests; none to the dead ones.
  nlohmann::json up = ab.admin("GET", "/upstreams").json();
  EXPECT_GE(up["small-model"]["connections"]["open"].get<int>(), 1) << up.dump();
  EXPECT_EQ(up["small-model"]["connections"]["idle"], up["small-model"]["connections"]["open"]);
  EXPECT_EQ(up["hosted"]["connections"]["open"], 0);
  EXPECT_EQ(up["model"]["connections"]["open"], 0);
}

}  // namespace
}  // namespace airbag::testing
