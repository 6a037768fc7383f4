// policy/hedge.h: the order of the reasons a hedge is not sent, that only a
// hedge sent takes from the retry budget, and the latency window behind
// `after: pNN` (its buckets, the samples a percentile needs, its expiry).
#include "policy/hedge.h"

#include "gtest/gtest.h"
#include "policy/retry_budget.h"

namespace airbag::policy {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1'000'000);

RetryBudgetConfig budgetOf(double ratio, double min_per_second) {
  RetryBudgetConfig c;
  c.ratio = ratio;
  c.min_per_second = min_per_second;
  return c;
}

TEST(DecideHedgeTest, SendsAndSpendsTheBudgetOnlyWhenEveryCheckPasses) {
  RetryBudget budget(budgetOf(0, 1));  // one retry a second
  HedgeInputs in;
  in.now = kT0;
  in.deadline = kT0 + absl::Seconds(1);
  struct Case {
    void (*set)(HedgeInputs&);
    HedgeVerdict want;
  };
  const Case cases[] = {
      {[](HedgeInputs& i) { i.deadline = i.now; }, HedgeVerdict::kSkippedDeadline},
      {[](HedgeInputs& i) { i.body_replayable = false; }, HedgeVerdict::kSkippedDeadline},
      {[](HedgeInputs& i) { i.saturated = true; }, HedgeVerdict::kSkippedSaturated},
      {[](HedgeInputs& i) { i.breaker_closed = false; }, HedgeVerdict::kSkippedBreaker},
      {[](HedgeInputs& i) { i.upstream_usable = false; }, HedgeVerdict::kSkippedUnhealthy},
      // Saturation is named before the breaker when both hold.
      {[](HedgeInputs& i) {
         i.saturated = true;
         i.breaker_closed = false;
       },
       HedgeVerdict::kSkippedSaturated},
  };
  for (const Case& c : cases) {
    HedgeInputs x = in;
    c.set(x);
    EXPECT_EQ(decideHedge(x, budget), c.want) << hedgeVerdictLabel(c.want);
  }
  EXPECT_EQ(budget.stats(kT0).retries, 0u) << "no hedge skipped spends the budget";
  EXPECT_EQ(decideHedge(in, budget), HedgeVerdict::kSend);
  EXPECT_EQ(budget.stats(kT0).retries, 1u);
  EXPECT_EQ(decideHedge(in, budget), HedgeVerdict::kSkippedBudget)
      << "the second's reserve is spent";
  EXPECT_EQ(hedgeVerdictLabel(HedgeVerdict::kSend), "sent");
  EXPECT_EQ(hedgeVerdictLabel(HedgeVerdict::kSkippedBudget), "skipped_budget");
}

TEST(LatencyWindowTest, MinSamplesGrowWithThePercentile) {
  EXPECT_EQ(LatencyWindow::minSamples(50), 20u);
  EXPECT_EQ(LatencyWindow::minSamples(75), 20u);
  EXPECT_EQ(LatencyWindow::minSamples(90), 50u);
  EXPECT_EQ(LatencyWindow::minSamples(95), 100u);
  EXPECT_EQ(LatencyWindow::minSamples(99), 500u);
}

TEST(LatencyWindowTest, BucketsAreLogSpacedFromOneMillisecond) {
  EXPECT_EQ(LatencyWindow::bucketBound(0), absl::Milliseconds(1));
  EXPECT_EQ(LatencyWindow::bucketBound(4), absl::Milliseconds(2));
  EXPECT_EQ(LatencyWindow::bucketBound(40), absl::Milliseconds(1024));
  EXPECT_GT(LatencyWindow::bucketBound(LatencyWindow::kBuckets - 1), absl::Seconds(50));
}

TEST(LatencyWindowTest, APercentileIsTheBoundOfItsBucketOnceThereAreEnoughSamples) {
  LatencyWindow w;
  for (int i = 0; i < 94; ++i) w.add(absl::Milliseconds(2), kT0);
  for (int i = 0; i < 5; ++i) w.add(absl::Milliseconds(1000), kT0);
  EXPECT_EQ(w.samples(kT0), 99u);
  EXPECT_FALSE(w.percentile(95, kT0).has_value()) << "99 samples are too few for p95";
  EXPECT_EQ(w.percentile(50, kT0), absl::Milliseconds(2));
  w.add(absl::Milliseconds(2), kT0);
  // Rank 95 of 100 is the last 2 ms sample.
  EXPECT_EQ(w.percentile(95, kT0), absl::Milliseconds(2));
  EXPECT_FALSE(w.percentile(96, kT0).has_value()) << "p96 needs 125";
  // Half at 2 ms, half at 1000 ms: p75 is in 1000 ms's bucket.
  LatencyWindow halves;
  for (int i = 0; i < 10; ++i) halves.add(absl::Milliseconds(2), kT0);
  for (int i = 0; i < 10; ++i) halves.add(absl::Milliseconds(1000), kT0);
  EXPECT_EQ(halves.percentile(50, kT0), absl::Milliseconds(2));
  EXPECT_EQ(halves.percentile(75, kT0), LatencyWindow::bucketBound(40));
  // A bound is never below the sample it holds.
  LatencyWindow one;
  for (int i = 0; i < 20; ++i) one.add(absl::Milliseconds(300), kT0);
  absl::Duration p = *one.percentile(50, kT0);
  EXPECT_GE(p, absl::Milliseconds(300));
  EXPECT_LT(p, absl::Milliseconds(300) * 1.2);
}

TEST(LatencyWindowTest, SamplesLastBetweenOneAndTwoPeriods) {
  LatencyWindow w(absl::Seconds(10));
  for (int i = 0; i < 20; ++i) w.add(absl::Milliseconds(5), kT0);
  EXPECT_EQ(w.samples(kT0 + absl::Seconds(10)), 20u) << "the previous period still counts";
  EXPECT_EQ(w.samples(kT0 + absl::Seconds(20)), 0u) << "older ones are gone";
  w.add(absl::Milliseconds(5), kT0 + absl::Seconds(10));
  EXPECT_EQ(w.samples(kT0 + absl::Seconds(10)), 21u);
  w.add(absl::Milliseconds(5), kT0 + absl::Seconds(30));
  EXPECT_EQ(w.samples(kT0 + absl::Seconds(30)), 1u) << "a gap of a whole period drops both";
}

}  // namespace
}  // namespace airbag::policy
