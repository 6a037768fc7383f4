// Tests of policy/retry: the retry.on conditions, the order of the checks in
// decideRetry, and Retry-After parsing.
#include "policy/retry.h"

#include <random>
#include <string>
#include <vector>

#include "absl/random/mocking_bit_gen.h"
#include "gtest/gtest.h"

namespace airbag::policy {
namespace {

const absl::Time kNow = absl::UnixEpoch() + absl::Hours(24 * 365 * 50);

RetryConfig retryConfig(uint32_t on, std::vector<int> retriable_status = {}) {
  RetryConfig c;
  c.attempts = 3;
  c.on = on;
  c.retriable_status = std::move(retriable_status);
  c.backoff.base = absl::Milliseconds(25);
  c.backoff.max = absl::Milliseconds(250);
  c.backoff.jitter = Jitter::kNone;  // exact delays: 25ms, 50ms, 100ms, ...
  c.honor_retry_after = true;
  c.budget.ratio = 0.2;
  c.budget.min_per_second = 1000;  // never the limiting factor unless a test says so
  return c;
}

constexpr uint32_t kAllConditions = kRetryOnConnectFailure | kRetryOnReset | kRetryOnTimeout |
                                    kRetryOn5xx | kRetryOnRetriableStatus | kRetryOnInvalid;

struct ConditionCase {
  const char* name;
  uint32_t on;
  AttemptOutcome outcome;
  int status;
  bool want;
};

class IsRetriableTest : public ::testing::TestWithParam<ConditionCase> {};

TEST_P(IsRetriableTest, MatchesTheConfiguredConditions) {
  const ConditionCase& c = GetParam();
  const RetryConfig config = retryConfig(c.on, {429, 503});
  EXPECT_EQ(isRetriable(config, TryResult{c.outcome, c.status, std::nullopt}), c.want);
}

using O = AttemptOutcome;
INSTANTIATE_TEST_SUITE_P(
    Conditions, IsRetriableTest,
    ::testing::Values(
        ConditionCase{"connect_on", kRetryOnConnectFailure, O::kConnect, 0, true},
        ConditionCase{"connect_off", kAllConditions & ~kRetryOnConnectFailure, O::kConnect, 0,
                      false},
        ConditionCase{"reset_on", kRetryOnReset, O::kReset, 0, true},
        ConditionCase{"reset_off", kAllConditions & ~kRetryOnReset, O::kReset, 0, false},
        ConditionCase{"timeout_on", kRetryOnTimeout, O::kTimeout, 0, true},
        ConditionCase{"timeout_off", kAllConditions & ~kRetryOnTimeout, O::kTimeout, 0, false},
        ConditionCase{"error5xx_on", kRetryOn5xx, O::kError5xx, 502, true},
        ConditionCase{"error5xx_off", kRetryOnConnectFailure, O::kError5xx, 502, false},
        // 503 is also listed as retriable: retriable-status alone is enough.
        ConditionCase{"error503_by_status", kRetryOnRetriableStatus, O::kError5xx, 503, true},
        ConditionCase{"error500_not_listed", kRetryOnRetriableStatus, O::kError5xx, 500, false},
        ConditionCase{"status429_on", kRetryOnRetriableStatus, O::kOk, 429, true},
        ConditionCase{"status429_off", kAllConditions & ~kRetryOnRetriableStatus, O::kOk, 429,
                      false},
        ConditionCase{"status404_not_listed", kAllConditions, O::kOk, 404, false},
        ConditionCase{"ok200", kAllConditions, O::kOk, 200, false},
        ConditionCase{"invalid_on", kRetryOnInvalid, O::kInvalid, 200, true},
        ConditionCase{"invalid_off", kAllConditions & ~kRetryOnInvalid, O::kInvalid, 200, false},
        ConditionCase{"invalid_5xx_status", kRetryOn5xx, O::kInvalid, 500, true},
        ConditionCase{"nothing_on", 0, O::kConnect, 0, false}),
    [](const auto& info) { return std::string(info.param.name); });

// One decideRetry call with fresh state, for the table below.
struct DecisionCase {
  const char* name;
  TryResult result;
  int tries_made;
  absl::Duration until_deadline;
  bool body_replayable;
  bool honor_retry_after;
  RetryVerdict want;
  absl::Duration want_delay = absl::ZeroDuration();  // checked for kRetry only
};

class DecideRetryTest : public ::testing::TestWithParam<DecisionCase> {};

TEST_P(DecideRetryTest, FirstRefusalWins) {
  const DecisionCase& c = GetParam();
  RetryConfig config = retryConfig(kRetryOnConnectFailure | kRetryOnRetriableStatus, {429});
  config.honor_retry_after = c.honor_retry_after;
  Backoff backoff(config.backoff);
  RetryBudget budget(config.budget);
  std::mt19937_64 gen(1);
  const RetryDecision d = decideRetry(config, c.result, c.tries_made, kNow, kNow + c.until_deadline,
                                      c.body_replayable, backoff, budget, gen);
  EXPECT_EQ(d.verdict, c.want) << retryVerdictLabel(d.verdict);
  if (c.want == RetryVerdict::kRetry) {
    EXPECT_EQ(d.delay, c.want_delay);
  }
  // Only a granted retry is charged to the budget.
  EXPECT_EQ(budget.stats(kNow).retries, c.want == RetryVerdict::kRetry ? 1u : 0u);
}

const TryResult kConnectFailure{O::kConnect, 0, std::nullopt};
const absl::Duration kSecond = absl::Seconds(1);

INSTANTIATE_TEST_SUITE_P(
    Table, DecideRetryTest,
    ::testing::Values(DecisionCase{"retry", kConnectFailure, 1, kSecond, true, true,
                                   RetryVerdict::kRetry, absl::Milliseconds(25)},
                      DecisionCase{"not_retriable",
                                   {O::kOk, 404, std::nullopt},
                                   1,
                                   kSecond,
                                   true,
                                   true,
                                   RetryVerdict::kNotRetriable},
                      DecisionCase{"not_retriable_before_exhausted",
                                   {O::kReset, 0, std::nullopt},
                                   3,
                                   kSecond,
                                   false,
                                   true,
                                   RetryVerdict::kNotRetriable},
                      DecisionCase{"last_try_allowed", kConnectFailure, 2, kSecond, true, true,
                                   RetryVerdict::kRetry, absl::Milliseconds(25)},
                      DecisionCase{"attempts_exhausted", kConnectFailure, 3, kSecond, true, true,
                                   RetryVerdict::kAttemptsExhausted},
                      DecisionCase{"exhausted_before_body", kConnectFailure, 3, kSecond, false,
                                   true, RetryVerdict::kAttemptsExhausted},
                      DecisionCase{"body_not_replayable", kConnectFailure, 1, kSecond, false, true,
                                   RetryVerdict::kBodyNotReplayable},
                      DecisionCase{"body_before_deadline", kConnectFailure, 1, absl::ZeroDuration(),
                                   false, true, RetryVerdict::kBodyNotReplayable},
                      // The next try would start exactly at the deadline: refused.
                      DecisionCase{"delay_lands_on_deadline", kConnectFailure, 1,
                                   absl::Milliseconds(25), true, true, RetryVerdict::kDeadline},
                      DecisionCase{"delay_past_deadline", kConnectFailure, 1,
                                   absl::Milliseconds(10), true, true, RetryVerdict::kDeadline},
                      DecisionCase{"delay_just_before_deadline", kConnectFailure, 1,
                                   absl::Milliseconds(25) + absl::Nanoseconds(1), true, true,
                                   RetryVerdict::kRetry, absl::Milliseconds(25)},
                      DecisionCase{"retry_after_longer_than_backoff",
                                   {O::kOk, 429, absl::Milliseconds(400)},
                                   1,
                                   kSecond,
                                   true,
                                   true,
                                   RetryVerdict::kRetry,
                                   absl::Milliseconds(400)},
                      DecisionCase{"retry_after_shorter_than_backoff",
                                   {O::kOk, 429, absl::Milliseconds(5)},
                                   1,
                                   kSecond,
                                   true,
                                   true,
                                   RetryVerdict::kRetry,
                                   absl::Milliseconds(25)},
                      DecisionCase{"retry_after_ignored",
                                   {O::kOk, 429, absl::Milliseconds(400)},
                                   1,
                                   kSecond,
                                   true,
                                   false,
                                   RetryVerdict::kRetry,
                                   absl::Milliseconds(25)},
                      DecisionCase{"retry_after_past_deadline",
                                   {O::kOk, 429, absl::Seconds(2)},
                                   1,
                                   kSecond,
                                   true,
                                   true,
                                   RetryVerdict::kRetryAfterPastDeadline},
                      DecisionCase{"retry_after_at_deadline",
                                   {O::kOk, 429, kSecond},
                                   1,
                                   kSecond,
                                   true,
                                   true,
                                   RetryVerdict::kRetryAfterPastDeadline},
                      DecisionCase{"retry_after_ignored_past_deadline",
                                   {O::kOk, 429, absl::Seconds(2)},
                                   1,
                                   kSecond,
                                   true,
                                   false,
                                   RetryVerdict::kRetry,
                                   absl::Milliseconds(25)}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(DecideRetryTest, BackoffAdvancesAcrossRetries) {
  const RetryConfig config = retryConfig(kRetryOnConnectFailure);
  Backoff backoff(config.backoff);
  RetryBudget budget(config.budget);
  absl::MockingBitGen gen;
  absl::Time now = kNow;
  const absl::Time deadline = kNow + absl::Seconds(30);
  RetryDecision d =
      decideRetry(config, kConnectFailure, 1, now, deadline, true, backoff, budget, gen);
  ASSERT_EQ(d.verdict, RetryVerdict::kRetry);
  EXPECT_EQ(d.delay, absl::Milliseconds(25));
  now += d.delay;
  d = decideRetry(config, kConnectFailure, 2, now, deadline, true, backoff, budget, gen);
  ASSERT_EQ(d.verdict, RetryVerdict::kRetry);
  EXPECT_EQ(d.delay, absl::Milliseconds(50));
  d = decideRetry(config, kConnectFailure, 3, now, deadline, true, backoff, budget, gen);
  EXPECT_EQ(d.verdict, RetryVerdict::kAttemptsExhausted);
  EXPECT_EQ(budget.stats(now).retries, 2u);
}

TEST(DecideRetryTest, BudgetIsChargedOnlyWhenEverythingElseAllows) {
  RetryConfig config = retryConfig(kRetryOnConnectFailure);
  config.attempts = 100;
  // No ratio and a reserve of exactly one retry per 10 s window.
  config.budget.ratio = 0;
  config.budget.min_per_second = 0.1;
  RetryBudget budget(config.budget);
  std::mt19937_64 gen(3);
  const absl::Time deadline = kNow + absl::Seconds(1);

  // Refusals that come before the budget check leave it untouched.
  for (int i = 0; i < 5; ++i) {
    Backoff backoff(config.backoff);
    EXPECT_EQ(decideRetry(config, {O::kOk, 200, std::nullopt}, 1, kNow, deadline, true, backoff,
                          budget, gen)
                  .verdict,
              RetryVerdict::kNotRetriable);
    EXPECT_EQ(decideRetry(config, kConnectFailure, 100, kNow, deadline, true, backoff, budget, gen)
                  .verdict,
              RetryVerdict::kAttemptsExhausted);
    EXPECT_EQ(decideRetry(config, kConnectFailure, 1, kNow, deadline, false, backoff, budget, gen)
                  .verdict,
              RetryVerdict::kBodyNotReplayable);
    EXPECT_EQ(decideRetry(config, kConnectFailure, 1, kNow, kNow + absl::Milliseconds(1), true,
                          backoff, budget, gen)
                  .verdict,
              RetryVerdict::kDeadline);
  }
  EXPECT_EQ(budget.stats(kNow).retries, 0u);

  Backoff backoff(config.backoff);
  EXPECT_EQ(
      decideRetry(config, kConnectFailure, 1, kNow, deadline, true, backoff, budget, gen).verdict,
      RetryVerdict::kRetry);
  EXPECT_EQ(
      decideRetry(config, kConnectFailure, 2, kNow, deadline, true, backoff, budget, gen).verdict,
      RetryVerdict::kBudgetExhausted);
  EXPECT_EQ(budget.stats(kNow).retries, 1u);
}

TEST(RetryVerdictLabelTest, LabelsAreStable) {
  EXPECT_EQ(retryVerdictLabel(RetryVerdict::kRetry), "retry");
  EXPECT_EQ(retryVerdictLabel(RetryVerdict::kNotRetriable), "not_retriable");
  EXPECT_EQ(retryVerdictLabel(RetryVerdict::kAttemptsExhausted), "attempts_exhausted");
  EXPECT_EQ(retryVerdictLabel(RetryVerdict::kDeadline), "deadline");
  EXPECT_EQ(retryVerdictLabel(RetryVerdict::kBudgetExhausted), "budget_exhausted");
  EXPECT_EQ(retryVerdictLabel(RetryVerdict::kBodyNotReplayable), "body_not_replayable");
  EXPECT_EQ(retryVerdictLabel(RetryVerdict::kRetryAfterPastDeadline), "retry_after_past_deadline");
}

struct RetryAfterCase {
  const char* name;
  const char* value;
  std::optional<absl::Duration> want;
};

class ParseRetryAfterTest : public ::testing::TestWithParam<RetryAfterCase> {};

// "now" for these cases: Wed, 21 Oct 2015 07:28:00 GMT.
const absl::Time kDateNow = absl::FromUnixSeconds(1445412480);

TEST_P(ParseRetryAfterTest, Parses) {
  const RetryAfterCase& c = GetParam();
  EXPECT_EQ(parseRetryAfter(c.value, kDateNow), c.want) << c.value;
}

INSTANTIATE_TEST_SUITE_P(
    Values, ParseRetryAfterTest,
    ::testing::Values(
        RetryAfterCase{"seconds", "120", absl::Seconds(120)},
        RetryAfterCase{"zero", "0", absl::ZeroDuration()},
        RetryAfterCase{"padded", "  7\t", absl::Seconds(7)},
        RetryAfterCase{"over_a_day", "172800", absl::Hours(24)},
        RetryAfterCase{"huge", "99999999999999999999999", absl::Hours(24)},
        RetryAfterCase{"imf_future", "Wed, 21 Oct 2015 07:28:30 GMT", absl::Seconds(30)},
        RetryAfterCase{"imf_now", "Wed, 21 Oct 2015 07:28:00 GMT", absl::ZeroDuration()},
        RetryAfterCase{"imf_past", "Tue, 20 Oct 2015 07:28:00 GMT", absl::ZeroDuration()},
        RetryAfterCase{"imf_far_future", "Fri, 01 Jan 2016 00:00:00 GMT", absl::Hours(24)},
        RetryAfterCase{"rfc850", "Wednesday, 21-Oct-15 07:29:00 GMT", absl::Minutes(1)},
        RetryAfterCase{"asctime", "Wed Oct 21 07:28:05 2015", absl::Seconds(5)},
        RetryAfterCase{"empty", "", std::nullopt}, RetryAfterCase{"blank", "   ", std::nullopt},
        RetryAfterCase{"negative", "-5", std::nullopt},
        RetryAfterCase{"fraction", "1.5", std::nullopt},
        RetryAfterCase{"word", "soon", std::nullopt},
        RetryAfterCase{"trailing_junk", "120s", std::nullopt},
        RetryAfterCase{"date_junk", "Wed, 21 Oct 2015 07:28:00 GMT!", std::nullopt},
        RetryAfterCase{"bad_month", "Wed, 21 Foo 2015 07:28:00 GMT", std::nullopt}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace airbag::policy
