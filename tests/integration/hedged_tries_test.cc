// Integration: hedged tries on the real binary against the demo model
// server. One straggler among fast answers (`slow_next`): the hedge sent
// after `after` answers first, the straggler's connection is closed at once,
// and the metric, the attempts header and GET /routes say so.
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace airbag::testing {
namespace {

constexpr char kConfig[] = R"(
listen: { address: ${LISTEN}, workers: 1 }
admin: { address: ${ADMIN} }
log: { level: warn, access_log: off }
upstreams:
  model: { url: ${MODEL} }
routes:
  - name: r
    match: { path_prefix: / }
    upstream: model
    timeout: { total: 20s, per_try: 15s }
    hedge: { after: 200ms, max: 1 }
)";

TEST(HedgedTriesTest, AHedgeOvertakesAStragglerAndTheStragglerIsCancelled) {
  auto model = DemoServer::start();
  ASSERT_TRUE(model.ok()) << model.status();
  auto a = AirbagProcess::start(kConfig, {{"MODEL", (*model)->url()}});
  ASSERT_TRUE(a.ok()) << a.status();
  AirbagProcess& ab = **a;

  // A fast answer: no hedge.
  Response fast = ab.fetch("POST", "/predict", {}, "{}");
  EXPECT_EQ(fast.status, 200);
  EXPECT_EQ(fast.header("x-airbag-attempts"), "1");
  EXPECT_EQ(ab.metric(R"(airbag_hedges_total{route="r",result="sent"})").value_or(0), 0);

  // The next request is a straggler (10 s); the hedge after 200 ms is fast.
  ASSERT_TRUE((*model)->setBehavior({{"slow_next", 1}, {"slow_ms", 10000}}).ok());
  Stopwatch sw;
  Response r = ab.fetch("POST", "/predict", {}, "{}", milliseconds(15000));
  milliseconds took = sw.elapsedMs();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("x-airbag-source"), "upstream");
  EXPECT_EQ(r.header("x-airbag-attempts"), "2");
  EXPECT_GE(took, milliseconds(200)) << "the hedge waits for `after`";
  EXPECT_LT(took, milliseconds(5000)) << "the straggler was not waited for";
  EXPECT_EQ(ab.metric(R"(airbag_hedges_total{route="r",result="sent"})").value_or(0), 1);
  EXPECT_EQ(ab.metric(R"(airbag_hedges_total{route="r",result="won"})").value_or(0), 1);
  // The straggler's connection was closed, not left to finish into the void.
  EXPECT_TRUE(pollUntil(
      [&] {
        absl::StatusOr<int64_t> c = (*model)->stat("cancelled");
        return c.ok() && *c >= 1;
      },
      milliseconds(5000)))
      << (*model)->stats().value_or(nlohmann::json()).dump();

  nlohmann::json route = ab.admin("GET", "/routes/r").json();
  EXPECT_EQ(route["hedge"]["after"], "200ms");
  EXPECT_EQ(route["hedge"]["max"], 1);
  EXPECT_EQ(route["state"]["hedge"]["sent"], 1);
  EXPECT_EQ(route["state"]["hedge"]["won"], 1);
  EXPECT_DOUBLE_EQ(route["state"]["hedge"]["after_seconds"].get<double>(), 0.2);
}

}  // namespace
}  // namespace airbag::testing
