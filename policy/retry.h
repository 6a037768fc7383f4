// Whether and when to retry an upstream try (DESIGN.md §1 "attempt loop",
// §3 "retry"). Pure: the caller passes `now`, the deadline and the generator.
#pragma once

#include <optional>
#include <string_view>

#include "absl/random/bit_gen_ref.h"
#include "absl/time/time.h"
#include "airbag/config.h"
#include "airbag/outcome.h"
#include "policy/backoff.h"
#include "policy/retry_budget.h"

namespace airbag::policy {

// How one upstream try ended, as far as retrying cares.
struct TryResult {
  AttemptOutcome outcome = AttemptOutcome::kOk;
  int status = 0;  // HTTP status of a complete answer; 0 when there was none
  std::optional<absl::Duration> retry_after;  // parsed Retry-After of the answer, if any
};

// Returns true when `result` matches one of the route's `retry.on` conditions:
//   connect-failure: kConnect          reset: kReset          timeout: kTimeout
//   5xx: kError5xx, or a complete answer (kOk / kInvalid) with status >= 500
//   retriable-status: a complete answer whose status is in retriable_status (any class, e.g. 429)
//   invalid: kInvalid
bool isRetriable(const RetryConfig& config, const TryResult& result);

enum class RetryVerdict {
  kRetry,
  kNotRetriable,            // the result matches no `retry.on` condition
  kAttemptsExhausted,       // `retry.attempts` tries already made
  kDeadline,                // the next try would start at or after the request's deadline
  kBudgetExhausted,         // the route's retry budget refused
  kBodyNotReplayable,       // the request body cannot be sent again
  kRetryAfterPastDeadline,  // the upstream's Retry-After reaches past the deadline
};

// Returns a stable snake_case label for logs and metrics ("retry", "deadline", ...).
std::string_view retryVerdictLabel(RetryVerdict verdict);

struct RetryDecision {
  RetryVerdict verdict = RetryVerdict::kNotRetriable;
  absl::Duration delay = absl::ZeroDuration();  // kRetry only: start the next try at now + delay
};

// Decides what follows a failed try. `tries_made` counts the tries so far,
// including the one that produced `result`. Checks, first refusal wins:
//   1. not retriable                         -> kNotRetriable
//   2. tries_made >= attempts                -> kAttemptsExhausted
//   3. !body_replayable                      -> kBodyNotReplayable
//   4. delay = backoff.next(gen); with honor_retry_after and a Retry-After,
//      delay = max(delay, retry_after), and now + retry_after >= deadline
//                                            -> kRetryAfterPastDeadline
//   5. now + delay >= deadline               -> kDeadline
//   6. budget.tryAcquireRetry(now) refuses   -> kBudgetExhausted
// The budget is only consulted (and only charged) when all else allows the
// retry. `backoff` advances whenever step 4 is reached.
RetryDecision decideRetry(const RetryConfig& config, const TryResult& result, int tries_made,
                          absl::Time now, absl::Time deadline, bool body_replayable,
                          Backoff& backoff, RetryBudget& budget, absl::BitGenRef gen);

// Parses a Retry-After header value: delta-seconds ("120") or an HTTP-date
// (IMF-fixdate "Wed, 21 Oct 2015 07:28:00 GMT", RFC 850 or asctime form).
// Returns the wait from `now`: 0 for a date in the past, at most one day
// (larger values are clamped), nullopt when the value is neither form.
std::optional<absl::Duration> parseRetryAfter(std::string_view value, absl::Time now);

}  // namespace airbag::policy
