// Tests for the per-second route history: the ring, the deltas between
// samples, the latency quantiles and the JSON, all on a simulated clock.
#include "proxy/admin/route_history.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proxy/metrics/metrics.h"

namespace airbag::admin {
namespace {

using ::testing::ElementsAre;
using ::testing::Optional;
using Json = nlohmann::json;

const absl::Time kT0 = absl::FromUnixSeconds(1'800'000'000);

size_t idx(AnswerSource s) { return static_cast<size_t>(s); }

TEST(LevelOfSourceTest, MapsEveryAnswerSource) {
  EXPECT_EQ(levelOfSource("upstream"), AnswerSource::kUpstream);
  EXPECT_EQ(levelOfSource("cache"), AnswerSource::kCache);
  EXPECT_EQ(levelOfSource("stale"), AnswerSource::kStale);
  EXPECT_EQ(levelOfSource("fallback:small-model"), AnswerSource::kFallback);
  EXPECT_EQ(levelOfSource("rule:high-amount"), AnswerSource::kRule);
  EXPECT_EQ(levelOfSource("default"), AnswerSource::kDefault);
  EXPECT_EQ(levelOfSource("none"), AnswerSource::kNone);
  EXPECT_EQ(levelOfSource("upstream:x"), std::nullopt);
  EXPECT_EQ(levelOfSource("fallback"), std::nullopt);
  EXPECT_EQ(levelOfSource("cached"), std::nullopt);
  EXPECT_EQ(levelOfSource(""), std::nullopt);
}

TEST(BucketQuantileTest, InterpolatesInsideTheBucket) {
  const std::vector<double> bounds = {0.1, 0.2, 0.4};
  // 10 answers in (0.1, 0.2]: the median is halfway through that bucket.
  EXPECT_THAT(bucketQuantile({0, 10, 0, 0}, bounds, 0.5),
              Optional(::testing::DoubleNear(0.15, 1e-9)));
  // 1 fast and 99 in (0.2, 0.4]: p99 sits near the top of the slow bucket.
  EXPECT_THAT(bucketQuantile({1, 0, 99, 0}, bounds, 0.99),
              Optional(::testing::DoubleNear(0.2 + 0.2 * 98.0 / 99.0, 1e-9)));
  // In the first bucket the lower edge is 0.
  EXPECT_THAT(bucketQuantile({4, 0, 0, 0}, bounds, 0.5),
              Optional(::testing::DoubleNear(0.05, 1e-9)));
  // Past the last finite bound reads as that bound.
  EXPECT_THAT(bucketQuantile({0, 0, 0, 5}, bounds, 0.5), Optional(0.4));
  EXPECT_EQ(bucketQuantile({0, 0, 0, 0}, bounds, 0.5), std::nullopt);
  EXPECT_EQ(bucketQuantile({}, bounds, 0.5), std::nullopt);
}

HistorySlot slotAt(int64_t second, uint32_t requests) {
  HistorySlot s;
  s.second = second;
  s.requests = requests;
  return s;
}

TEST(RouteHistoryTest, KeepsTheLastThreeHundredSeconds) {
  RouteHistory h;
  for (int64_t s = 1; s <= 400; ++s) h.add(slotAt(s, static_cast<uint32_t>(s)));
  EXPECT_EQ(h.size(), RouteHistory::kSlots);
  std::vector<HistorySlot> r = h.recent(400);
  ASSERT_EQ(r.size(), 300u);
  EXPECT_EQ(r.front().second, 101);
  EXPECT_EQ(r.back().second, 400);
  EXPECT_EQ(r.back().requests, 400u);
  // Seconds older than five minutes before `now` are left out even if still held.
  r = h.recent(450);
  ASSERT_EQ(r.size(), 250u);
  EXPECT_EQ(r.front().second, 151);
}

TEST(RouteHistoryTest, SameOrEarlierSecondMergesIntoTheNewest) {
  RouteHistory h;
  HistorySlot a = slotAt(10, 2);
  a.by_level[idx(AnswerSource::kUpstream)] = 2;
  a.p50_ms = 10;
  a.p99_ms = 20;
  HistorySlot b = slotAt(10, 6);
  b.by_level[idx(AnswerSource::kFallback)] = 6;
  b.p50_ms = 30;
  b.p99_ms = 15;
  h.add(a);
  h.add(b);
  h.add(slotAt(9, 1));  // the clock stepped back: still the newest slot
  std::vector<HistorySlot> r = h.recent(10);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].requests, 9u);
  EXPECT_EQ(r[0].by_level[idx(AnswerSource::kUpstream)], 2u);
  EXPECT_EQ(r[0].by_level[idx(AnswerSource::kFallback)], 6u);
  EXPECT_FLOAT_EQ(r[0].p50_ms, 25);  // weighted by answers: (2*10 + 6*30) / 8
  EXPECT_FLOAT_EQ(r[0].p99_ms, 20);  // the worse one
}

TEST(RouteHistoryTest, FootprintIsFixed) {
  // The documented bound: 300 slots of 56 bytes, about 17 KB per route.
  EXPECT_EQ(sizeof(HistorySlot), 56u);
  EXPECT_LE(sizeof(RouteHistory), 300 * 56 + 64);
}

RouteTotals totals(uint64_t upstream, uint64_t fallback, uint64_t errors = 0) {
  RouteTotals t;
  t.requests = upstream + fallback + errors;
  t.by_level[idx(AnswerSource::kUpstream)] = upstream;
  t.by_level[idx(AnswerSource::kFallback)] = fallback;
  t.by_level[idx(AnswerSource::kNone)] = errors;
  t.errors = errors;
  return t;
}

TEST(HistoryStoreTest, RecordsWhatTheTotalsGrewBy) {
  HistoryStore store;
  store.sample(kT0, {"predict"}, {{"predict", totals(100, 0)}});  // the baseline
  EXPECT_EQ(store.find("predict")->size(), 0u);
  store.sample(kT0 + absl::Seconds(1), {"predict"}, {{"predict", totals(130, 0)}});
  store.sample(kT0 + absl::Seconds(2), {"predict"}, {{"predict", totals(131, 20, 3)}});
  store.sample(kT0 + absl::Seconds(3), {"predict"}, {});  // no answers at all yet: zero
  std::vector<HistorySlot> r = store.find("predict")->recent(absl::ToUnixSeconds(kT0) + 3);
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].requests, 30u);
  EXPECT_EQ(r[0].by_level[idx(AnswerSource::kUpstream)], 30u);
  EXPECT_EQ(r[1].requests, 24u);
  EXPECT_EQ(r[1].by_level[idx(AnswerSource::kUpstream)], 1u);
  EXPECT_EQ(r[1].by_level[idx(AnswerSource::kFallback)], 20u);
  EXPECT_EQ(r[1].errors, 3u);
  // Totals that went down (never expected) count as nothing, not as 2^64.
  EXPECT_EQ(r[2].requests, 0u);
  EXPECT_EQ(r[2].errors, 0u);
}

TEST(HistoryStoreTest, RoutesThatStayKeepTheirHistoryAndOthersAreForgotten) {
  HistoryStore store;
  store.sample(kT0, {"a", "b"}, {});
  store.sample(kT0 + absl::Seconds(1), {"a", "b"}, {{"a", totals(5, 0)}, {"b", totals(7, 0)}});
  // A reload: "b" is gone, "c" is new and already has totals (a name that
  // existed before): they are its baseline, not one huge second.
  store.sample(kT0 + absl::Seconds(2), {"a", "c"},
               {{"a", totals(6, 0)}, {"b", totals(9, 0)}, {"c", totals(1000, 0)}});
  EXPECT_EQ(store.routes(), 2u);
  EXPECT_EQ(store.find("b"), nullptr);
  ASSERT_NE(store.find("a"), nullptr);
  EXPECT_EQ(store.find("a")->size(), 2u);
  EXPECT_EQ(store.find("c")->size(), 0u);
  store.sample(kT0 + absl::Seconds(3), {"a", "c"}, {{"a", totals(6, 0)}, {"c", totals(1004, 0)}});
  std::vector<HistorySlot> c = store.find("c")->recent(absl::ToUnixSeconds(kT0) + 3);
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].requests, 4u);
}

TEST(HistoryStoreTest, LatencyQuantilesComeFromTheSecondsOwnAnswers) {
  const std::vector<double>& bounds = metrics::durationBuckets();
  RouteTotals t;
  t.latency_buckets.assign(bounds.size() + 1, 0);
  HistoryStore store;
  store.sample(kT0, {"r"}, {{"r", t}});
  // 100 answers earlier in (1 s, 2.5 s]: they must not colour later seconds.
  size_t slow = static_cast<size_t>(std::find(bounds.begin(), bounds.end(), 2.5) - bounds.begin());
  t.latency_buckets[slow] = 100;
  t.requests = 100;
  store.sample(kT0 + absl::Seconds(1), {"r"}, {{"r", t}});
  size_t fast = static_cast<size_t>(std::find(bounds.begin(), bounds.end(), 0.01) - bounds.begin());
  t.latency_buckets[fast] = 10;
  t.requests = 110;
  store.sample(kT0 + absl::Seconds(2), {"r"}, {{"r", t}});
  store.sample(kT0 + absl::Seconds(3), {"r"}, {{"r", t}});
  std::vector<HistorySlot> r = store.find("r")->recent(absl::ToUnixSeconds(kT0) + 3);
  ASSERT_EQ(r.size(), 3u);
  EXPECT_GT(r[0].p50_ms, 1000);
  EXPECT_LE(r[0].p99_ms, 2500);
  EXPECT_GT(r[1].p50_ms, 5);  // (5 ms, 10 ms]
  EXPECT_LE(r[1].p99_ms, 10);
  EXPECT_LT(r[2].p50_ms, 0);  // nothing answered
}

TEST(HistoryStoreTest, JsonIsColumnarOldestFirst) {
  HistoryStore store;
  EXPECT_EQ(store.toJson("r"), std::nullopt);
  store.sample(kT0, {"r"}, {});
  store.sample(kT0 + absl::Seconds(1), {"r"}, {{"r", totals(3, 1)}});
  store.sample(kT0 + absl::Seconds(2), {"r"}, {{"r", totals(3, 2, 1)}});
  std::optional<Json> j = store.toJson("r");
  ASSERT_TRUE(j.has_value());
  const int64_t t0 = absl::ToUnixSeconds(kT0);
  EXPECT_EQ((*j)["route"], "r");
  EXPECT_EQ((*j)["interval_seconds"], 1);
  EXPECT_EQ((*j)["window_seconds"], 300);
  EXPECT_EQ((*j)["now"], t0 + 2);
  EXPECT_EQ((*j)["t"], Json::array({t0 + 1, t0 + 2}));
  EXPECT_EQ((*j)["requests"], Json::array({4, 2}));
  EXPECT_EQ((*j)["levels"]["upstream"], Json::array({3, 0}));
  EXPECT_EQ((*j)["levels"]["fallback"], Json::array({1, 1}));
  EXPECT_EQ((*j)["levels"]["none"], Json::array({0, 1}));
  EXPECT_EQ((*j)["errors"], Json::array({0, 1}));
  EXPECT_EQ((*j)["upstream_failures"], Json::array({0, 0}));
  EXPECT_EQ((*j)["latency_ms"]["p50"], Json::array({nullptr, nullptr}));
  std::vector<std::string> levels;
  for (const auto& [k, v] : (*j)["levels"].items()) levels.push_back(k);
  EXPECT_THAT(levels, ::testing::UnorderedElementsAre("upstream", "cache", "stale", "fallback",
                                                      "rule", "default", "none"));
}

TEST(RouteTotalsTest, ReadsEveryWorkerShard) {
  metrics::Registry registry;
  metrics::WorkerMetrics* w1 = registry.addShard();
  metrics::WorkerMetrics* w2 = registry.addShard();
  w1->recordRequest("predict", "upstream", 200, absl::Milliseconds(3));
  w2->recordRequest("predict", "upstream", 200, absl::Milliseconds(4));
  w2->recordRequest("predict", "fallback:small-model", 200, absl::Milliseconds(40));
  w1->recordRequest("predict", "none", 503, absl::Milliseconds(1));
  w1->recordRequest("chat", "rule:polite", 200, absl::Milliseconds(1));
  w1->recordAttempt("predict", "model", AttemptOutcome::kError5xx);
  w2->recordAttempt("predict", "model", AttemptOutcome::kTimeout);
  w2->recordAttempt("predict", "model", AttemptOutcome::kOk);
  TotalsByRoute t = routeTotals(registry);
  ASSERT_TRUE(t.contains("predict"));
  const RouteTotals& p = t["predict"];
  EXPECT_EQ(p.requests, 4u);
  EXPECT_EQ(p.by_level[idx(AnswerSource::kUpstream)], 2u);
  EXPECT_EQ(p.by_level[idx(AnswerSource::kFallback)], 1u);
  EXPECT_EQ(p.by_level[idx(AnswerSource::kNone)], 1u);
  EXPECT_EQ(p.errors, 1u);
  EXPECT_EQ(p.upstream_failures, 2u);
  uint64_t observed = 0;
  for (uint64_t b : p.latency_buckets) observed += b;
  EXPECT_EQ(observed, 4u);
  EXPECT_EQ(t["chat"].by_level[idx(AnswerSource::kRule)], 1u);
}

}  // namespace
}  // namespace airbag::admin
