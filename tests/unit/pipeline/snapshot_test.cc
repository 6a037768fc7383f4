// Reload builds first and commits second: building the next snapshot leaves
// the running one's shared state alone, and commit() hands the carried-over
// breakers, bulkheads and shedder their new settings.
#include "proxy/pipeline/snapshot.h"

#include <string>

#include "gtest/gtest.h"
#include "proxy/config/config_loader.h"

namespace airbag::pipeline {
namespace {

std::string config(int bulkhead, int shed, const char* open_for) {
  return std::string(R"(
shedding: { max_in_flight: )") +
         std::to_string(shed) + R"( }
upstreams:
  model: { url: http://127.0.0.1:9 }
routes:
  - name: r
    match: { path_prefix: / }
    upstream: model
    bulkhead: { max_in_flight: )" +
         std::to_string(bulkhead) + R"( }
    circuit_breaker: { consecutive_failures: 1, open_for: )" +
         open_for + R"(, max_open_for: 60s }
)";
}

std::shared_ptr<const Snapshot> build(const std::string& yaml, const Snapshot* previous) {
  auto c = config::loadString(yaml, "t.yaml");
  EXPECT_TRUE(c.ok()) << c.status();
  auto s = Snapshot::build(*c, previous);
  EXPECT_TRUE(s.ok()) << s.status();
  return *s;
}

TEST(SnapshotTest, BuildingTheNextSnapshotTouchesNothingLiveUntilCommit) {
  auto running = build(config(1, 10, "5s"), nullptr);
  running->commit();
  RouteRuntime& r = *running->runtime("r");
  absl::Time now = absl::Now();
  // Open the breaker, fill the bulkhead.
  auto permit = r.breaker()->tryAcquire(now);
  ASSERT_TRUE(permit.allowed);
  r.breaker()->onResult(now, false, absl::Milliseconds(1), permit.probe);
  ASSERT_EQ(r.breaker()->state(now), policy::CircuitState::kOpen);
  ASSERT_EQ(r.bulkhead().tryAcquire(nullptr), policy::BulkheadAdmit::kAdmitted);
  ASSERT_EQ(r.bulkhead().tryAcquire(nullptr), policy::BulkheadAdmit::kRejected);

  auto next = build(config(3, 20, "10s"), running.get());
  RouteRuntime& n = *next->runtime("r");
  EXPECT_EQ(&n.bulkhead(), &r.bulkhead()) << "state carries over";
  EXPECT_EQ(n.breaker(), r.breaker());
  // Not committed: the running limits are unchanged.
  EXPECT_EQ(r.bulkhead().tryAcquire(nullptr), policy::BulkheadAdmit::kRejected);
  EXPECT_EQ(running->shedder->limit(Priority::kCritical), 10u);
  EXPECT_EQ(r.breaker()->stats(now).current_open_for, absl::Seconds(5));

  next->commit();
  EXPECT_EQ(r.bulkhead().tryAcquire(nullptr), policy::BulkheadAdmit::kAdmitted);
  EXPECT_EQ(next->shedder->limit(Priority::kCritical), 20u);
  EXPECT_EQ(r.breaker()->state(now), policy::CircuitState::kOpen) << "still open after reload";
  EXPECT_EQ(r.breaker()->stats(now).current_open_for, absl::Seconds(10));
  r.bulkhead().release();
  r.bulkhead().release();
}

}  // namespace
}  // namespace airbag::pipeline
