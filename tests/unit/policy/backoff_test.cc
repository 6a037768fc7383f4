// Tests of policy/backoff: exact delays with a pinned generator, bounds over
// many seeded draws, and saturation for huge retry counts.
#include "policy/backoff.h"

#include <cstdint>
#include <random>

#include "absl/random/mock_distributions.h"
#include "absl/random/mocking_bit_gen.h"
#include "absl/random/random.h"
#include "absl/random/seed_sequences.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace airbag::policy {
namespace {

using ::testing::Return;

BackoffConfig makeConfig(absl::Duration base, absl::Duration max, Jitter jitter) {
  BackoffConfig c;
  c.base = base;
  c.max = max;
  c.jitter = jitter;
  return c;
}

int64_t ms(int64_t v) { return v * 1000 * 1000; }

TEST(BackoffTest, NoJitterDoublesUpToMax) {
  Backoff b(makeConfig(absl::Milliseconds(25), absl::Milliseconds(250), Jitter::kNone));
  absl::MockingBitGen
      gen;  // no draw expected: an unmocked draw is random and breaks the exact values
  const absl::Duration want[] = {absl::Milliseconds(25),  absl::Milliseconds(50),
                                 absl::Milliseconds(100), absl::Milliseconds(200),
                                 absl::Milliseconds(250), absl::Milliseconds(250)};
  for (absl::Duration w : want) EXPECT_EQ(b.next(gen), w);
  EXPECT_EQ(b.retries(), 6);
  b.reset();
  EXPECT_EQ(b.retries(), 0);
  EXPECT_EQ(b.next(gen), absl::Milliseconds(25));
}

TEST(BackoffTest, FullJitterDrawsFromZeroToCap) {
  Backoff b(makeConfig(absl::Milliseconds(25), absl::Milliseconds(250), Jitter::kFull));
  absl::MockingBitGen gen;
  struct Step {
    int64_t cap;
    int64_t drawn;
  };
  const Step steps[] = {{ms(25), ms(7)},    {ms(50), ms(49)},   {ms(100), 0},
                        {ms(200), ms(200)}, {ms(250), ms(123)}, {ms(250), ms(250)}};
  {
    ::testing::InSequence seq;
    for (const Step& s : steps) {
      EXPECT_CALL(absl::MockUniform<int64_t>(), Call(absl::IntervalClosedClosed, gen, 0, s.cap))
          .WillOnce(Return(s.drawn));
    }
  }
  for (const Step& s : steps) EXPECT_EQ(b.next(gen), absl::Nanoseconds(s.drawn));
}

TEST(BackoffTest, EqualJitterKeepsHalfTheCap) {
  Backoff b(makeConfig(absl::Milliseconds(25), absl::Milliseconds(250), Jitter::kEqual));
  absl::MockingBitGen gen;
  {
    ::testing::InSequence seq;
    EXPECT_CALL(absl::MockUniform<int64_t>(), Call(absl::IntervalClosedClosed, gen, 0, ms(25) / 2))
        .WillOnce(Return(ms(5)));
    EXPECT_CALL(absl::MockUniform<int64_t>(), Call(absl::IntervalClosedClosed, gen, 0, ms(25)))
        .WillOnce(Return(0));
    EXPECT_CALL(absl::MockUniform<int64_t>(), Call(absl::IntervalClosedClosed, gen, 0, ms(50)))
        .WillOnce(Return(ms(50)));
  }
  EXPECT_EQ(b.next(gen), absl::Nanoseconds(ms(25) / 2 + ms(5)));
  EXPECT_EQ(b.next(gen), absl::Milliseconds(25));
  EXPECT_EQ(b.next(gen), absl::Milliseconds(100));
}

TEST(BackoffTest, DecorrelatedJitterGrowsFromThePreviousDelay) {
  Backoff b(makeConfig(absl::Milliseconds(25), absl::Milliseconds(250), Jitter::kDecorrelated));
  absl::MockingBitGen gen;
  {
    ::testing::InSequence seq;
    // prev starts at base: uniform[base, 3 * base].
    EXPECT_CALL(absl::MockUniform<int64_t>(), Call(absl::IntervalClosedClosed, gen, ms(25), ms(75)))
        .WillOnce(Return(ms(60)));
    EXPECT_CALL(absl::MockUniform<int64_t>(),
                Call(absl::IntervalClosedClosed, gen, ms(25), ms(180)))
        .WillOnce(Return(ms(180)));
    // 3 * 180 ms exceeds max; the draw is clamped to max.
    EXPECT_CALL(absl::MockUniform<int64_t>(),
                Call(absl::IntervalClosedClosed, gen, ms(25), ms(540)))
        .WillOnce(Return(ms(400)));
    EXPECT_CALL(absl::MockUniform<int64_t>(),
                Call(absl::IntervalClosedClosed, gen, ms(25), ms(750)))
        .WillOnce(Return(ms(30)));
  }
  EXPECT_EQ(b.next(gen), absl::Milliseconds(60));
  EXPECT_EQ(b.next(gen), absl::Milliseconds(180));
  EXPECT_EQ(b.next(gen), absl::Milliseconds(250));
  EXPECT_EQ(b.next(gen), absl::Milliseconds(30));

  // reset() starts again from base.
  b.reset();
  EXPECT_CALL(absl::MockUniform<int64_t>(), Call(absl::IntervalClosedClosed, gen, ms(25), ms(75)))
      .WillOnce(Return(ms(25)));
  EXPECT_EQ(b.next(gen), absl::Milliseconds(25));
}

TEST(BackoffTest, SeededGeneratorIsReproducible) {
  const BackoffConfig c = makeConfig(absl::Milliseconds(10), absl::Seconds(1), Jitter::kFull);
  std::mt19937_64 g1(42), g2(42);
  Backoff a(c), b(c);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(a.next(g1), b.next(g2)) << "draw " << i;
}

struct BoundsCase {
  const char* name;
  Jitter jitter;
};

class BackoffBoundsTest : public ::testing::TestWithParam<BoundsCase> {};

// 100k draws at random retry counts (up to far past the doubling's overflow
// point) stay within the mode's range.
TEST_P(BackoffBoundsTest, DrawsStayWithinRange) {
  const absl::Duration base = absl::Milliseconds(25);
  const absl::Duration max = absl::Milliseconds(250);
  const BackoffConfig c = makeConfig(base, max, GetParam().jitter);
  std::seed_seq seed{7, 11, 13};
  absl::BitGen gen(seed);
  std::mt19937_64 pick(99);
  for (int i = 0; i < 100000; ++i) {
    Backoff b(c);
    const int n = static_cast<int>(pick() % 200);
    for (int k = 0; k < n; ++k) b.next(gen);
    const absl::Duration d = b.next(gen);
    // cap(n) = min(max, base * 2^n).
    const absl::Duration cap = n >= 4 ? max : std::min(max, base * (int64_t{1} << n));
    switch (GetParam().jitter) {
      case Jitter::kFull:
        ASSERT_GE(d, absl::ZeroDuration());
        ASSERT_LE(d, cap);
        break;
      case Jitter::kEqual:
        ASSERT_GE(d, cap / 2 - absl::Nanoseconds(1));
        ASSERT_LE(d, cap);
        break;
      case Jitter::kDecorrelated:
        ASSERT_GE(d, base);
        ASSERT_LE(d, max);
        break;
      case Jitter::kNone:
        ASSERT_EQ(d, cap);
        break;
    }
  }
}

TEST_P(BackoffBoundsTest, HugeRetryCountsSaturateAtMax) {
  const absl::Duration max = absl::Hours(1);
  Backoff b(makeConfig(absl::Seconds(1), max, GetParam().jitter));
  std::mt19937_64 gen(5);
  for (int n = 0; n <= 10000; ++n) {
    const absl::Duration d = b.next(gen);
    ASSERT_GE(d, absl::ZeroDuration()) << "n=" << n;
    ASSERT_LE(d, max) << "n=" << n;
  }
  EXPECT_EQ(b.retries(), 10001);
}

INSTANTIATE_TEST_SUITE_P(Jitter, BackoffBoundsTest,
                         ::testing::Values(BoundsCase{"full", Jitter::kFull},
                                           BoundsCase{"equal", Jitter::kEqual},
                                           BoundsCase{"decorrelated", Jitter::kDecorrelated},
                                           BoundsCase{"none", Jitter::kNone}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(BackoffTest, NoJitterAtHugeCountsIsExactlyMax) {
  // The largest representable cap: base * 2^n overflows int64 nanoseconds long before n = 1000.
  Backoff b(makeConfig(absl::Milliseconds(1), absl::Hours(24 * 365), Jitter::kNone));
  absl::MockingBitGen gen;
  for (int n = 0; n < 1000; ++n) b.next(gen);
  EXPECT_EQ(b.next(gen), absl::Hours(24 * 365));
}

TEST(BackoffTest, ZeroBaseNeverWaits) {
  Backoff b(makeConfig(absl::ZeroDuration(), absl::Milliseconds(250), Jitter::kNone));
  absl::MockingBitGen gen;
  for (int n = 0; n < 100; ++n) EXPECT_EQ(b.next(gen), absl::ZeroDuration());
}

}  // namespace
}  // namespace airbag::policy
