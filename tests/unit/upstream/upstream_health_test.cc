// UpstreamHealth: rise/fall of the probes' verdict and the passive down
// periods, with time passed in by hand.
#include "proxy/upstream/upstream_health.h"

#include "gtest/gtest.h"

namespace airbag::upstream {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);

TEST(UpstreamHealthTest, FallsAfterFallFailuresAndRisesAfterRisePasses) {
  UpstreamHealth h("model");
  HealthCheckConfig c;  // rise 2, fall 3
  EXPECT_TRUE(h.healthy());
  EXPECT_FALSE(h.recordProbe(c, false));
  EXPECT_FALSE(h.recordProbe(c, false));
  EXPECT_TRUE(h.healthy());
  EXPECT_TRUE(h.recordProbe(c, false));
  EXPECT_FALSE(h.healthy());
  EXPECT_FALSE(h.usable(kT0));
  // One pass is not enough, and a failure in between starts the count again.
  EXPECT_FALSE(h.recordProbe(c, true));
  EXPECT_FALSE(h.recordProbe(c, false));
  EXPECT_FALSE(h.recordProbe(c, true));
  EXPECT_TRUE(h.recordProbe(c, true));
  EXPECT_TRUE(h.healthy());
  EXPECT_EQ(h.probesPassed(), 3u);
  EXPECT_EQ(h.probesFailed(), 4u);
}

TEST(UpstreamHealthTest, ConnectFailuresTakeItDownForAGrowingCappedWhile) {
  UpstreamHealth h("model");
  PassiveHealthConfig p;
  p.consecutive_connect_failures = 2;
  p.down_for = absl::Seconds(1);
  p.max_down_for = absl::Seconds(3);
  EXPECT_FALSE(h.recordConnectFailure(p, kT0));
  EXPECT_TRUE(h.usable(kT0));
  EXPECT_TRUE(h.recordConnectFailure(p, kT0));
  EXPECT_FALSE(h.usable(kT0));
  EXPECT_FALSE(h.usable(kT0 + absl::Milliseconds(999)));
  EXPECT_TRUE(h.usable(kT0 + absl::Seconds(1)));
  // Still failing after the period: down again at once, for twice as long.
  absl::Time t1 = kT0 + absl::Seconds(1);
  EXPECT_TRUE(h.recordConnectFailure(p, t1));
  EXPECT_FALSE(h.usable(t1 + absl::Milliseconds(1999)));
  EXPECT_TRUE(h.usable(t1 + absl::Seconds(2)));
  // Then capped at max_down_for.
  absl::Time t2 = t1 + absl::Seconds(2);
  EXPECT_TRUE(h.recordConnectFailure(p, t2));
  EXPECT_FALSE(h.usable(t2 + absl::Milliseconds(2999)));
  EXPECT_TRUE(h.usable(t2 + absl::Seconds(3)));
  // A failure of a request that started before adds nothing while down.
  absl::Time t3 = t2 + absl::Seconds(3);
  EXPECT_TRUE(h.recordConnectFailure(p, t3));
  EXPECT_FALSE(h.recordConnectFailure(p, t3 + absl::Milliseconds(1)));
  // The first success ends it all.
  h.recordSuccess();
  EXPECT_TRUE(h.usable(t3));
  EXPECT_EQ(h.consecutiveConnectFailures(), 0u);
  EXPECT_FALSE(h.recordConnectFailure(p, t3));
  EXPECT_TRUE(h.recordConnectFailure(p, t3));
  EXPECT_FALSE(h.usable(t3 + absl::Milliseconds(999)));  // back to the first period's length
  EXPECT_TRUE(h.usable(t3 + absl::Seconds(1)));
}

TEST(UpstreamHealthTest, APassingProbeEndsAPassiveDownPeriod) {
  UpstreamHealth h("model");
  PassiveHealthConfig p;
  p.consecutive_connect_failures = 1;
  EXPECT_TRUE(h.recordConnectFailure(p, kT0));
  EXPECT_FALSE(h.usable(kT0));
  h.recordProbe(HealthCheckConfig{}, true);
  EXPECT_TRUE(h.usable(kT0));
}

}  // namespace
}  // namespace airbag::upstream
