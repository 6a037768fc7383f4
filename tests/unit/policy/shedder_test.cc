// Tests of the global shedder: the documented thresholds, shedding order, a
// seeded random property check against the plain-words rule, and a 4-thread stress.
#include "policy/shedder.h"

#include <array>
#include <atomic>
#include <functional>
#include <random>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace airbag::policy {
namespace {

struct LimitsCase {
  uint32_t max;
  uint32_t optional, normal, critical;
};

class ShedderLimitsTest : public testing::TestWithParam<LimitsCase> {};

TEST_P(ShedderLimitsTest, MatchesTheDocumentedTable) {
  const LimitsCase& c = GetParam();
  Shedder s(SheddingConfig{c.max});
  EXPECT_EQ(s.limit(Priority::kOptional), c.optional);
  EXPECT_EQ(s.limit(Priority::kNormal), c.normal);
  EXPECT_EQ(s.limit(Priority::kCritical), c.critical);
}

INSTANTIATE_TEST_SUITE_P(
    Table, ShedderLimitsTest,
    testing::Values(LimitsCase{1, 1, 1, 1}, LimitsCase{2, 1, 1, 2}, LimitsCase{3, 2, 2, 3},
                    LimitsCase{5, 4, 4, 5}, LimitsCase{10, 8, 9, 10}, LimitsCase{20, 16, 19, 20},
                    LimitsCase{100, 80, 95, 100}, LimitsCase{1024, 820, 973, 1024},
                    LimitsCase{4000000000u, 3200000000u, 3800000000u, 4000000000u}));

TEST(ShedderTest, ShedsOptionalFirstThenNormalThenCritical) {
  Shedder s(SheddingConfig{10});
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(s.tryAdmit(Priority::kOptional));
  EXPECT_FALSE(s.tryAdmit(Priority::kOptional));
  EXPECT_TRUE(s.tryAdmit(Priority::kNormal));
  EXPECT_FALSE(s.tryAdmit(Priority::kNormal));
  EXPECT_FALSE(s.tryAdmit(Priority::kOptional));
  EXPECT_TRUE(s.tryAdmit(Priority::kCritical));
  EXPECT_FALSE(s.tryAdmit(Priority::kCritical));
  Shedder::Stats st = s.stats();
  EXPECT_EQ(st.in_flight, 10u);
  EXPECT_EQ(st.in_flight_by_priority, (std::array<uint32_t, 3>{1, 1, 8}));
  EXPECT_EQ(st.shed, (std::array<uint64_t, 3>{1, 1, 2}));
  s.release(Priority::kCritical);
  EXPECT_TRUE(s.tryAdmit(Priority::kCritical));
  s.release(Priority::kOptional);
  s.release(Priority::kOptional);
  EXPECT_FALSE(s.tryAdmit(Priority::kOptional)) << "8 in flight: still at optional's limit";
  EXPECT_TRUE(s.tryAdmit(Priority::kNormal));
}

TEST(ShedderTest, TinyMaxStillKeepsHeadroomForCritical) {
  Shedder s(SheddingConfig{2});
  EXPECT_TRUE(s.tryAdmit(Priority::kNormal));
  EXPECT_FALSE(s.tryAdmit(Priority::kNormal));
  EXPECT_FALSE(s.tryAdmit(Priority::kOptional));
  EXPECT_TRUE(s.tryAdmit(Priority::kCritical));
  EXPECT_FALSE(s.tryAdmit(Priority::kCritical));
}

TEST(ShedderTest, ReconfigureKeepsInFlight) {
  Shedder s(SheddingConfig{10});
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(s.tryAdmit(Priority::kNormal));
  s.reconfigure(SheddingConfig{4});
  EXPECT_FALSE(s.tryAdmit(Priority::kCritical));
  EXPECT_EQ(s.stats().in_flight, 5u);
  for (int i = 0; i < 2; ++i) s.release(Priority::kNormal);
  EXPECT_TRUE(s.tryAdmit(Priority::kCritical));
}

// The rule in plain words, written independently of the implementation.
bool shouldAdmit(uint64_t in_flight, uint64_t max, Priority p) {
  const bool critical_ok = in_flight < max;
  const bool normal_ok =
      max == 1 ? critical_ok : (in_flight * 100 < 95 * max && in_flight < max - 1);
  const bool optional_ok = in_flight * 100 < 80 * max && normal_ok;
  switch (p) {
    case Priority::kCritical:
      return critical_ok;
    case Priority::kNormal:
      return normal_ok;
    case Priority::kOptional:
      return optional_ok;
  }
  return false;
}

TEST(ShedderPropertyTest, AdmitsExactlyByThePlainRule) {
  for (uint32_t seed = 1; seed <= 30; ++seed) {
    SCOPED_TRACE(testing::Message() << "seed " << seed);
    std::mt19937 rng(seed);
    const uint32_t max = std::uniform_int_distribution<uint32_t>(1, 60)(rng);
    Shedder s(SheddingConfig{max});
    std::vector<Priority> held;
    std::uniform_int_distribution<int> pick(0, 99);
    for (int step = 0; step < 20000; ++step) {
      if (pick(rng) < 55 || held.empty()) {
        const Priority p = static_cast<Priority>(pick(rng) % 3);
        const bool expected = shouldAdmit(held.size(), max, p);
        ASSERT_EQ(s.tryAdmit(p), expected) << "in_flight " << held.size() << " max " << max;
        if (expected) held.push_back(p);
      } else {
        const size_t k = std::uniform_int_distribution<size_t>(0, held.size() - 1)(rng);
        s.release(held[k]);
        held[k] = held.back();
        held.pop_back();
      }
      uint32_t optional = 0;
      for (Priority p : held) optional += p == Priority::kOptional ? 1 : 0;
      const Shedder::Stats st = s.stats();
      ASSERT_EQ(st.in_flight, held.size());
      ASSERT_LE(st.in_flight, max);
      ASSERT_EQ(st.in_flight_by_priority[static_cast<size_t>(Priority::kOptional)], optional);
      ASSERT_LE(optional, s.limit(Priority::kOptional));
    }
  }
}

// Keeps in `max` the largest value seen by any thread.
void raiseTo(std::atomic<int>& max, int value) {
  int seen = max.load();
  while (value > seen && !max.compare_exchange_weak(seen, value)) {
  }
}

// Four threads (seeds seed..seed+3) each make `iterations` admissions with random
// priorities, calling hold(p, rng) between admit and release; returns the refusals.
uint64_t admitAndRelease(Shedder& s, int iterations, uint32_t seed,
                         const std::function<void(Priority, std::mt19937&)>& hold) {
  std::atomic<uint64_t> refused{0};
  std::vector<std::thread> threads;
  for (uint32_t t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(seed + t);
      for (int i = 0; i < iterations; ++i) {
        const Priority p = static_cast<Priority>(rng() % 3);
        if (!s.tryAdmit(p)) {
          refused.fetch_add(1);
          continue;
        }
        hold(p, rng);
        s.release(p);
      }
    });
  }
  for (std::thread& th : threads) th.join();
  return refused.load();
}

// Four threads admit and release with random priorities; the total never exceeds
// the limit and every admission is released.
TEST(ShedderThreadTest, FourThreadsStayWithinTheLimit) {
  constexpr uint32_t kMax = 6;
  Shedder s(SheddingConfig{kMax});
  std::atomic<int> in_flight{0};
  std::atomic<int> max_seen{0};
  std::atomic<int> optional_in_flight{0};
  std::atomic<int> optional_max{0};
  const uint64_t refused = admitAndRelease(s, 50000, 11, [&](Priority p, std::mt19937&) {
    raiseTo(max_seen, in_flight.fetch_add(1) + 1);
    if (p == Priority::kOptional) {
      raiseTo(optional_max, optional_in_flight.fetch_add(1) + 1);
      optional_in_flight.fetch_sub(1);
    }
    in_flight.fetch_sub(1);
  });
  const Shedder::Stats st = s.stats();
  EXPECT_LE(max_seen.load(), static_cast<int>(kMax));
  EXPECT_LE(optional_max.load(), static_cast<int>(s.limit(Priority::kOptional)));
  EXPECT_EQ(st.in_flight, 0u);
  EXPECT_EQ(st.shed[0] + st.shed[1] + st.shed[2], refused);
}

// Four threads admit and release while a fifth reloads max_in_flight back and
// forth: the admissions never exceed the larger limit, and every counter,
// per priority too, is back to zero at the end.
TEST(ShedderThreadTest, ReloadsRacingAdmissionsLoseNothing) {
  constexpr uint32_t kSmall = 4;
  constexpr uint32_t kLarge = 9;
  Shedder s(SheddingConfig{kSmall});
  std::atomic<int> in_flight{0};
  std::atomic<int> max_seen{0};
  std::atomic<bool> done{false};
  std::thread reloader([&] {
    for (uint32_t i = 0; !done.load(); ++i) {
      s.reconfigure(SheddingConfig{i % 2 == 0 ? kLarge : kSmall});
      std::this_thread::yield();
    }
  });
  const uint64_t refused = admitAndRelease(s, 30000, 31, [&](Priority, std::mt19937& rng) {
    raiseTo(max_seen, in_flight.fetch_add(1) + 1);
    if (rng() % 4 == 0) std::this_thread::yield();
    in_flight.fetch_sub(1);
  });
  done.store(true);
  reloader.join();
  const Shedder::Stats st = s.stats();
  EXPECT_LE(max_seen.load(), static_cast<int>(kLarge));
  EXPECT_EQ(st.in_flight, 0u);
  EXPECT_EQ(st.in_flight_by_priority, (std::array<uint32_t, 3>{0, 0, 0}));
  EXPECT_EQ(st.shed[0] + st.shed[1] + st.shed[2], refused);
  const uint32_t last = s.limit(Priority::kCritical);
  EXPECT_TRUE(last == kSmall || last == kLarge) << last;
}

}  // namespace
}  // namespace airbag::policy
