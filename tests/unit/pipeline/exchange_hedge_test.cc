// Hedged tries driven by hand: the hedge timer fires on the simulated clock,
// the hedge or the first try wins and the other is cancelled at once, the
// retry budget pays for each hedge, and none goes while the upstream is
// saturated, its breaker is not closed or the budget is spent; `after: p95`
// waits for its samples.
#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxy/metrics/metrics.h"
#include "tests/unit/pipeline/exchange_fixture.h"

namespace airbag::pipeline {
namespace {

using Stage = Exchange::Stage;
using H = RouteRuntime::Hedge;

constexpr char kHedgeConfig[] = R"(
upstreams:
  model:
    url: http://127.0.0.1:9
    saturation: { when_any: [ { metric: waiting, gt: 4 } ] }
  small: { url: http://127.0.0.1:10 }
routes:
  - name: hedged
    match: { path: /h }
    upstream: model
    timeout: { total: 5s, per_try: 1s }
    hedge: { after: 100ms }
    retry: { budget: { ratio: 100%, min_per_second: 100 } }
  - name: twice
    match: { path: /t }
    upstream: model
    timeout: { total: 5s, per_try: 1s }
    hedge: { after: 100ms, max: 2 }
    retry: { budget: { ratio: 100%, min_per_second: 100 } }
  - name: guarded
    match: { path: /g }
    upstream: model
    hedge: { after: 100ms }
    circuit_breaker: { consecutive_failures: 1, minimum_calls: 100, open_for: 1s }
  - name: poor
    match: { path: /poor }
    upstream: model
    hedge: { after: 100ms }
    retry: { budget: { ratio: 0%, min_per_second: 0 } }
  - name: measured
    match: { path: /m }
    upstream: model
    timeout: { total: 5s, per_try: 1s }
    hedge: { after: p95 }
    retry: { budget: { ratio: 100%, min_per_second: 100 } }
)";

class HedgeExchangeTest : public ExchangeFixture {
 protected:
  void SetUp() override {
    ExchangeFixture::SetUp();
    load(kHedgeConfig);
  }
};

TEST_F(HedgeExchangeTest, TheHedgeGoesAtItsDelayAndWinsAndTheFirstTryIsCancelledAtOnce) {
  auto c = client();
  send(*c, "POST", "/h", R"({"q":1})");
  ASSERT_EQ(model_.callCount(), 1);
  dispatcher_.advance(absl::Milliseconds(99));
  EXPECT_EQ(model_.callCount(), 1) << "not before `after`";
  dispatcher_.advance(absl::Milliseconds(1));
  ASSERT_EQ(model_.callCount(), 2);
  EXPECT_EQ(model_.call(1).head, model_.call(0).head) << "the same request again";
  EXPECT_EQ(model_.call(1).body, R"({"q":1})");
  EXPECT_EQ(runtime("hedged").hedges(H::kSent), 1u);
  EXPECT_EQ(runtime("hedged").budget().stats(dispatcher_.now()).retries, 1u)
      << "a hedge spends the retry budget";

  ScriptedUpstream::sendHead(model_.call(1), 200, {{"Content-Type", "text/plain"}}, 2);
  EXPECT_TRUE(model_.call(0).cancelled) << "the loser is cancelled as soon as the head arrives";
  EXPECT_FALSE(c->down.done);
  model_.call(1).handler->onUpstreamData("ok");
  ScriptedUpstream::complete(model_.call(1));
  EXPECT_TRUE(c->down.done);
  EXPECT_EQ(c->down.status(), 200);
  EXPECT_EQ(c->down.body(), "ok");
  EXPECT_EQ(c->down.header("x-airbag-attempts"), "2");
  EXPECT_EQ(c->down.header("x-airbag-source"), "upstream");
  EXPECT_EQ(runtime("hedged").hedges(H::kWon), 1u);
  EXPECT_EQ(runtime("hedged").hedges(H::kLost), 0u);
  EXPECT_EQ(dispatcher_.armedTimers(), 0);
}

TEST_F(HedgeExchangeTest, WhenTheFirstTryAnswersFirstTheHedgeIsCancelled) {
  auto c = client();
  send(*c, "GET", "/h");
  dispatcher_.advance(absl::Milliseconds(100));
  ASSERT_EQ(model_.callCount(), 2);
  ScriptedUpstream::answer(model_.call(0), 200, "first");
  EXPECT_TRUE(model_.call(1).cancelled);
  EXPECT_EQ(c->down.body(), "first");
  EXPECT_EQ(c->down.header("x-airbag-attempts"), "2");
  EXPECT_EQ(runtime("hedged").hedges(H::kLost), 1u);
  EXPECT_EQ(runtime("hedged").hedges(H::kWon), 0u);
}

TEST_F(HedgeExchangeTest, AnAnswerBeforeTheDelaySendsNoHedge) {
  auto c = client();
  send(*c, "GET", "/h");
  dispatcher_.advance(absl::Milliseconds(50));
  ScriptedUpstream::answer(model_.call(0), 200, "quick");
  dispatcher_.advance(absl::Seconds(1));
  EXPECT_EQ(model_.callCount(), 1);
  EXPECT_EQ(c->down.header("x-airbag-attempts"), "1");
  EXPECT_EQ(runtime("hedged").hedges(H::kSent), 0u);
  EXPECT_EQ(runtime("hedged").hedges(H::kLost), 0u) << "no hedge, no race";
}

TEST_F(HedgeExchangeTest, AFailedCallDropsOutWhileTheOtherMayStillAnswer) {
  auto c = client();
  send(*c, "GET", "/h");
  dispatcher_.advance(absl::Milliseconds(100));
  ASSERT_EQ(model_.callCount(), 2);
  ScriptedUpstream::fail(model_.call(0), AttemptOutcome::kReset);
  EXPECT_FALSE(c->down.done) << "the hedge is still waiting";
  EXPECT_EQ(c->exchange.stage(), Stage::kAttempt);
  ScriptedUpstream::answer(model_.call(1), 200, "hedge");
  EXPECT_EQ(c->down.status(), 200);
  EXPECT_EQ(c->down.body(), "hedge");
  EXPECT_EQ(runtime("hedged").hedges(H::kWon), 1u);
}

TEST_F(HedgeExchangeTest, WhenEveryCallFailsTheTryFailsOnce) {
  auto c = client();
  send(*c, "GET", "/h");
  dispatcher_.advance(absl::Milliseconds(100));
  ScriptedUpstream::fail(model_.call(1), AttemptOutcome::kReset);
  EXPECT_FALSE(c->down.done);
  ScriptedUpstream::fail(model_.call(0), AttemptOutcome::kReset);
  EXPECT_TRUE(c->down.done);
  EXPECT_EQ(c->down.status(), 503);
  EXPECT_EQ(model_.callCount(), 2) << "no retry configured, and no further hedge";
}

TEST_F(HedgeExchangeTest, MaxTwoSendsASecondHedgeAfterAnotherDelay) {
  auto c = client();
  send(*c, "GET", "/t");
  dispatcher_.advance(absl::Milliseconds(100));
  EXPECT_EQ(model_.callCount(), 2);
  dispatcher_.advance(absl::Milliseconds(100));
  ASSERT_EQ(model_.callCount(), 3);
  dispatcher_.advance(absl::Milliseconds(300));
  EXPECT_EQ(model_.callCount(), 3) << "max: 2";
  ScriptedUpstream::answer(model_.call(2), 200, "third");
  EXPECT_TRUE(model_.call(0).cancelled);
  EXPECT_TRUE(model_.call(1).cancelled);
  EXPECT_EQ(c->down.header("x-airbag-attempts"), "3");
  EXPECT_EQ(runtime("twice").hedges(H::kSent), 2u);
  EXPECT_EQ(runtime("twice").hedges(H::kWon), 1u);
}

TEST_F(HedgeExchangeTest, NoHedgeWhileTheUpstreamIsSaturated) {
  setWaiting(9);
  auto c = client();
  send(*c, "GET", "/h");
  dispatcher_.advance(absl::Milliseconds(500));
  EXPECT_EQ(model_.callCount(), 1);
  EXPECT_EQ(runtime("hedged").hedges(H::kSkipped), 1u);
  EXPECT_EQ(runtime("hedged").budget().stats(dispatcher_.now()).retries, 0u)
      << "a hedge not sent spends nothing";
  ScriptedUpstream::answer(model_.call(0), 200, "slow");
  EXPECT_EQ(c->down.header("x-airbag-attempts"), "1");
}

TEST_F(HedgeExchangeTest, NoHedgeWhileTheBreakerIsNotClosed) {
  auto first = client();
  send(*first, "GET", "/g");
  ScriptedUpstream::fail(model_.call(0), AttemptOutcome::kReset);  // opens the breaker
  ASSERT_EQ(runtime("guarded").breaker()->state(dispatcher_.now()), policy::CircuitState::kOpen);
  dispatcher_.advance(absl::Seconds(1));  // half open: one probe may go
  auto probe = client();
  send(*probe, "GET", "/g");
  ASSERT_EQ(model_.callCount(), 2);
  dispatcher_.advance(absl::Milliseconds(300));
  EXPECT_EQ(model_.callCount(), 2) << "the probe is not hedged";
  EXPECT_EQ(runtime("guarded").hedges(H::kSkipped), 1u);
  ScriptedUpstream::answer(model_.call(1), 200, "probe");
  EXPECT_EQ(probe->down.status(), 200);
}

TEST_F(HedgeExchangeTest, NoHedgeWhenTheRetryBudgetIsSpent) {
  auto c = client();
  send(*c, "GET", "/poor");
  dispatcher_.advance(absl::Milliseconds(500));
  EXPECT_EQ(model_.callCount(), 1);
  EXPECT_EQ(runtime("poor").hedges(H::kSkipped), 1u);
  ScriptedUpstream::answer(model_.call(0), 200, "slow");
}

TEST_F(HedgeExchangeTest, AClientLeavingCancelsEveryCall) {
  auto c = client();
  send(*c, "GET", "/h");
  dispatcher_.advance(absl::Milliseconds(100));
  ASSERT_EQ(model_.callCount(), 2);
  c->exchange.cancel();
  EXPECT_TRUE(model_.call(0).cancelled);
  EXPECT_TRUE(model_.call(1).cancelled);
  EXPECT_EQ(dispatcher_.armedTimers(), 0);
}

TEST_F(HedgeExchangeTest, ThePerTryTimeoutCancelsEveryCall) {
  auto c = client();
  send(*c, "GET", "/h");
  dispatcher_.advance(absl::Seconds(1));
  EXPECT_TRUE(model_.call(0).cancelled);
  EXPECT_TRUE(model_.call(1).cancelled);
  EXPECT_EQ(c->down.status(), 504);
}

TEST_F(HedgeExchangeTest, PercentileWaitsForEnoughSamplesThenHedgesAtIt) {
  auto c = client();
  send(*c, "GET", "/m");
  dispatcher_.advance(absl::Milliseconds(900));
  EXPECT_EQ(model_.callCount(), 1) << "no samples yet: no hedge";
  ScriptedUpstream::answer(model_.call(0), 200, "measured");
  // 99 more heads after 50 ms: 100 samples, enough for p95.
  policy::LatencyWindow& w = runtime("measured").firstByte();
  EXPECT_EQ(w.samples(dispatcher_.now()), 1u) << "the answer's own time to head was recorded";
  for (int i = 0; i < 99; ++i) w.add(absl::Milliseconds(50), dispatcher_.now());
  // 95% of the samples are in 50 ms's bucket, whose bound is 1 ms * 2^(23/4).
  absl::Duration p95 = policy::LatencyWindow::bucketBound(23);
  ASSERT_GE(p95, absl::Milliseconds(50));
  ASSERT_LT(p95, absl::Milliseconds(60));
  auto d = client();
  send(*d, "GET", "/m");
  dispatcher_.advance(p95 - absl::Microseconds(1));
  EXPECT_EQ(model_.callCount(), 2);
  dispatcher_.advance(absl::Microseconds(1));
  EXPECT_EQ(model_.callCount(), 3);
  ScriptedUpstream::answer(model_.call(2), 200, "hedge");
  EXPECT_EQ(d->down.body(), "hedge");
}

}  // namespace
}  // namespace airbag::pipeline
