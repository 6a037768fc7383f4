// The gradient limiter against a simulated queueing upstream: a model that
// serves `capacity` requests at once in `service` time, so that with n in
// flight a request takes service * max(1, n / capacity). The limit must
// settle a little above the capacity, follow the capacity when the model
// gets sick, and come back when it heals.
#include "policy/gradient_limiter.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "gtest/gtest.h"

namespace airbag::policy {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);

struct QueueingModel {
  double capacity = 20;
  absl::Duration service = absl::Milliseconds(100);
  absl::Duration latency(uint32_t in_flight) const {
    return service * std::max(1.0, in_flight / capacity);
  }
};

// Runs `seconds` of always-enough demand (as many in flight as the limit
// allows, capped by `demand`); returns the limits seen outside probe windows
// during the last `tail` seconds.
std::vector<uint32_t> run(GradientLimiter& g, const QueueingModel& m, absl::Time& now, int seconds,
                          int tail, uint32_t demand = 1'000'000) {
  std::vector<uint32_t> seen;
  const absl::Time end = now + absl::Seconds(seconds);
  while (now < end) {
    uint32_t n = std::min(g.limit(), demand);
    // Every 10 ms a tenth of the calls in flight end.
    for (uint32_t i = 0; i < std::max<uint32_t>(1, n / 10); ++i) g.onSample(m.latency(n), n, now);
    now += absl::Milliseconds(10);
    if (now > end - absl::Seconds(tail) && !g.probing()) seen.push_back(g.limit());
  }
  return seen;
}

TEST(GradientLimiterTest, LearnsTheNoLoadLatencyFirst) {
  GradientLimiter g({4, 256}, 1024, kT0);
  EXPECT_TRUE(g.probing());
  EXPECT_EQ(g.limit(), 4u);
  QueueingModel m;
  absl::Time now = kT0;
  run(g, m, now, 1, 0);
  EXPECT_EQ(g.minRtt(), absl::Milliseconds(100));
  EXPECT_FALSE(g.probing());
}

TEST(GradientLimiterTest, ConvergesOnAQueueingUpstreamAndRecoversAfterItHeals) {
  GradientLimiter g({4, 256}, 1024, kT0);
  QueueingModel m;  // capacity 20
  absl::Time now = kT0;
  for (uint32_t l : run(g, m, now, 20, 10)) {
    EXPECT_GE(l, 20u);
    EXPECT_LE(l, 40u);
  }
  // Sick: a quarter of the capacity. The limit follows it down.
  m.capacity = 5;
  for (uint32_t l : run(g, m, now, 20, 10)) {
    EXPECT_GE(l, 5u);
    EXPECT_LE(l, 12u);
  }
  // Healed: back up.
  m.capacity = 20;
  for (uint32_t l : run(g, m, now, 20, 10)) {
    EXPECT_GE(l, 20u);
    EXPECT_LE(l, 40u);
  }
}

// The limit settles at about 1.1x what the model serves at once, not
// sqrt(limit) above it: requests beyond the model's capacity wait in
// airbag's priority queue, not in the model's FIFO one. With the model of
// bench/admission (8 at once, 200 ms each) a headroom of sqrt(limit) always
// would settle at 13, five waiting in the model.
TEST(GradientLimiterTest, SettlesAtTheModelsCapacityNotAQueueAboveIt) {
  for (double capacity : {5.0, 8.0, 20.0, 100.0}) {
    GradientLimiter g({4, 256}, 1024, kT0);
    QueueingModel m;
    m.capacity = capacity;
    m.service = absl::Milliseconds(200);
    absl::Time now = kT0;
    std::vector<uint32_t> seen = run(g, m, now, 25, 10);
    ASSERT_FALSE(seen.empty());
    for (uint32_t l : seen) {
      EXPECT_GE(l, capacity) << "capacity " << capacity;
      EXPECT_LE(l, std::ceil(capacity * (1 + GradientLimiter::kBuffer)) + 1)
          << "capacity " << capacity;
    }
  }
}

// Feeds one whole window of `latency` samples with `in_flight` calls in flight.
void window(GradientLimiter& g, absl::Time& now, absl::Duration latency, uint32_t in_flight,
            bool saturated) {
  for (int i = 0; i < GradientLimiter::kMinSamples; ++i) {
    now += GradientLimiter::kWindow / GradientLimiter::kMinSamples;
    g.onSample(latency, in_flight, now, saturated);
  }
}

// While admission holds requests back for a saturation, the calls in flight
// fall below the limit and the model's latency falls back to its minimum:
// neither is evidence that the model takes more. Growing on it overshoots
// the limit the moment the saturation ends.
TEST(GradientLimiterTest, GrowsOnlyFromWindowsThatUsedTheLimitWithoutSaturation) {
  GradientLimiter g({4, 256}, 1024, kT0);
  absl::Time now = kT0;
  const absl::Duration fast = absl::Milliseconds(200);
  window(g, now, fast, 4, false);  // the probe: min_rtt 200 ms
  ASSERT_FALSE(g.probing());
  ASSERT_EQ(g.limit(), 4u);
  window(g, now, fast, 3, false);  // below the limit
  EXPECT_EQ(g.limit(), 4u);
  window(g, now, fast, 4, true);  // at the limit, but the model said it was saturated
  EXPECT_EQ(g.limit(), 4u);
  window(g, now, fast, 4, false);  // at the limit, no queue anywhere: grows
  EXPECT_GT(g.limit(), 4u);
  // A saturation does not stop the limit from coming down.
  uint32_t before = g.limit();
  window(g, now, fast * 2, before, true);
  EXPECT_LT(g.limit(), before);
}

TEST(GradientLimiterTest, FollowsAModelThatGotSlowerForGoodAfterTheNextProbe) {
  GradientLimiter g({4, 256}, 1024, kT0);
  QueueingModel m;
  absl::Time now = kT0;
  run(g, m, now, 5, 0);
  m.service = absl::Milliseconds(300);  // every request slower, same capacity
  std::vector<uint32_t> late = run(g, m, now, 60, 10);
  ASSERT_FALSE(late.empty());
  // Calls that started before the probe end in its window: near, not exact.
  EXPECT_NEAR(absl::ToDoubleMilliseconds(g.minRtt()), 300, 30);
  for (uint32_t l : late) {
    EXPECT_GE(l, 20u);
    EXPECT_LE(l, 40u);
  }
}

TEST(GradientLimiterTest, DoesNotGrowWithoutDemandAndStaysWithinBounds) {
  GradientLimiter g({4, 30}, 1024, kT0);
  QueueingModel m;
  m.capacity = 1000;
  absl::Time now = kT0;
  // Only 3 ever in flight: no evidence for more than twice that.
  for (uint32_t l : run(g, m, now, 10, 5, /*demand=*/3)) EXPECT_LE(l, 8u);
  // With demand, the bound (max 30) holds however fast the model is.
  for (uint32_t l : run(g, m, now, 10, 5)) EXPECT_EQ(l, 30u);
  // The bulkhead's ceiling caps max.
  GradientLimiter capped({4, 256}, 16, kT0);
  run(capped, m, now, 10, 0);
  EXPECT_EQ(capped.limit(), 16u);
  capped.reconfigure({4, 8}, 16);
  EXPECT_EQ(capped.limit(), 8u);
}

}  // namespace
}  // namespace airbag::policy
