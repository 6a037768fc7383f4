// Tests of policy/retry_budget: ratio and per-second reserve semantics, the
// sliding window, bursts at the start of an outage, long seeded property runs
// against a reference model, an end-to-end bound on upstream tries, and
// concurrent use from several threads.
#include "policy/retry_budget.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <queue>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"

namespace airbag::policy {
namespace {

const absl::Time kStart = absl::UnixEpoch() + absl::Hours(24 * 365 * 50);

RetryBudgetConfig budgetConfig(double ratio, double min_per_second) {
  RetryBudgetConfig c;
  c.ratio = ratio;
  c.min_per_second = min_per_second;
  return c;
}

// Grants retries at `now` until refused; returns how many were granted
// (bounded, so a broken budget fails the test instead of hanging it).
int drain(RetryBudget& budget, absl::Time now) {
  int granted = 0;
  while (granted < 100000 && budget.tryAcquireRetry(now)) ++granted;
  return granted;
}

// ceil(num * k / den) for k >= 0: the reference for the reserve, in exact
// integers rather than the budget's own arithmetic.
int64_t ceilRatio(int64_t num, int64_t den, int64_t k) { return (num * k + den - 1) / den; }

struct RatioCase {
  const char* name;
  double ratio;
  double min_per_second;
  int requests;
  int want_retries;
  int want_reserve;
};

class RetryBudgetRatioTest : public ::testing::TestWithParam<RatioCase> {};

TEST_P(RetryBudgetRatioTest, GrantsRatioOfRequestsThenTheSecondsReserve) {
  const RatioCase& c = GetParam();
  RetryBudget budget(budgetConfig(c.ratio, c.min_per_second));
  for (int i = 0; i < c.requests; ++i) budget.recordRequest(kStart);
  EXPECT_EQ(drain(budget, kStart), c.want_retries);
  const RetryBudget::Stats s = budget.stats(kStart);
  EXPECT_EQ(s.requests, static_cast<uint64_t>(c.requests));
  EXPECT_EQ(s.retries, static_cast<uint64_t>(c.want_retries));
  EXPECT_EQ(s.reserve_retries, static_cast<uint64_t>(c.want_reserve));
  EXPECT_EQ(s.allowed_now, 0.0);
}

INSTANTIATE_TEST_SUITE_P(
    Table, RetryBudgetRatioTest,
    ::testing::Values(
        // 20% of 100 requests.
        RatioCase{"ratio_only", 0.2, 0, 100, 20, 0},
        // Fractions round down: 0.2 * 9 = 1.8 allows one.
        RatioCase{"ratio_fraction", 0.2, 0, 9, 1, 0},
        RatioCase{"no_requests_no_reserve", 0.2, 0, 0, 0, 0},
        // The reserve is per second: 10 now, not 10 x the window.
        RatioCase{"reserve_only", 0.2, 10, 0, 10, 10},
        RatioCase{"ratio_plus_reserve", 0.2, 10, 50, 20, 10},
        RatioCase{"ratio_one", 1.0, 0, 30, 30, 0},
        // A fractional reserve grants ceil(m) in the first second: 0.5 -> 1, 2.5 -> 3.
        RatioCase{"half_per_second", 0, 0.5, 0, 1, 1},
        RatioCase{"two_and_a_half_per_second", 0, 2.5, 0, 3, 3},
        RatioCase{"negative_and_nan_are_zero", -1, std::nan(""), 100, 0, 0},
        RatioCase{"zero", 0, 0, 1000, 0, 0}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(RetryBudgetTest, StatsReportWhatIsStillAllowed) {
  RetryBudget budget(budgetConfig(0.5, 1));
  for (int i = 0; i < 10; ++i) budget.recordRequest(kStart);
  RetryBudget::Stats s = budget.stats(kStart);
  EXPECT_EQ(s.allowed_now, 0.5 * 10 + 1);
  ASSERT_TRUE(budget.tryAcquireRetry(kStart));
  s = budget.stats(kStart);
  EXPECT_EQ(s.retries, 1u);
  EXPECT_EQ(s.reserve_retries, 0u);
  EXPECT_EQ(s.allowed_now, 5.0);
  // The ratio is spent first, the reserve last.
  EXPECT_EQ(drain(budget, kStart), 5);
  s = budget.stats(kStart);
  EXPECT_EQ(s.retries, 6u);
  EXPECT_EQ(s.reserve_retries, 1u);
  EXPECT_EQ(s.allowed_now, 0.0);
  // The next second brings the reserve back, and only the reserve.
  EXPECT_EQ(budget.stats(kStart + absl::Seconds(1)).allowed_now, 1.0);
}

// The old rule let a quiet route spend min_per_second x window (100 retries)
// in the first instant of an outage; now the first second gets its own share.
TEST(RetryBudgetTest, BurstAtOutageStartGetsOneSecondsReserve) {
  RetryBudget budget(budgetConfig(0.2, 10));
  budget.stats(kStart);  // the route has been up, and quiet, for a minute
  const absl::Time outage = kStart + absl::Seconds(60) + absl::Milliseconds(300);
  EXPECT_EQ(drain(budget, outage), 10);
  EXPECT_EQ(drain(budget, outage + absl::Milliseconds(699)), 0);
  EXPECT_EQ(drain(budget, outage + absl::Milliseconds(700)), 10);
  EXPECT_EQ(drain(budget, outage + absl::Milliseconds(1700)), 10);
  // Nothing saved up: five idle seconds still give 10, not 50.
  EXPECT_EQ(drain(budget, outage + absl::Seconds(7)), 10);
}

TEST(RetryBudgetTest, BurstWithTrafficGetsRatioPlusOneSecondsReserve) {
  RetryBudget budget(budgetConfig(0.2, 10));
  for (int i = 0; i < 500; ++i) {
    budget.recordRequest(kStart + absl::Milliseconds(10 * i));  // 100 req/s for 5 s
  }
  const absl::Time outage = kStart + absl::Seconds(5);
  EXPECT_EQ(drain(budget, outage), 0.2 * 500 + 10);
  const RetryBudget::Stats s = budget.stats(outage);
  EXPECT_EQ(s.retries, 110u);
  EXPECT_EQ(s.reserve_retries, 10u);
}

// Second k after the first seen has ceil(m(k+1)) - ceil(mk) reserve retries.
TEST(RetryBudgetTest, FractionalReserveFollowsCeilingSteps) {
  struct Case {
    double m;
    int64_t num, den;
  };
  for (const Case& c :
       {Case{0.5, 1, 2}, Case{0.1, 1, 10}, Case{2.5, 5, 2}, Case{0.75, 3, 4}, Case{3, 3, 1}}) {
    SCOPED_TRACE(c.m);
    RetryBudget budget(budgetConfig(0, c.m));
    std::vector<int64_t> per_second;
    for (int64_t k = 0; k < 100; ++k) {
      const absl::Time t = kStart + absl::Seconds(k) + absl::Milliseconds(k % 7 * 100);
      per_second.push_back(drain(budget, t));
      EXPECT_EQ(per_second.back(), ceilRatio(c.num, c.den, k + 1) - ceilRatio(c.num, c.den, k))
          << "second " << k;
    }
    // Any T whole seconds hold at most ceil(m * T) reserve retries.
    for (size_t a = 0; a < per_second.size(); ++a) {
      int64_t sum = 0;
      for (size_t t = 1; a + t <= per_second.size(); ++t) {
        sum += per_second[a + t - 1];
        ASSERT_LE(sum, ceilRatio(c.num, c.den, static_cast<int64_t>(t))) << a << "+" << t;
      }
    }
  }
}

TEST(RetryBudgetTest, WindowSlidesAndOldCountsExpire) {
  RetryBudget budget(budgetConfig(0.5, 0));  // window 10 s in 1 s buckets
  for (int i = 0; i < 10; ++i) budget.recordRequest(kStart);
  EXPECT_EQ(drain(budget, kStart), 5);

  // Still inside the window: the same requests and retries count.
  const absl::Time later = kStart + absl::Milliseconds(9500);
  EXPECT_EQ(drain(budget, later), 0);
  EXPECT_EQ(budget.stats(later).requests, 10u);

  // New requests at t=5 s survive the first bucket's expiry at t=10 s.
  budget.recordRequest(kStart + absl::Seconds(5));
  budget.recordRequest(kStart + absl::Seconds(5));
  const absl::Time after = kStart + absl::Seconds(10);
  RetryBudget::Stats s = budget.stats(after);
  EXPECT_EQ(s.requests, 2u);
  EXPECT_EQ(s.retries, 0u);
  EXPECT_EQ(drain(budget, after), 1);

  // Far in the future everything has expired.
  s = budget.stats(kStart + absl::Hours(1));
  EXPECT_EQ(s.requests, 0u);
  EXPECT_EQ(s.retries, 0u);
}

TEST(RetryBudgetTest, TimeNeverGoesBack) {
  RetryBudget budget(budgetConfig(1.0, 0));
  const absl::Time t = kStart + absl::Seconds(20);
  budget.recordRequest(t);
  // An earlier `now` counts in the newest bucket and expires nothing.
  budget.recordRequest(kStart);
  EXPECT_EQ(budget.stats(kStart).requests, 2u);
  EXPECT_TRUE(budget.tryAcquireRetry(kStart - absl::Hours(1)));
  EXPECT_EQ(budget.stats(t).retries, 1u);
  // Both requests were counted at t, so they leave the window together.
  EXPECT_EQ(budget.stats(t + absl::Seconds(9)).requests, 2u);
  EXPECT_EQ(budget.stats(t + absl::Seconds(10)).requests, 0u);
}

TEST(RetryBudgetTest, GoingBackInTimeDoesNotRefillTheReserve) {
  RetryBudget budget(budgetConfig(0, 2));
  const absl::Time t = kStart + absl::Seconds(20);
  EXPECT_EQ(drain(budget, t), 2);
  EXPECT_EQ(drain(budget, kStart), 0);
  EXPECT_EQ(drain(budget, absl::InfinitePast()), 0);
  EXPECT_EQ(drain(budget, absl::InfiniteFuture()), 0);
  EXPECT_EQ(drain(budget, t + absl::Seconds(1)), 2);
}

TEST(RetryBudgetTest, CustomWindow) {
  RetryBudget budget(budgetConfig(1, 2), absl::Seconds(1));  // ratio window 1 s, reserve 2/s
  EXPECT_EQ(budget.window(), absl::Seconds(1));
  EXPECT_EQ(drain(budget, kStart), 2);
  EXPECT_EQ(drain(budget, kStart + absl::Milliseconds(999)), 0);
  EXPECT_EQ(drain(budget, kStart + absl::Seconds(1)), 2);
  // The ratio's requests expire after 1 s, in 100 ms buckets.
  budget.recordRequest(kStart + absl::Milliseconds(1500));
  EXPECT_EQ(drain(budget, kStart + absl::Milliseconds(1550)), 1);
  budget.recordRequest(kStart + absl::Milliseconds(3050));
  EXPECT_EQ(drain(budget, kStart + absl::Milliseconds(3060)), 1 + 2);
  budget.recordRequest(kStart + absl::Milliseconds(3070));
  EXPECT_EQ(budget.stats(kStart + absl::Milliseconds(3999)).requests, 2u);
  EXPECT_EQ(budget.stats(kStart + absl::Milliseconds(4000)).requests, 0u);
}

// A reference model of the budget's rule, kept apart from its arithmetic:
// every event with its 1 s bucket, the window being the last ten buckets up
// to `now`'s, and the reserve as exact integer fractions.
class ReferenceBudget {
 public:
  enum Kind { kRequest, kRatioRetry, kReserveRetry };

  ReferenceBudget(double ratio, int64_t reserve_num, int64_t reserve_den)
      : ratio_(ratio), num_(reserve_num), den_(reserve_den) {}

  void add(absl::Time t, Kind kind) {
    events_.push_back({second(t), kind});
    if (kind == kReserveRetry) ++reserve_by_second_[second(t)];
  }
  void count(absl::Time now, uint64_t& requests, uint64_t& ratio, uint64_t& reserve) {
    if (!first_) first_ = second(now);
    const int64_t current = second(now);
    while (!events_.empty() && events_.front().second <= current - 10) events_.pop_front();
    requests = ratio = reserve = 0;
    for (const Event& e : events_) {
      ++(e.kind == kRequest ? requests : e.kind == kRatioRetry ? ratio : reserve);
    }
  }
  // What the rule says the next retry at `now` should be (kRequest: refused).
  Kind decide(absl::Time now) {
    uint64_t requests, ratio, reserve;
    count(now, requests, ratio, reserve);
    if (static_cast<double>(ratio) + 1 <= ratio_ * static_cast<double>(requests)) {
      return kRatioRetry;
    }
    const int64_t k = second(now) - *first_;
    const int64_t share = ceilRatio(num_, den_, k + 1) - ceilRatio(num_, den_, k);
    return reserve_by_second_[second(now)] < share ? kReserveRetry : kRequest;
  }
  const std::map<int64_t, int64_t>& reserveBySecond() const { return reserve_by_second_; }

  static int64_t second(absl::Time t) { return absl::ToUnixSeconds(t); }

 private:
  struct Event {
    int64_t second;
    Kind kind;
  };
  const double ratio_;
  const int64_t num_, den_;
  std::optional<int64_t> first_;
  std::deque<Event> events_;
  std::map<int64_t, int64_t> reserve_by_second_;
};

struct PropertyCase {
  const char* name;
  double ratio;
  double min_per_second;
  int64_t num, den;  // min_per_second as an exact fraction
  uint64_t seed;
};

class RetryBudgetPropertyTest : public ::testing::TestWithParam<PropertyCase> {};

// Over a long bursty run, against the reference model: every decision is the
// one the rule gives; the window's counts match; at every ratio grant the
// ratio retries in the window are within ratio x requests in the window; no
// second holds more reserve retries than its share; and any T consecutive
// whole seconds hold at most ceil(min_per_second x T) of them.
TEST_P(RetryBudgetPropertyTest, EveryGrantIsWithinTheRule) {
  const PropertyCase& c = GetParam();
  RetryBudget budget(budgetConfig(c.ratio, c.min_per_second));
  ReferenceBudget ref(c.ratio, c.num, c.den);
  std::mt19937_64 gen(c.seed);
  absl::Time now = absl::FromUnixSeconds(1700000000);
  const int64_t first_second = ReferenceBudget::second(now);
  uint64_t ratio_grants = 0, reserve_grants = 0, refused = 0;
  for (int i = 0; i < 200000; ++i) {
    // Mostly small steps, sometimes idle gaps of up to 15 s.
    const uint64_t r = gen();
    now += (r % 100 == 0) ? absl::Milliseconds(static_cast<int64_t>(r % 15000))
                          : absl::Microseconds(static_cast<int64_t>(r % 20000));
    uint64_t requests = 0, ratio = 0, reserve = 0;
    if ((r >> 32) % 3 != 0) {
      budget.recordRequest(now);
      ref.add(now, ReferenceBudget::kRequest);
    } else {
      const ReferenceBudget::Kind want = ref.decide(now);
      const uint64_t reserve_before = budget.stats(now).reserve_retries;
      const bool ok = budget.tryAcquireRetry(now);
      ASSERT_EQ(ok, want != ReferenceBudget::kRequest) << "step " << i;
      if (ok) {
        // Which kind the budget granted shows in its own reserve count.
        const bool from_reserve = budget.stats(now).reserve_retries == reserve_before + 1;
        ASSERT_EQ(from_reserve, want == ReferenceBudget::kReserveRetry) << "step " << i;
        ref.add(now, want);
        ++(from_reserve ? reserve_grants : ratio_grants);
        // (After a reserve grant the ratio retries may exceed the ratio: the
        // requests that paid for them can expire before they do.)
        ref.count(now, requests, ratio, reserve);
        if (!from_reserve) {
          ASSERT_LE(static_cast<double>(ratio), c.ratio * static_cast<double>(requests))
              << "step " << i;
        }
      } else {
        ++refused;
      }
    }
    ref.count(now, requests, ratio, reserve);
    const RetryBudget::Stats s = budget.stats(now);
    ASSERT_EQ(s.requests, requests) << "step " << i;
    ASSERT_EQ(s.retries, ratio + reserve) << "step " << i;
    ASSERT_EQ(s.reserve_retries, reserve) << "step " << i;
  }
  // The run exercised every branch.
  EXPECT_GT(ratio_grants, 1000u);
  EXPECT_GT(reserve_grants, 1000u);
  EXPECT_GT(refused, 1000u);

  // Per-second reserve grants, laid out over every second of the run.
  const int64_t last_second = ReferenceBudget::second(now);
  std::vector<int64_t> per_second(static_cast<size_t>(last_second - first_second + 1), 0);
  for (const auto& [second, n] : ref.reserveBySecond()) {
    ASSERT_LE(n, ceilRatio(c.num, c.den, 1)) << "second " << second;
    per_second[static_cast<size_t>(second - first_second)] = n;
  }
  for (size_t a = 0; a < per_second.size(); ++a) {
    int64_t sum = 0;
    for (size_t t = 1; t <= 300 && a + t <= per_second.size(); ++t) {
      sum += per_second[a + t - 1];
      ASSERT_LE(sum, ceilRatio(c.num, c.den, static_cast<int64_t>(t))) << a << "+" << t;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Runs, RetryBudgetPropertyTest,
                         ::testing::Values(PropertyCase{"integer_reserve", 0.2, 3, 3, 1, 20240601},
                                           PropertyCase{"fractional_reserve", 0.1, 2.5, 5, 2, 7},
                                           PropertyCase{"slow_reserve", 0.3, 0.4, 2, 5, 99}),
                         [](const auto& info) { return std::string(info.param.name); });

// End to end: every try fails at once (connection refused) and each request
// wants two retries, 25 ms and 75 ms after it starts. Over a T-second outage at
// a steady R req/s on a route that was idle before it, the upstream sees at
// most R*T*(1 + ratio) + min_per_second*T tries when the outage starts on a
// whole second; starting mid-second it touches T + 1 wall seconds, so one
// more second's reserve.
class RetryBudgetOutageTest
    : public ::testing::TestWithParam<std::tuple<int, int, absl::Duration>> {};

TEST_P(RetryBudgetOutageTest, TotalTriesStayWithinTheBound) {
  const auto [seconds, rate, offset] = GetParam();
  const double ratio = 0.2;
  const double min_per_second = 10;
  RetryBudget budget(budgetConfig(ratio, min_per_second));
  const absl::Time begin = kStart + offset;
  const int wall_seconds = seconds + (offset == absl::ZeroDuration() ? 0 : 1);
  const absl::Time end = begin + absl::Seconds(seconds);
  const int64_t requests = static_cast<int64_t>(rate) * seconds;

  // Tries by start time: (when, request, tries made before this one).
  using Try = std::tuple<absl::Time, int64_t, int>;
  std::priority_queue<Try, std::vector<Try>, std::greater<>> tries;
  for (int64_t i = 0; i < requests; ++i) {
    tries.emplace(begin + absl::Seconds(1) * i / rate, i, 0);
  }
  int64_t started_in_period = 0;
  int64_t retries = 0;
  while (!tries.empty()) {
    const auto [when, request, made] = tries.top();
    tries.pop();
    if (when < end) ++started_in_period;
    if (made == 0) budget.recordRequest(when);
    // The try failed at once; a retry needs the budget.
    if (made < 2 && budget.tryAcquireRetry(when)) {
      ++retries;
      tries.emplace(when + absl::Milliseconds(made == 0 ? 25 : 50), request, made + 1);
    }
  }
  const double bound = static_cast<double>(requests) * (1 + ratio) + min_per_second * wall_seconds;
  EXPECT_LE(static_cast<double>(started_in_period), bound)
      << "requests " << requests << " retries " << retries;
  // The budget was the limit, not the demand: retries did happen, and when
  // demand exceeds the supply the bound is nearly reached.
  EXPECT_GT(retries, 0);
  if (2 * rate > ratio * rate + min_per_second) {
    EXPECT_GE(static_cast<double>(started_in_period), bound - min_per_second - 2);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Outages, RetryBudgetOutageTest,
    ::testing::Combine(::testing::Values(3, 10, 30), ::testing::Values(1, 5, 50, 400),
                       ::testing::Values(absl::ZeroDuration(), absl::Milliseconds(123))),
    [](const auto& info) {
      return std::to_string(std::get<0>(info.param)) + "s_" +
             std::to_string(std::get<1>(info.param)) + "rps_" +
             (std::get<2>(info.param) == absl::ZeroDuration() ? "aligned" : "midsecond");
    });

TEST(RetryBudgetTest, ConcurrentUseKeepsCountsConsistent) {
  RetryBudget budget(budgetConfig(0.25, 0));
  constexpr int kThreads = 4;
  constexpr int kPerThread = 20000;
  std::atomic<uint64_t> granted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&budget, &granted] {
      for (int i = 0; i < kPerThread; ++i) {
        budget.recordRequest(kStart);
        if (budget.tryAcquireRetry(kStart)) granted.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  for (auto& th : threads) th.join();
  const RetryBudget::Stats s = budget.stats(kStart);
  EXPECT_EQ(s.requests, static_cast<uint64_t>(kThreads) * kPerThread);
  EXPECT_EQ(s.retries, granted.load());
  // Every grant was within the limit when made, and the requests never expired.
  EXPECT_LE(static_cast<double>(s.retries), 0.25 * static_cast<double>(s.requests));
  // After all requests, one more drain reaches the limit exactly.
  drain(budget, kStart);
  EXPECT_EQ(budget.stats(kStart).retries, static_cast<uint64_t>(kThreads) * kPerThread / 4);
}

TEST(RetryBudgetTest, ConcurrentBurstTakesExactlyTheSecondsReserve) {
  RetryBudget budget(budgetConfig(0.2, 7));
  constexpr int kThreads = 4;
  std::atomic<int> granted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&budget, &granted] {
      for (int i = 0; i < 1000; ++i) {
        if (budget.tryAcquireRetry(kStart + absl::Microseconds(i))) granted.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(granted.load(), 7);
  EXPECT_EQ(budget.stats(kStart).reserve_retries, 7u);
}

// Runs `threads` threads at once, each calling body(thread, i) for i < iterations.
void race(int threads, int iterations, const std::function<void(int, int)>& body) {
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&body, t, iterations] {
      for (int i = 0; i < iterations; ++i) body(t, i);
    });
  }
  for (auto& th : workers) th.join();
}

// Threads record requests and take retries while the window moves under them:
// each phase spans 300 ms and the threads go through it at different speeds, so
// they cross bucket boundaries at different moments and some run behind the
// newest bucket. After every phase the window holds no more ratio retries than
// the ratio allows plus the documented overshoot, one per other racing caller.
TEST(RetryBudgetTest, ConcurrentUseAcrossBucketsStaysWithinTheBound) {
  RetryBudget budget(budgetConfig(0.25, 0));
  constexpr int kThreads = 4;
  constexpr int kPerPhase = 150;
  std::atomic<uint64_t> granted{0};
  absl::Time phase_start = kStart + absl::Milliseconds(870);
  for (int phase = 0; phase < 200; ++phase) {
    race(kThreads, kPerPhase, [&](int t, int i) {
      // Thread t covers the phase in (t + 1) / kThreads of it, then stays at its end.
      const int64_t us = std::min<int64_t>(300000, int64_t{i} * 2000 * kThreads / (t + 1));
      const absl::Time now = phase_start + absl::Microseconds(us);
      budget.recordRequest(now);
      if (budget.tryAcquireRetry(now)) granted.fetch_add(1, std::memory_order_relaxed);
    });
    phase_start += absl::Milliseconds(300);
    const RetryBudget::Stats s = budget.stats(phase_start);
    ASSERT_LE(s.retries,
              static_cast<uint64_t>(0.25 * static_cast<double>(s.requests)) + (kThreads - 1))
        << "phase " << phase << ", requests " << s.requests;
    ASSERT_EQ(s.reserve_retries, 0u);
  }
  EXPECT_GT(granted.load(), 0u);
}

// Threads race through four seconds at different speeds, some behind the
// others: the reserve is one CAS per grant on the current second, so however
// they interleave the seconds never give more than their shares together.
TEST(RetryBudgetTest, ConcurrentReserveNeverExceedsItsRate) {
  for (double m : {7.0, 2.5}) {
    SCOPED_TRACE(testing::Message() << "min_per_second " << m);
    RetryBudget budget(budgetConfig(0, m));
    std::atomic<int64_t> granted{0};
    race(4, 4000, [&](int t, int i) {
      const absl::Time now = kStart + absl::Microseconds(int64_t{i} * (t + 1) * 250);
      if (budget.tryAcquireRetry(std::min(now, kStart + absl::Milliseconds(3999)))) {
        granted.fetch_add(1);
      }
    });
    // Seconds 0..3, every one reached by at least one thread with calls to spare.
    EXPECT_EQ(granted.load(), static_cast<int64_t>(std::ceil(m * 4)));
  }
}

}  // namespace
}  // namespace airbag::policy
