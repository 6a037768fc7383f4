// Tests of policy/retry_budget: ratio and reserve semantics, the sliding
// window, a long seeded property run against a reference model, and
// concurrent use from several threads.
#include "policy/retry_budget.h"

#include <atomic>
#include <cstdint>
#include <deque>
#include <random>
#include <thread>
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

struct RatioCase {
  const char* name;
  double ratio;
  double min_per_second;
  int requests;
  int want_retries;
};

class RetryBudgetRatioTest : public ::testing::TestWithParam<RatioCase> {};

TEST_P(RetryBudgetRatioTest, GrantsRatioOfRequestsPlusReserve) {
  const RatioCase& c = GetParam();
  RetryBudget budget(budgetConfig(c.ratio, c.min_per_second));
  for (int i = 0; i < c.requests; ++i) budget.recordRequest(kStart);
  EXPECT_EQ(drain(budget, kStart), c.want_retries);
  const RetryBudget::Stats s = budget.stats(kStart);
  EXPECT_EQ(s.requests, static_cast<uint64_t>(c.requests));
  EXPECT_EQ(s.retries, static_cast<uint64_t>(c.want_retries));
  EXPECT_LT(s.allowed_now, 1.0);
}

INSTANTIATE_TEST_SUITE_P(
    Table, RetryBudgetRatioTest,
    ::testing::Values(
        // 20% of 100 requests.
        RatioCase{"ratio_only", 0.2, 0, 100, 20},
        // Fractions round down: 0.2 * 9 = 1.8 allows one.
        RatioCase{"ratio_fraction", 0.2, 0, 9, 1},
        RatioCase{"no_requests_no_reserve", 0.2, 0, 0, 0},
        // min_per_second 10 over a 10 s window: 100 retries with no traffic at all.
        RatioCase{"reserve_only", 0.2, 10, 0, 100},
        RatioCase{"ratio_plus_reserve", 0.2, 10, 50, 110}, RatioCase{"ratio_one", 1.0, 0, 30, 30},
        RatioCase{"zero", 0, 0, 1000, 0}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(RetryBudgetTest, StatsReportWhatIsStillAllowed) {
  RetryBudget budget(budgetConfig(0.5, 1));
  for (int i = 0; i < 10; ++i) budget.recordRequest(kStart);
  RetryBudget::Stats s = budget.stats(kStart);
  EXPECT_DOUBLE_EQ(s.allowed_now, 0.5 * 10 + 1 * 10);
  ASSERT_TRUE(budget.tryAcquireRetry(kStart));
  s = budget.stats(kStart);
  EXPECT_EQ(s.retries, 1u);
  EXPECT_DOUBLE_EQ(s.allowed_now, 14.0);
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

TEST(RetryBudgetTest, CustomWindow) {
  RetryBudget budget(budgetConfig(0, 2), absl::Seconds(1));  // reserve: 2/s over 1 s
  EXPECT_EQ(budget.window(), absl::Seconds(1));
  EXPECT_EQ(drain(budget, kStart), 2);
  EXPECT_EQ(drain(budget, kStart + absl::Milliseconds(999)), 0);
  EXPECT_EQ(drain(budget, kStart + absl::Seconds(1)), 2);
}

// A reference model: every event kept with its time, counted in the window
// the budget promises (the last ten whole 1 s buckets up to `now`'s bucket).
class ReferenceWindow {
 public:
  void add(absl::Time t, bool retry) { events_.push_back({bucket(t), retry}); }
  void count(absl::Time now, uint64_t& requests, uint64_t& retries) {
    const int64_t current = bucket(now);
    while (!events_.empty() && events_.front().bucket <= current - 10) events_.pop_front();
    requests = retries = 0;
    for (const Event& e : events_) ++(e.retry ? retries : requests);
  }

 private:
  static int64_t bucket(absl::Time t) { return absl::ToUnixSeconds(t); }
  struct Event {
    int64_t bucket;
    bool retry;
  };
  std::deque<Event> events_;
};

// Over a long bursty run: the window's counts match the reference model, a
// retry is granted exactly when it keeps retries within
// ratio * requests + reserve at that instant, and refused exactly when it
// would not. (Between grants the requests that paid for older retries may
// expire before those retries do, so the bound is a property of each grant.)
TEST(RetryBudgetTest, PropertyGrantsExactlyWithinTheLimit) {
  const double ratio = 0.2;
  const double min_per_second = 3;
  const double reserve = min_per_second * 10;
  RetryBudget budget(budgetConfig(ratio, min_per_second));
  ReferenceWindow ref;
  std::mt19937_64 gen(20240601);
  absl::Time now = absl::FromUnixSeconds(1700000000);
  uint64_t granted = 0, refused = 0;
  for (int i = 0; i < 200000; ++i) {
    // Mostly small steps, sometimes idle gaps of up to 15 s.
    const uint64_t r = gen();
    now += (r % 100 == 0) ? absl::Milliseconds(static_cast<int64_t>(r % 15000))
                          : absl::Microseconds(static_cast<int64_t>(r % 20000));
    uint64_t requests = 0, retries = 0;
    if ((r >> 32) % 3 != 0) {
      budget.recordRequest(now);
      ref.add(now, false);
      ref.count(now, requests, retries);
    } else {
      const bool ok = budget.tryAcquireRetry(now);
      if (ok) ref.add(now, true);
      ref.count(now, requests, retries);
      const double limit = ratio * static_cast<double>(requests) + reserve;
      if (ok) {
        ++granted;
        ASSERT_LE(static_cast<double>(retries), limit) << "step " << i;
      } else {
        ++refused;
        ASSERT_GT(static_cast<double>(retries) + 1, limit) << "step " << i;
      }
    }
    const RetryBudget::Stats s = budget.stats(now);
    ASSERT_EQ(s.requests, requests) << "step " << i;
    ASSERT_EQ(s.retries, retries) << "step " << i;
  }
  // The run exercised both sides of the limit.
  EXPECT_GT(granted, 1000u);
  EXPECT_GT(refused, 1000u);
}

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

}  // namespace
}  // namespace airbag::policy
