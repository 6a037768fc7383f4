// The Exchange driven by hand: every stage move, retries after each kind of
// failure, the races around waiting (a client that leaves during a backoff, a
// bulkhead grant or a cache fill for a request that is gone, a reload while
// a request runs), the ladder through a failing fallback model, and a stream
// that fails after its first byte. Time is a simulated clock: deadlines and
// breaker periods pass by moving it, never by sleeping.
#include "proxy/pipeline/exchange.h"

#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/pipeline/exchange_fixture.h"

namespace airbag::pipeline {
namespace {

using ::testing::HasSubstr;
using Stage = Exchange::Stage;

constexpr char kConfig[] = R"(
upstreams:
  model: { url: http://127.0.0.1:9 }
  small: { url: http://127.0.0.1:10 }
routes:
  - name: plain
    match: { path: /p }
    upstream: model
    timeout: { total: 2s, per_try: 500ms }
    retry:
      attempts: 3
      on: [connect-failure, reset, timeout, 5xx]
      backoff: { base: 10ms, max: 10ms, jitter: none }
      budget: { ratio: 100%, min_per_second: 100 }
    bulkhead: { max_in_flight: 1, max_queue: 1, queue_timeout: 100ms }
  - name: ladder
    match: { path: /l }
    upstream: model
    fallback:
      - upstream: small
        timeout: 300ms
      - respond: { status: 200, json: { answered_by: default } }
  - name: cached
    match: { path: /c }
    upstream: model
    cache: { ttl: 10s, key: { body: raw } }
  - name: guarded
    match: { path: /g }
    upstream: model
    circuit_breaker: { consecutive_failures: 2, minimum_calls: 100, open_for: 1s }
  - name: stream
    match: { path: /s }
    upstream: model
    timeout: { total: 10s, idle: 1s }
)";

class ExchangeTest : public ExchangeFixture {
 protected:
  void SetUp() override {
    ExchangeFixture::SetUp();
    load(kConfig);
  }
};

TEST_F(ExchangeTest, PassThroughMovesThroughTheStagesAndAnswersOnce) {
  auto c = client();
  EXPECT_EQ(c->exchange.stage(), Stage::kIdle);
  send(*c, "POST", "/p", R"({"x":1})");
  EXPECT_EQ(c->exchange.stage(), Stage::kAttempt);
  ASSERT_EQ(model_.callCount(), 1);
  EXPECT_THAT(model_.last().head, HasSubstr("POST /p HTTP/1.1\r\n"));
  EXPECT_THAT(model_.last().head, HasSubstr("host: 127.0.0.1:9\r\n"));
  EXPECT_EQ(model_.last().body, R"({"x":1})");
  EXPECT_EQ(runtime("plain").bulkhead().inFlight(), 1u);
  ScriptedUpstream::answer(model_.last(), 200, "ok", {{"Content-Type", "text/plain"}});
  EXPECT_EQ(c->exchange.stage(), Stage::kDone);
  EXPECT_TRUE(c->down.done);
  EXPECT_EQ(c->down.status(), 200);
  EXPECT_EQ(c->down.header("x-airbag-source"), "upstream");
  EXPECT_EQ(c->down.header("x-airbag-attempts"), "1");
  EXPECT_EQ(c->down.body(), "ok");
  EXPECT_EQ(runtime("plain").bulkhead().inFlight(), 0u) << "the slot is given back at the end";
  EXPECT_EQ(dispatcher_.armedTimers(), 0);
}

TEST_F(ExchangeTest, RetriesAfterEachKindOfFailure) {
  struct Case {
    const char* name;
    std::function<void(ScriptedUpstream::Call&, SimDispatcher&)> fail;
  };
  std::vector<Case> cases = {
      {"connect", [](auto& call, auto&) { ScriptedUpstream::fail(call, AttemptOutcome::kConnect); }},
      {"reset", [](auto& call, auto&) { ScriptedUpstream::fail(call, AttemptOutcome::kReset); }},
      {"5xx", [](auto& call, auto&) { ScriptedUpstream::answer(call, 503, "busy"); }},
      {"timeout", [](auto&, auto& d) { d.advance(absl::Milliseconds(500)); }},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.name);
    auto c = client();
    int before = model_.callCount();
    send(*c, "GET", "/p");
    k.fail(model_.last(), dispatcher_);
    EXPECT_EQ(c->exchange.stage(), Stage::kBackoff);
    EXPECT_FALSE(c->down.done) << "nothing reaches the client before the retry";
    if (std::string(k.name) == "timeout") {
      EXPECT_TRUE(model_.last().cancelled);
    }
    dispatcher_.advance(absl::Milliseconds(9));
    EXPECT_EQ(model_.callCount(), before + 1) << "the backoff has not passed yet";
    dispatcher_.advance(absl::Milliseconds(1));
    ASSERT_EQ(model_.callCount(), before + 2);
    EXPECT_EQ(c->exchange.stage(), Stage::kAttempt);
    ScriptedUpstream::answer(model_.last(), 200, "second");
    EXPECT_EQ(c->down.status(), 200);
    EXPECT_EQ(c->down.header("x-airbag-attempts"), "2");
    EXPECT_EQ(c->down.body(), "second");
  }
}

TEST_F(ExchangeTest, PerTryTimeoutFiresExactlyAtItsDeadline) {
  auto c = client();
  send(*c, "GET", "/p");
  dispatcher_.advance(absl::Milliseconds(499));
  EXPECT_FALSE(model_.last().cancelled);
  dispatcher_.advance(absl::Milliseconds(1));
  EXPECT_TRUE(model_.last().cancelled);
  EXPECT_EQ(c->exchange.stage(), Stage::kBackoff);
}

TEST_F(ExchangeTest, ClientLeavingDuringBackoffStartsNoTryAndGivesBackItsSlot) {
  auto c = client();
  send(*c, "GET", "/p");
  ScriptedUpstream::fail(model_.last(), AttemptOutcome::kReset);
  ASSERT_EQ(c->exchange.stage(), Stage::kBackoff);
  c->exchange.cancel();
  EXPECT_EQ(c->exchange.stage(), Stage::kDone);
  EXPECT_EQ(runtime("plain").bulkhead().inFlight(), 0u);
  dispatcher_.advance(absl::Seconds(5));
  EXPECT_EQ(model_.callCount(), 1) << "no try after the client left";
  EXPECT_FALSE(c->down.done);
}

TEST_F(ExchangeTest, BulkheadGrantForARequestThatLeftIsDroppedAndTheSlotComesBack) {
  auto first = client();
  auto second = client();
  send(*first, "GET", "/p");
  send(*second, "GET", "/p");
  EXPECT_EQ(second->exchange.stage(), Stage::kBulkhead);
  EXPECT_EQ(model_.callCount(), 1);
  second->exchange.cancel();  // the queued client leaves
  ScriptedUpstream::answer(model_.call(0), 200, "ok");
  deliverInbox();
  EXPECT_EQ(model_.callCount(), 1) << "no try for the request that left";
  EXPECT_EQ(runtime("plain").bulkhead().inFlight(), 0u);
}

TEST_F(ExchangeTest, BulkheadGrantWakesTheQueuedRequest) {
  auto first = client();
  auto second = client();
  send(*first, "GET", "/p");
  send(*second, "GET", "/p");
  ScriptedUpstream::answer(model_.call(0), 200, "one");
  EXPECT_EQ(second->exchange.stage(), Stage::kBulkhead) << "woken through the inbox, not inline";
  EXPECT_EQ(deliverInbox(), 1);
  EXPECT_EQ(second->exchange.stage(), Stage::kAttempt);
  ScriptedUpstream::answer(model_.call(1), 200, "two");
  EXPECT_EQ(second->down.body(), "two");
  EXPECT_EQ(runtime("plain").bulkhead().inFlight(), 0u);
}

TEST_F(ExchangeTest, BulkheadQueueTimeoutGoesDownTheLadder) {
  auto first = client();
  auto second = client();
  send(*first, "GET", "/p");
  send(*second, "GET", "/p");
  dispatcher_.advance(absl::Milliseconds(100));
  EXPECT_EQ(second->down.status(), 429);
  EXPECT_THAT(second->down.body(), HasSubstr("bulkhead_full"));
  ScriptedUpstream::answer(model_.call(0), 200, "one");
  deliverInbox();
  EXPECT_EQ(runtime("plain").bulkhead().inFlight(), 0u);
}

TEST_F(ExchangeTest, FillCompletedForAFollowerThatLeftIsDropped) {
  auto leader = client();
  auto follower = client();
  send(*leader, "GET", "/c");
  send(*follower, "GET", "/c");
  EXPECT_EQ(follower->exchange.stage(), Stage::kCoalesced);
  EXPECT_EQ(model_.callCount(), 1) << "one upstream call for two misses";
  follower.reset();  // the follower's connection is gone entirely
  ScriptedUpstream::answer(model_.call(0), 200, "answer");
  EXPECT_EQ(leader->down.body(), "answer");
  EXPECT_EQ(deliverInbox(), 0) << "the follower left the fill before it completed";
}

TEST_F(ExchangeTest, CoalescedFollowerIsAnsweredFromTheLeadersFill) {
  auto leader = client();
  auto follower = client();
  send(*leader, "GET", "/c");
  send(*follower, "GET", "/c");
  ScriptedUpstream::answer(model_.call(0), 200, "answer");
  EXPECT_EQ(deliverInbox(), 1);
  EXPECT_EQ(follower->down.status(), 200);
  EXPECT_EQ(follower->down.header("x-airbag-source"), "cache");
  EXPECT_EQ(follower->down.body(), "answer");
  EXPECT_EQ(model_.callCount(), 1);
}

TEST_F(ExchangeTest, CachedAnswerAgesOnTheSimulatedClock) {
  auto c = client();
  send(*c, "GET", "/c");
  ScriptedUpstream::answer(model_.last(), 200, "v1");
  EXPECT_EQ(c->down.header("x-airbag-cache"), "miss");
  send(*c, "GET", "/c");
  EXPECT_EQ(c->down.header("x-airbag-cache"), "hit");
  EXPECT_EQ(c->down.body(), "v1");
  dispatcher_.advance(absl::Seconds(9));
  send(*c, "GET", "/c");
  EXPECT_EQ(c->down.header("x-airbag-cache"), "hit");
  dispatcher_.advance(absl::Seconds(1));
  send(*c, "GET", "/c");
  ASSERT_EQ(model_.callCount(), 2) << "ttl 10s has passed: the model is asked again";
  ScriptedUpstream::answer(model_.last(), 200, "v2");
  EXPECT_EQ(c->down.header("x-airbag-cache"), "miss");
  EXPECT_EQ(c->down.body(), "v2");
}

TEST_F(ExchangeTest, ReloadMidRequestKeepsTheSnapshotTheRequestStartedWith) {
  auto c = client();
  send(*c, "GET", "/p");
  std::string reloaded = kConfig;
  reloaded.replace(reloaded.find("per_try: 500ms"), 14, "per_try: 100ms");
  load(reloaded);
  dispatcher_.advance(absl::Milliseconds(100));
  EXPECT_FALSE(model_.last().cancelled) << "the running request keeps its 500ms per-try";
  dispatcher_.advance(absl::Milliseconds(400));
  EXPECT_TRUE(model_.call(0).cancelled);
  dispatcher_.advance(absl::Milliseconds(10));  // backoff
  ScriptedUpstream::answer(model_.last(), 200, "ok");
  EXPECT_EQ(c->down.status(), 200);
  // A new request takes the new one.
  send(*c, "GET", "/p");
  dispatcher_.advance(absl::Milliseconds(100));
  EXPECT_TRUE(model_.last().cancelled);
}

TEST_F(ExchangeTest, FallbackThroughAFailingFallbackModelToTheDefault) {
  auto c = client();
  send(*c, "POST", "/l", "{}");
  ScriptedUpstream::fail(model_.last(), AttemptOutcome::kConnect);
  EXPECT_EQ(c->exchange.stage(), Stage::kFallback);
  ASSERT_EQ(small_.callCount(), 1);
  EXPECT_THAT(small_.last().head, HasSubstr("host: 127.0.0.1:10\r\n"));
  ScriptedUpstream::answer(small_.last(), 500, "small is down too");
  EXPECT_EQ(c->down.status(), 200);
  EXPECT_EQ(c->down.header("x-airbag-source"), "default");
  EXPECT_EQ(c->down.header("x-airbag-attempts"), "2");
  EXPECT_EQ(c->down.body(), R"({"answered_by":"default"})");
}

TEST_F(ExchangeTest, FallbackModelHasItsOwnTimeout) {
  auto c = client();
  send(*c, "POST", "/l", "{}");
  ScriptedUpstream::fail(model_.last(), AttemptOutcome::kReset);
  dispatcher_.advance(absl::Milliseconds(299));
  EXPECT_FALSE(small_.last().cancelled);
  dispatcher_.advance(absl::Milliseconds(1));
  EXPECT_TRUE(small_.last().cancelled);
  EXPECT_EQ(c->down.header("x-airbag-source"), "default");
}

TEST_F(ExchangeTest, FallbackModelAnswers) {
  auto c = client();
  send(*c, "POST", "/l", "{}");
  ScriptedUpstream::answer(model_.last(), 502, "bad gateway");
  ScriptedUpstream::answer(small_.last(), 200, "small says hi");
  EXPECT_EQ(c->down.header("x-airbag-source"), "fallback:small");
  EXPECT_EQ(c->down.body(), "small says hi");
}

TEST_F(ExchangeTest, StreamThatFailsAfterItsFirstByteEndsVisiblyCut) {
  auto c = client();
  send(*c, "POST", "/s", "{}");
  auto& call = model_.last();
  ScriptedUpstream::sendHead(call, 200, {{"Content-Type", "text/event-stream"}});
  EXPECT_EQ(c->exchange.stage(), Stage::kAttempt) << "not committed before the first byte";
  ScriptedUpstream::sendData(call, "data: one\n\n");
  EXPECT_EQ(c->exchange.stage(), Stage::kStreaming);
  EXPECT_THAT(c->down.out, HasSubstr("transfer-encoding: chunked"));
  EXPECT_THAT(c->down.out, HasSubstr("data: one"));
  ScriptedUpstream::fail(call, AttemptOutcome::kReset);
  EXPECT_TRUE(c->down.aborted);
  EXPECT_FALSE(c->down.done);
  EXPECT_THAT(c->down.out, HasSubstr("event: error"));
  EXPECT_EQ(c->down.out.find("0\r\n\r\n"), std::string::npos) << "no clean end of a cut stream";
  EXPECT_EQ(model_.callCount(), 1) << "a committed stream is never retried";
}

TEST_F(ExchangeTest, StalledStreamIsCutAtItsIdleTimeout) {
  auto c = client();
  send(*c, "POST", "/s", "{}");
  ScriptedUpstream::sendHead(model_.last(), 200, {{"Content-Type", "text/event-stream"}});
  ScriptedUpstream::sendData(model_.last(), "data: one\n\n");
  dispatcher_.advance(absl::Milliseconds(999));
  EXPECT_FALSE(c->down.aborted);
  dispatcher_.advance(absl::Milliseconds(1));
  EXPECT_TRUE(c->down.aborted);
  EXPECT_TRUE(model_.last().cancelled);
  EXPECT_THAT(c->down.out, HasSubstr(R"("code":"timeout")"));
}

TEST_F(ExchangeTest, SlowClientPausesTheUpstreamUntilItDrains) {
  auto c = client();
  send(*c, "POST", "/s", "{}");
  auto& call = model_.last();
  ScriptedUpstream::sendHead(call, 200, {{"Content-Type", "application/x-ndjson"}});
  c->down.pending = 300 * 1024;
  ScriptedUpstream::sendData(call, "{}\n");
  EXPECT_TRUE(call.paused);
  c->down.pending = 0;
  c->exchange.onDownstreamWritable();
  EXPECT_FALSE(call.paused);
}

TEST_F(ExchangeTest, BreakerOpensAndHalfOpensOnTheSimulatedClock) {
  auto c = client();
  for (int i = 0; i < 2; ++i) {
    send(*c, "GET", "/g");
    ScriptedUpstream::answer(model_.last(), 500, "no");
  }
  send(*c, "GET", "/g");
  EXPECT_EQ(c->down.status(), 503);
  EXPECT_THAT(c->down.body(), HasSubstr("circuit_open"));
  EXPECT_EQ(c->down.header("retry-after"), "1");
  EXPECT_EQ(model_.callCount(), 2) << "an open breaker makes no call";
  dispatcher_.advance(absl::Seconds(1));
  send(*c, "GET", "/g");
  ASSERT_EQ(model_.callCount(), 3) << "half-open: a probe goes through";
  ScriptedUpstream::answer(model_.last(), 200, "yes");
  EXPECT_EQ(c->down.status(), 200);
}

TEST_F(ExchangeTest, ClientLeavingMidTryCancelsTheCallAndReleasesEverything) {
  auto c = client();
  send(*c, "GET", "/g");
  c->exchange.cancel();
  EXPECT_TRUE(model_.last().cancelled);
  EXPECT_EQ(runtime("guarded").bulkhead().inFlight(), 0u);
  EXPECT_EQ(runtime("guarded").breaker()->stats(dispatcher_.now()).probes_in_flight, 0u);
  EXPECT_EQ(dispatcher_.armedTimers(), 0);
}

TEST_F(ExchangeTest, HeadAnsweredByTheLadderHasNoBody) {
  auto c = client();
  send(*c, "HEAD", "/l");
  ScriptedUpstream::fail(model_.last(), AttemptOutcome::kConnect);
  ScriptedUpstream::fail(small_.last(), AttemptOutcome::kConnect);
  EXPECT_EQ(c->down.status(), 200);
  EXPECT_EQ(c->down.header("content-length"), "25");
  EXPECT_EQ(c->down.body(), "");
}

TEST_F(ExchangeTest, StaleWakeUpOfAReusedExchangeIsIgnored) {
  auto first = client();
  auto second = client();
  send(*first, "GET", "/p");
  send(*second, "GET", "/p");  // queued
  uint64_t queued_generation = second->exchange.generation();
  second->exchange.cancel();
  send(*second, "GET", "/l");  // the same exchange, a new request
  EXPECT_NE(second->exchange.generation(), queued_generation);
  ScriptedUpstream::answer(model_.call(0), 200, "one");
  deliverInbox();
  EXPECT_EQ(second->exchange.stage(), Stage::kAttempt) << "still on its own request";
}

// Saturation-aware admission: routes of one upstream, one per priority,
// sharing its queue; the saturation reading is set by hand.
constexpr char kAdmissionConfig[] = R"(
upstreams:
  model:
    url: http://127.0.0.1:9
    saturation: { when_any: [ { metric: waiting, gt: 4 } ] }
  small: { url: http://127.0.0.1:10 }
routes:
  - name: critical
    match: { path: /crit }
    upstream: model
    priority: critical
    admission: { queue: { max: 2, timeout: 1s } }
    fallback:
      - respond: { status: 200, json: { answered_by: default } }
  - name: optional
    match: { path: /opt }
    upstream: model
    priority: optional
    admission: { queue: { max: 2, timeout: 300ms } }
    fallback:
      - respond: { status: 200, json: { answered_by: default } }
  - name: streams
    match: { path: /s }
    upstream: model
    circuit_breaker: { minimum_calls: 2, slow_call_duration: 100ms, slow_call_rate: 50% }
)";

class AdmissionExchangeTest : public ExchangeTest {
 protected:
  void SetUp() override {
    ExchangeTest::SetUp();
    load(kAdmissionConfig);
  }
};

TEST_F(AdmissionExchangeTest, NotAdmittedInTimeGoesDownTheLadderWithoutAnUpstreamCall) {
  setWaiting(9);
  auto c = client();
  send(*c, "POST", "/opt", "{}");
  EXPECT_EQ(c->exchange.stage(), Stage::kAdmission);
  dispatcher_.advance(absl::Milliseconds(299));
  EXPECT_FALSE(c->down.done) << "rechecks while saturated change nothing";
  dispatcher_.advance(absl::Milliseconds(1));
  EXPECT_EQ(c->down.status(), 200);
  EXPECT_EQ(c->down.header("x-airbag-source"), "default");
  EXPECT_EQ(c->down.header("x-airbag-admission"), "saturated");
  EXPECT_EQ(model_.callCount(), 0);
  EXPECT_EQ(runtime("optional").admissions(RouteRuntime::AdmissionOutcome::kSaturated), 1u);
  EXPECT_EQ(dispatcher_.armedTimers(), 0);
}

TEST_F(AdmissionExchangeTest, AQueuedRequestGoesOnWhenTheSaturationEnds) {
  setWaiting(9);
  auto c = client();
  send(*c, "POST", "/crit", "{}");
  dispatcher_.advance(absl::Milliseconds(120));
  EXPECT_EQ(deliverInbox(), 0);
  setWaiting(1);
  dispatcher_.advance(absl::Milliseconds(50));  // the next look grants it...
  EXPECT_EQ(c->exchange.stage(), Stage::kAdmission) << "...through the inbox, not inline";
  EXPECT_EQ(deliverInbox(), 1);
  ASSERT_EQ(model_.callCount(), 1);
  ScriptedUpstream::answer(model_.last(), 200, "ok");
  EXPECT_EQ(c->down.header("x-airbag-source"), "upstream");
  EXPECT_EQ(c->down.header("x-airbag-admission"), "queued");
  EXPECT_EQ(runtime("critical").admission()->stats(runtime("critical").admissionLane()).in_flight,
            0u)
      << "the place is given back at the end";
  // Not saturated, nobody waiting: no header at all.
  send(*c, "POST", "/crit", "{}");
  ScriptedUpstream::answer(model_.last(), 200, "ok");
  EXPECT_EQ(c->down.header("x-airbag-admission"), "");
}

TEST_F(AdmissionExchangeTest, ACriticalRequestDisplacesAQueuedOptionalOne) {
  setWaiting(9);
  auto o1 = client();
  auto o2 = client();
  auto crit = client();
  send(*o1, "POST", "/opt", "{}");
  send(*o2, "POST", "/opt", "{}");
  send(*crit, "POST", "/crit", "{}");  // the queue (max 2) is full
  EXPECT_EQ(crit->exchange.stage(), Stage::kAdmission);
  EXPECT_EQ(deliverInbox(), 1);
  EXPECT_EQ(o2->down.header("x-airbag-source"), "default") << "the newest optional one";
  EXPECT_EQ(o2->down.header("x-airbag-admission"), "saturated");
  EXPECT_EQ(runtime("optional").admissions(RouteRuntime::AdmissionOutcome::kDisplaced), 1u);
  EXPECT_FALSE(o1->down.done);
  // The saturation ends: critical goes first, then the optional one.
  setWaiting(0);
  dispatcher_.advance(absl::Milliseconds(50));
  EXPECT_EQ(deliverInbox(), 2);
  ASSERT_EQ(model_.callCount(), 2);
  EXPECT_EQ(crit->exchange.stage(), Stage::kAttempt);
  EXPECT_EQ(o1->exchange.stage(), Stage::kAttempt);
  // A client that leaves while granted gives its place back.
  o1->exchange.cancel();
  EXPECT_EQ(runtime("optional").admission()->stats(runtime("optional").admissionLane()).in_flight,
            0u);
}

TEST_F(AdmissionExchangeTest, AClientLeavingTheQueueLeavesNoPlaceBehind) {
  setWaiting(9);
  auto c = client();
  send(*c, "POST", "/crit", "{}");
  c->exchange.cancel();
  setWaiting(0);
  dispatcher_.advance(absl::Milliseconds(100));
  EXPECT_EQ(deliverInbox(), 0);
  policy::Admission::Stats s =
      runtime("critical").admission()->stats(runtime("critical").admissionLane());
  EXPECT_EQ(s.in_flight, 0u);
  EXPECT_EQ(s.queued[0], 0u);
}

TEST_F(AdmissionExchangeTest, AReloadKeepsTheQueueAndItsWaiters) {
  setWaiting(9);
  auto c = client();
  send(*c, "POST", "/crit", "{}");
  policy::Admission* before = runtime("critical").admission();
  uint32_t lane = runtime("critical").admissionLane();
  load(kAdmissionConfig);  // a reload: same upstream, same route names
  EXPECT_EQ(runtime("critical").admission(), before);
  EXPECT_EQ(runtime("critical").admissionLane(), lane);
  EXPECT_EQ(before->stats(lane).queued[0], 1u) << "the waiting request is still in the queue";
  setWaiting(0);
  dispatcher_.advance(absl::Milliseconds(50));
  EXPECT_EQ(deliverInbox(), 1);
  EXPECT_EQ(model_.callCount(), 1);
}

// A streamed answer's slowness is its time to first byte: a long generation
// with a quick first token is no slow call; a slow first token is.
TEST_F(AdmissionExchangeTest, AStreamsSlowCallSampleIsItsTimeToFirstByte) {
  auto c = client();
  for (int i = 0; i < 4; ++i) {
    send(*c, "POST", "/s", "{}");
    auto& call = model_.last();
    ScriptedUpstream::sendHead(call, 200, {{"Content-Type", "text/event-stream"}});
    dispatcher_.advance(absl::Milliseconds(10));
    ScriptedUpstream::sendData(call, "data: first\n\n");
    dispatcher_.advance(absl::Seconds(2));  // a long generation
    ScriptedUpstream::complete(call);
    ASSERT_TRUE(c->down.done);
  }
  policy::CircuitBreaker::Stats s = runtime("streams").breaker()->stats(dispatcher_.now());
  EXPECT_EQ(s.slow_calls, 0u);
  EXPECT_EQ(s.state, policy::CircuitState::kClosed);
  for (int i = 0; i < 4; ++i) {
    send(*c, "POST", "/s", "{}");
    auto& call = model_.last();
    ScriptedUpstream::sendHead(call, 200, {{"Content-Type", "text/event-stream"}});
    dispatcher_.advance(absl::Milliseconds(150));  // a slow first token
    ScriptedUpstream::sendData(call, "data: first\n\n");
    ScriptedUpstream::complete(call);
  }
  EXPECT_EQ(runtime("streams").breaker()->state(dispatcher_.now()), policy::CircuitState::kOpen);
}

}  // namespace
}  // namespace airbag::pipeline
