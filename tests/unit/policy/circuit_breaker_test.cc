// Tests of the circuit breaker: table-driven scenarios on a simulated clock, a
// seeded random property check of the probe accounting, and a 4-thread stress.
#include "policy/circuit_breaker.h"

#include <algorithm>
#include <atomic>
#include <deque>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace airbag::policy {
namespace {

using absl::Milliseconds;
using absl::Seconds;

const absl::Time kStart = absl::UnixEpoch() + absl::Hours(24 * 365 * 50);

CircuitBreakerConfig baseConfig() {
  CircuitBreakerConfig c;
  c.window = Seconds(10);
  c.minimum_calls = 100;
  c.failure_rate = 0.5;
  c.slow_call_duration = Seconds(1);
  c.slow_call_rate = 1.0;
  c.consecutive_failures = 3;
  c.open_for = Seconds(5);
  c.max_open_for = Seconds(12);
  c.half_open_calls = 2;
  return c;
}

// One step of a scenario. Calls made by kOk/kFail/kSlow finish at once.
struct Step {
  enum Kind {
    kAdvance,       // d
    kOk,            // n allowed non-probe calls, each succeeding
    kFail,          // n allowed non-probe calls, each failing
    kSlow,          // n allowed non-probe calls, each succeeding after 2s
    kHold,          // one allowed non-probe call, kept open
    kHeldOk,        // the oldest held call succeeds
    kHeldFail,      // the oldest held call fails
    kProbe,         // one allowed probe, kept open
    kProbeOk,       // the oldest open probe succeeds
    kProbeFail,     // the oldest open probe fails
    kProbeSlow,     // the oldest open probe succeeds after 2s
    kProbeAbandon,  // the oldest open probe ends without a verdict
    kRefused,       // tryAcquire refused with retry_after == d
    kState,         // state == s
    kOpenFor,       // stats().current_open_for == d
    kOverride,      // setOverride(o)
    kTransitions,   // transitions(s) == n
  };
  Kind kind;
  int n = 1;
  absl::Duration d = absl::ZeroDuration();
  CircuitState s = CircuitState::kClosed;
  CircuitOverride o = CircuitOverride::kAuto;
};

Step adv(absl::Duration d) { return {Step::kAdvance, 1, d}; }
Step ok(int n = 1) { return {Step::kOk, n}; }
Step fail(int n = 1) { return {Step::kFail, n}; }
Step slow(int n = 1) { return {Step::kSlow, n}; }
Step op(Step::Kind k) { return {k}; }
Step refused(absl::Duration d) { return {Step::kRefused, 1, d}; }
Step is(CircuitState s) { return {Step::kState, 1, absl::ZeroDuration(), s}; }
Step openFor(absl::Duration d) { return {Step::kOpenFor, 1, d}; }
Step force(CircuitOverride o) {
  return {Step::kOverride, 1, absl::ZeroDuration(), CircuitState::kClosed, o};
}
Step transitions(CircuitState s, int n) { return {Step::kTransitions, n, absl::ZeroDuration(), s}; }

struct Case {
  std::string name;
  CircuitBreakerConfig config;
  std::vector<Step> steps;
};

// Names the case in test output instead of dumping its bytes.
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

CircuitBreakerConfig with(void (*edit)(CircuitBreakerConfig&)) {
  CircuitBreakerConfig c = baseConfig();
  edit(c);
  return c;
}

constexpr CircuitState kClosed = CircuitState::kClosed;
constexpr CircuitState kOpen = CircuitState::kOpen;
constexpr CircuitState kHalfOpen = CircuitState::kHalfOpen;

std::vector<Case> cases() {
  const CircuitBreakerConfig rate = with([](CircuitBreakerConfig& c) {
    c.consecutive_failures = 0;
    c.minimum_calls = 10;
  });
  return {
      {"ConsecutiveFailuresTrip", baseConfig(), {fail(2), is(kClosed), fail(1), is(kOpen)}},
      {"SuccessResetsConsecutiveCount",
       baseConfig(),
       {fail(2), ok(), fail(2), is(kClosed), fail(), is(kOpen)}},
      {"RateTripsOnlyOnceMinimumCallsRecorded", rate, {fail(9), is(kClosed), ok(), is(kOpen)}},
      {"RateExactlyAtThresholdTrips", rate, {ok(5), fail(4), is(kClosed), fail(), is(kOpen)}},
      {"RateBelowThresholdStaysClosed", rate, {ok(6), fail(4), is(kClosed), ok(10), is(kClosed)}},
      {"FractionalRateMatchesExactly",
       with([](CircuitBreakerConfig& c) {
         c.consecutive_failures = 0;
         c.minimum_calls = 10;
         c.failure_rate = 0.3;
       }),
       {ok(7), fail(2), is(kClosed), fail(), is(kOpen)}},
      {"SlowCallRateTrips",
       with([](CircuitBreakerConfig& c) {
         c.minimum_calls = 4;
         c.slow_call_rate = 0.5;
       }),
       {ok(2), slow(), is(kClosed), slow(), is(kOpen)}},
      {"SlowCallRateOfOneIsOff",
       with([](CircuitBreakerConfig& c) { c.minimum_calls = 4; }),
       {slow(30), is(kClosed)}},
      {"WindowForgetsOldFailures",
       with([](CircuitBreakerConfig& c) {
         c.consecutive_failures = 0;
         c.minimum_calls = 4;
       }),
       {fail(3), adv(Seconds(11)), ok(3), fail(), is(kClosed), fail(2), is(kOpen)}},
      {"WindowKeepsRecentFailures",
       with([](CircuitBreakerConfig& c) {
         c.consecutive_failures = 0;
         c.minimum_calls = 4;
       }),
       {fail(2), adv(Seconds(8)), ok(1), fail(), is(kOpen)}},
      {"OpenRefusesUntilOpenForThenHalfOpen",
       baseConfig(),
       {fail(3), is(kOpen), refused(Seconds(5)), adv(Seconds(4)), refused(Seconds(1)), is(kOpen),
        adv(Seconds(1)), is(kHalfOpen), transitions(kHalfOpen, 1)}},
      {"HalfOpenAdmitsExactlyHalfOpenCalls",
       with([](CircuitBreakerConfig& c) { c.half_open_calls = 3; }),
       {fail(3), adv(Seconds(5)), op(Step::kProbe), op(Step::kProbe), op(Step::kProbe),
        refused(Seconds(1)), refused(Seconds(1)), is(kHalfOpen)}},
      {"AllProbesSucceedCloses",
       baseConfig(),
       {fail(3), adv(Seconds(5)), op(Step::kProbe), op(Step::kProbe), op(Step::kProbeOk),
        is(kHalfOpen), op(Step::kProbeOk), is(kClosed), openFor(Seconds(5)),
        // The past is forgotten: two more failures do not trip.
        fail(2), is(kClosed), transitions(kClosed, 1)}},
      {"ProbeFailureReopensWithDoubledOpenForCapped",
       baseConfig(),
       {fail(3),
        openFor(Seconds(5)),
        adv(Seconds(5)),
        op(Step::kProbe),
        op(Step::kProbeFail),
        is(kOpen),
        openFor(Seconds(10)),
        refused(Seconds(10)),
        adv(Seconds(10)),
        is(kHalfOpen),
        op(Step::kProbe),
        op(Step::kProbeFail),
        openFor(Seconds(12)),
        adv(Seconds(12)),
        op(Step::kProbe),
        op(Step::kProbe),
        op(Step::kProbeOk),
        op(Step::kProbeOk),
        is(kClosed),
        openFor(Seconds(5)),
        fail(3),
        refused(Seconds(5)),
        transitions(kOpen, 4)}},
      {"ProbeFailureAfterSuccessReopens",
       baseConfig(),
       {fail(3), adv(Seconds(5)), op(Step::kProbe), op(Step::kProbeOk), op(Step::kProbe),
        op(Step::kProbeFail), is(kOpen), openFor(Seconds(10))}},
      {"SlowProbeFailsWhenSlowTrippingIsOn",
       with([](CircuitBreakerConfig& c) {
         c.slow_call_rate = 0.8;
         c.half_open_calls = 1;
       }),
       {fail(3), adv(Seconds(5)), op(Step::kProbe), op(Step::kProbeSlow), is(kOpen)}},
      {"SlowProbeSucceedsWhenSlowTrippingIsOff",
       with([](CircuitBreakerConfig& c) { c.half_open_calls = 1; }),
       {fail(3), adv(Seconds(5)), op(Step::kProbe), op(Step::kProbeSlow), is(kClosed)}},
      {"LateNonProbeResultsDoNotCountAsProbes",
       with([](CircuitBreakerConfig& c) { c.half_open_calls = 1; }),
       {op(Step::kHold), op(Step::kHold), fail(3), is(kOpen), adv(Seconds(5)), is(kHalfOpen),
        op(Step::kHeldOk), op(Step::kHeldFail), is(kHalfOpen), op(Step::kProbe),
        refused(Seconds(1)), op(Step::kProbeOk), is(kClosed)}},
      {"AbandonedProbeGivesItsSlotBack",
       with([](CircuitBreakerConfig& c) { c.half_open_calls = 1; }),
       {fail(3), adv(Seconds(5)), op(Step::kProbe), refused(Seconds(1)), op(Step::kProbeAbandon),
        is(kHalfOpen), op(Step::kProbe), op(Step::kProbeOk), is(kClosed)}},
      {"NextRoundWaitsForProbesOfTheFailedRound",
       baseConfig(),
       {fail(3), adv(Seconds(5)), op(Step::kProbe), op(Step::kProbe), op(Step::kProbeFail),
        adv(Seconds(30)), is(kOpen), refused(Seconds(1)),
        // The straggler reports (a success, but of the failed round): it closes nothing.
        op(Step::kProbeOk), is(kHalfOpen), op(Step::kProbe), op(Step::kProbe), refused(Seconds(1)),
        op(Step::kProbeOk), op(Step::kProbeOk), is(kClosed)}},
      {"ForceOpenRefusesWithOpenFor",
       baseConfig(),
       {force(CircuitOverride::kForceOpen), is(kOpen), refused(Seconds(5)), adv(Seconds(60)),
        refused(Seconds(5)), transitions(kOpen, 1)}},
      {"AutoAfterForceOpenStartsWithAProbeRound",
       baseConfig(),
       {force(CircuitOverride::kForceOpen), force(CircuitOverride::kAuto), is(kHalfOpen),
        op(Step::kProbe), op(Step::kProbe), refused(Seconds(1)), op(Step::kProbeOk),
        op(Step::kProbeOk), is(kClosed)}},
      {"ForceClosedAllowsAndRecordsWithoutTripping",
       baseConfig(),
       {fail(3), is(kOpen), force(CircuitOverride::kForceClosed), is(kClosed), fail(10),
        is(kClosed), force(CircuitOverride::kAuto), is(kClosed), fail(), is(kOpen),
        openFor(Seconds(5))}},
      {"ForceClosedOrphansOpenProbes",
       with([](CircuitBreakerConfig& c) { c.half_open_calls = 1; }),
       {fail(3), adv(Seconds(5)), op(Step::kProbe), force(CircuitOverride::kForceClosed),
        op(Step::kProbeFail), is(kClosed), ok(), force(CircuitOverride::kAuto), is(kClosed)}},
  };
}

class CircuitBreakerCaseTest : public testing::TestWithParam<Case> {};

TEST_P(CircuitBreakerCaseTest, Runs) {
  const Case& c = GetParam();
  CircuitBreaker breaker(c.config);
  absl::Time now = kStart;
  std::deque<absl::Time> held, probes;  // start times of calls still open
  int i = 0;
  for (const Step& step : c.steps) {
    SCOPED_TRACE(testing::Message() << "step " << i++);
    switch (step.kind) {
      case Step::kAdvance:
        now += step.d;
        break;
      case Step::kOk:
      case Step::kFail:
      case Step::kSlow:
        for (int k = 0; k < step.n; ++k) {
          const CircuitBreaker::Permit p = breaker.tryAcquire(now);
          ASSERT_TRUE(p.allowed);
          ASSERT_FALSE(p.probe);
          breaker.onResult(now, step.kind != Step::kFail,
                           step.kind == Step::kSlow ? Seconds(2) : Milliseconds(10), false);
        }
        break;
      case Step::kHold: {
        const CircuitBreaker::Permit p = breaker.tryAcquire(now);
        ASSERT_TRUE(p.allowed);
        ASSERT_FALSE(p.probe);
        held.push_back(now);
        break;
      }
      case Step::kHeldOk:
      case Step::kHeldFail:
        ASSERT_FALSE(held.empty());
        breaker.onResult(now, step.kind == Step::kHeldOk, now - held.front(), false);
        held.pop_front();
        break;
      case Step::kProbe: {
        const CircuitBreaker::Permit p = breaker.tryAcquire(now);
        ASSERT_TRUE(p.allowed);
        ASSERT_TRUE(p.probe);
        EXPECT_EQ(p.retry_after, absl::ZeroDuration());
        probes.push_back(now);
        break;
      }
      case Step::kProbeOk:
      case Step::kProbeFail:
      case Step::kProbeSlow:
        ASSERT_FALSE(probes.empty());
        breaker.onResult(now, step.kind != Step::kProbeFail,
                         step.kind == Step::kProbeSlow ? Seconds(2) : Milliseconds(10), true);
        probes.pop_front();
        break;
      case Step::kProbeAbandon:
        ASSERT_FALSE(probes.empty());
        breaker.onAbandoned(true);
        probes.pop_front();
        break;
      case Step::kRefused: {
        const CircuitBreaker::Permit p = breaker.tryAcquire(now);
        EXPECT_FALSE(p.allowed);
        EXPECT_FALSE(p.probe);
        EXPECT_EQ(p.retry_after, step.d);
        break;
      }
      case Step::kState:
        EXPECT_EQ(circuitStateLabel(breaker.state(now)), circuitStateLabel(step.s));
        EXPECT_EQ(breaker.stats(now).state, step.s);
        break;
      case Step::kOpenFor:
        EXPECT_EQ(breaker.stats(now).current_open_for, step.d);
        break;
      case Step::kOverride:
        breaker.setOverride(step.o);
        EXPECT_EQ(breaker.override(), step.o);
        break;
      case Step::kTransitions:
        EXPECT_EQ(breaker.transitions(step.s), static_cast<uint64_t>(step.n));
        break;
    }
    if (testing::Test::HasFatalFailure()) return;
  }
  // Whatever the scenario, the probe count in the stats matches the probes open.
  EXPECT_EQ(breaker.stats(now).probes_in_flight, probes.size());
}

INSTANTIATE_TEST_SUITE_P(Scenarios, CircuitBreakerCaseTest, testing::ValuesIn(cases()),
                         [](const testing::TestParamInfo<Case>& info) { return info.param.name; });

TEST(CircuitBreakerTest, StateLabels) {
  EXPECT_EQ(circuitStateLabel(CircuitState::kClosed), "closed");
  EXPECT_EQ(circuitStateLabel(CircuitState::kOpen), "open");
  EXPECT_EQ(circuitStateLabel(CircuitState::kHalfOpen), "half_open");
}

TEST(CircuitBreakerTest, StatsReportWindowAndTimeToHalfOpen) {
  CircuitBreakerConfig c = baseConfig();
  c.slow_call_rate = 0.9;
  c.minimum_calls = 1000;
  CircuitBreaker breaker(c);
  absl::Time now = kStart;
  breaker.onResult(now, true, Seconds(2), false);
  breaker.onResult(now, false, Milliseconds(5), false);
  breaker.onResult(now, false, Milliseconds(5), false);
  CircuitBreaker::Stats s = breaker.stats(now);
  EXPECT_EQ(s.calls, 3u);
  EXPECT_EQ(s.failures, 2u);
  EXPECT_EQ(s.slow_calls, 1u);
  EXPECT_EQ(s.consecutive_failures, 2u);
  EXPECT_EQ(s.until_half_open, absl::ZeroDuration());
  breaker.onResult(now, false, Milliseconds(5), false);  // third in a row: trips
  now += Seconds(2);
  s = breaker.stats(now);
  EXPECT_EQ(s.state, CircuitState::kOpen);
  EXPECT_EQ(s.until_half_open, Seconds(3));
  EXPECT_EQ(s.current_open_for, Seconds(5));
  now += Seconds(10);
  EXPECT_EQ(breaker.stats(now).calls, 0u) << "the window has slid past every result";
}

TEST(CircuitBreakerTest, ReconfigureKeepsStateAndClampsOpenFor) {
  CircuitBreaker breaker(baseConfig());
  absl::Time now = kStart;
  for (int i = 0; i < 3; ++i) breaker.onResult(now, false, Milliseconds(1), false);
  ASSERT_EQ(breaker.state(now), CircuitState::kOpen);
  CircuitBreakerConfig c = baseConfig();
  c.open_for = Seconds(7);
  c.max_open_for = Seconds(20);
  breaker.reconfigure(c);
  EXPECT_EQ(breaker.state(now), CircuitState::kOpen);
  EXPECT_EQ(breaker.stats(now).current_open_for, Seconds(7));
}

// Drives the breaker with a long seeded random mix of calls, results, abandons
// and time steps, checking after every step that no more than half_open_calls
// probes are ever outstanding (whatever round admitted them), that the probe
// count in the stats is exact, and that an open breaker admits nothing.
TEST(CircuitBreakerPropertyTest, NeverMoreProbesThanHalfOpenCalls) {
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    SCOPED_TRACE(testing::Message() << "seed " << seed);
    std::mt19937 rng(seed);
    CircuitBreakerConfig c = baseConfig();
    c.half_open_calls = 1 + seed % 4;
    c.consecutive_failures = seed % 3 == 0 ? 0 : 2 + seed % 3;
    c.minimum_calls = 5;
    c.slow_call_rate = seed % 2 == 0 ? 0.6 : 1.0;
    c.open_for = Milliseconds(200);
    c.max_open_for = Seconds(2);
    CircuitBreaker breaker(c);
    absl::Time now = kStart;
    struct Call {
      absl::Time start;
      bool probe;
    };
    std::vector<Call> open_calls;
    uint32_t probes_out = 0;
    uint32_t admitted_in_round = 0;
    uint64_t rounds_seen = 0;
    std::uniform_int_distribution<int> pick(0, 99);
    for (int step = 0; step < 20000; ++step) {
      const int r = pick(rng);
      if (r < 10) {
        // Long steps on odd seeds let rounds end while probes of the last one are out.
        now += Milliseconds(pick(rng) * (seed % 2 == 0 ? 3 : 20));
      } else if (r < 55) {
        const CircuitState before = breaker.state(now);
        const CircuitBreaker::Permit p = breaker.tryAcquire(now);
        if (before == CircuitState::kOpen) {
          ASSERT_FALSE(p.allowed);
        }
        if (!p.allowed) {
          ASSERT_GT(p.retry_after, absl::ZeroDuration());
          continue;
        }
        if (p.probe) {
          const uint64_t rounds = breaker.transitions(CircuitState::kHalfOpen);
          if (rounds != rounds_seen) admitted_in_round = 0;
          rounds_seen = rounds;
          ++admitted_in_round;
          ++probes_out;
          ASSERT_LE(probes_out, c.half_open_calls);
          ASSERT_LE(admitted_in_round, c.half_open_calls);
        }
        open_calls.push_back({now, p.probe});
      } else if (!open_calls.empty()) {
        const size_t k = std::uniform_int_distribution<size_t>(0, open_calls.size() - 1)(rng);
        const Call call = open_calls[k];
        open_calls.erase(open_calls.begin() + static_cast<std::ptrdiff_t>(k));
        if (call.probe) --probes_out;
        if (r < 60) {
          breaker.onAbandoned(call.probe);
          if (call.probe && admitted_in_round > 0) --admitted_in_round;
        } else {
          const bool success = pick(rng) < 60;
          const absl::Duration took = (now - call.start) + Milliseconds(pick(rng) * 25);
          breaker.onResult(now, success, took, call.probe);
        }
      }
      ASSERT_EQ(breaker.stats(now).probes_in_flight, probes_out);
    }
    // Every round that ended by closing needed a half-open round first.
    EXPECT_LE(breaker.transitions(CircuitState::kClosed),
              breaker.transitions(CircuitState::kHalfOpen));
    EXPECT_LE(breaker.transitions(CircuitState::kHalfOpen),
              breaker.transitions(CircuitState::kOpen));
    EXPECT_GT(breaker.transitions(CircuitState::kHalfOpen), 0u) << "the mix reached half-open";
  }
}

// Four threads share one breaker (as the workers of a route do). Each holds its
// probes while checking a shared count of probes outstanding against the quota.
TEST(CircuitBreakerThreadTest, FourThreadsKeepProbeQuota) {
  CircuitBreakerConfig c = baseConfig();
  c.half_open_calls = 2;
  c.consecutive_failures = 3;
  c.open_for = Milliseconds(20);
  c.max_open_for = Milliseconds(80);
  CircuitBreaker breaker(c);
  std::atomic<int64_t> clock_ms{0};
  std::atomic<int> probes_out{0};
  std::atomic<int> max_probes_out{0};
  std::atomic<int64_t> probes_admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(100 + t);
      std::uniform_int_distribution<int> pick(0, 99);
      for (int i = 0; i < 20000; ++i) {
        const absl::Time now = kStart + Milliseconds(clock_ms.fetch_add(1));
        const CircuitBreaker::Permit p = breaker.tryAcquire(now);
        if (!p.allowed) continue;
        if (p.probe) {
          probes_admitted.fetch_add(1);
          const int out = probes_out.fetch_add(1) + 1;
          int seen = max_probes_out.load();
          while (out > seen && !max_probes_out.compare_exchange_weak(seen, out)) {
          }
        }
        const bool success = pick(rng) < 50;
        if (p.probe) probes_out.fetch_sub(1);
        if (pick(rng) < 5) {
          breaker.onAbandoned(p.probe);
        } else {
          breaker.onResult(now, success, Milliseconds(1), p.probe);
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();
  const absl::Time end = kStart + Milliseconds(clock_ms.load());
  EXPECT_LE(max_probes_out.load(), 2);
  EXPECT_GT(probes_admitted.load(), 0);
  EXPECT_EQ(breaker.stats(end).probes_in_flight, 0u);
  EXPECT_LE(breaker.transitions(CircuitState::kClosed),
            breaker.transitions(CircuitState::kHalfOpen));
  EXPECT_LE(breaker.transitions(CircuitState::kHalfOpen), breaker.transitions(CircuitState::kOpen));
}

// Runs `threads` threads at once, each calling body(thread) once.
void race(int threads, const std::function<void(int)>& body) {
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) workers.emplace_back([&body, t] { body(t); });
  for (std::thread& th : workers) th.join();
}

// Closed-state results are counted without the mutex: none may be lost, and a
// failure rate under the threshold must never trip however the threads race.
TEST(CircuitBreakerThreadTest, ClosedStateCountsEveryResultAndTripsOnlyWhenDue) {
  CircuitBreakerConfig c = baseConfig();
  c.consecutive_failures = 0;
  c.minimum_calls = 50;
  c.failure_rate = 0.5;
  CircuitBreaker breaker(c);
  constexpr int kPerThread = 20000;
  // One failure in four: under the rate, so the breaker stays closed.
  race(4, [&](int t) {
    for (int i = 0; i < kPerThread; ++i) {
      const absl::Time now = kStart + absl::Microseconds(i);  // one bucket
      ASSERT_TRUE(breaker.tryAcquire(now).allowed);
      breaker.onResult(now, (i + t) % 4 != 0, Milliseconds(1), false);
    }
  });
  CircuitBreaker::Stats s = breaker.stats(kStart + absl::Microseconds(kPerThread));
  EXPECT_EQ(s.state, CircuitState::kClosed);
  EXPECT_EQ(s.calls, 4u * kPerThread);
  EXPECT_EQ(s.failures, static_cast<uint64_t>(kPerThread));
  EXPECT_EQ(breaker.transitions(CircuitState::kOpen), 0u);
  // Now only failures: the rate crosses the threshold and the breaker trips, once.
  race(4, [&](int) {
    for (int i = 0; i < kPerThread; ++i) {
      const absl::Time now = kStart + absl::Milliseconds(30);
      const CircuitBreaker::Permit p = breaker.tryAcquire(now);
      if (p.allowed) breaker.onResult(now, false, Milliseconds(1), false);
    }
  });
  s = breaker.stats(kStart + absl::Milliseconds(30));
  EXPECT_EQ(s.state, CircuitState::kOpen);
  EXPECT_EQ(breaker.transitions(CircuitState::kOpen), 1u);
  EXPECT_GE(2 * s.failures, s.calls);
}

// Round after round, the breaker is tripped by racing failures, then many
// threads race for the half-open probes at the same instant: exactly
// half_open_calls are admitted, a failed round doubles the open duration up to
// its cap, and a round of successes closes the breaker.
TEST(CircuitBreakerThreadTest, RacingThreadsGetExactlyTheProbeQuota) {
  CircuitBreakerConfig c = baseConfig();
  c.half_open_calls = 3;
  c.consecutive_failures = 4;
  c.open_for = Seconds(1);
  c.max_open_for = Seconds(4);
  CircuitBreaker breaker(c);
  absl::Time now = kStart;
  for (int round = 0; round < 40; ++round) {
    SCOPED_TRACE(testing::Message() << "round " << round);
    // Trip from closed (lock-free counting) or reopen from a failed round.
    if (breaker.state(now) == CircuitState::kClosed) {
      race(4, [&](int) {
        for (int i = 0; i < 8; ++i) {
          const CircuitBreaker::Permit p = breaker.tryAcquire(now);
          if (p.allowed) breaker.onResult(now, false, Milliseconds(1), p.probe);
        }
      });
      ASSERT_EQ(breaker.state(now), CircuitState::kOpen) << "consecutive failures trip";
    }
    const absl::Duration open_for = breaker.stats(now).current_open_for;
    now += open_for;
    std::atomic<int> probes{0};
    std::atomic<int> refused{0};
    race(4, [&](int) {
      for (int i = 0; i < 50; ++i) {
        const CircuitBreaker::Permit p = breaker.tryAcquire(now);
        if (p.allowed) {
          ASSERT_TRUE(p.probe);
          probes.fetch_add(1);
        } else {
          refused.fetch_add(1);
        }
      }
    });
    ASSERT_EQ(probes.load(), 3);
    ASSERT_EQ(refused.load(), 4 * 50 - 3);
    ASSERT_EQ(breaker.stats(now).probes_in_flight, 3u);
    const bool fail_round = round % 3 != 2;
    race(3, [&](int t) { breaker.onResult(now, !(fail_round && t == 1), Milliseconds(1), true); });
    if (fail_round) {
      ASSERT_EQ(breaker.state(now), CircuitState::kOpen);
      ASSERT_EQ(breaker.stats(now).current_open_for, std::min(open_for * 2, Seconds(4)));
    } else {
      ASSERT_EQ(breaker.state(now), CircuitState::kClosed);
      ASSERT_EQ(breaker.stats(now).current_open_for, Seconds(1));
    }
    ASSERT_EQ(breaker.stats(now).probes_in_flight, 0u);
  }
  EXPECT_EQ(breaker.transitions(CircuitState::kHalfOpen), 40u);
}

}  // namespace
}  // namespace airbag::policy
