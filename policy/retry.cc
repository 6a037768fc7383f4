// Retry decisions and Retry-After parsing; see retry.h.
#include "policy/retry.h"

#include <algorithm>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace airbag::policy {
namespace {

// Past this, a Retry-After is more likely a bug than a plan; it is clamped.
constexpr absl::Duration kMaxRetryAfter = absl::Hours(24);

bool hasCompleteAnswer(const TryResult& r) {
  return r.status > 0 &&
         (r.outcome == AttemptOutcome::kOk || r.outcome == AttemptOutcome::kError5xx ||
          r.outcome == AttemptOutcome::kInvalid);
}

std::string_view trimSpaces(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

bool isRetriable(const RetryConfig& config, const TryResult& result) {
  const uint32_t on = config.on;
  switch (result.outcome) {
    case AttemptOutcome::kConnect:
      if (on & kRetryOnConnectFailure) return true;
      break;
    case AttemptOutcome::kReset:
      if (on & kRetryOnReset) return true;
      break;
    case AttemptOutcome::kTimeout:
      if (on & kRetryOnTimeout) return true;
      break;
    case AttemptOutcome::kError5xx:
      if (on & kRetryOn5xx) return true;
      break;
    case AttemptOutcome::kInvalid:
      if (on & kRetryOnInvalid) return true;
      break;
    case AttemptOutcome::kOk:
      break;
  }
  if (!hasCompleteAnswer(result)) return false;
  if ((on & kRetryOn5xx) && result.status >= 500) return true;
  if (on & kRetryOnRetriableStatus) {
    const auto& list = config.retriable_status;
    if (std::find(list.begin(), list.end(), result.status) != list.end()) return true;
  }
  return false;
}

std::string_view retryVerdictLabel(RetryVerdict verdict) {
  switch (verdict) {
    case RetryVerdict::kRetry:
      return "retry";
    case RetryVerdict::kNotRetriable:
      return "not_retriable";
    case RetryVerdict::kAttemptsExhausted:
      return "attempts_exhausted";
    case RetryVerdict::kDeadline:
      return "deadline";
    case RetryVerdict::kBudgetExhausted:
      return "budget_exhausted";
    case RetryVerdict::kBodyNotReplayable:
      return "body_not_replayable";
    case RetryVerdict::kRetryAfterPastDeadline:
      return "retry_after_past_deadline";
  }
  return "unknown";
}

RetryDecision decideRetry(const RetryConfig& config, const TryResult& result, int tries_made,
                          absl::Time now, absl::Time deadline, bool body_replayable,
                          Backoff& backoff, RetryBudget& budget, absl::BitGenRef gen) {
  if (!isRetriable(config, result)) return {RetryVerdict::kNotRetriable, absl::ZeroDuration()};
  if (tries_made >= config.attempts) {
    return {RetryVerdict::kAttemptsExhausted, absl::ZeroDuration()};
  }
  if (!body_replayable) return {RetryVerdict::kBodyNotReplayable, absl::ZeroDuration()};

  absl::Duration delay = backoff.next(gen);
  if (config.honor_retry_after && result.retry_after) {
    const absl::Duration retry_after = std::max(*result.retry_after, absl::ZeroDuration());
    if (now + retry_after >= deadline) {
      return {RetryVerdict::kRetryAfterPastDeadline, absl::ZeroDuration()};
    }
    delay = std::max(delay, retry_after);
  }
  // A try that could only start at the deadline would be cut off at once.
  if (now + delay >= deadline) return {RetryVerdict::kDeadline, absl::ZeroDuration()};
  if (!budget.tryAcquireRetry(now)) return {RetryVerdict::kBudgetExhausted, absl::ZeroDuration()};
  return {RetryVerdict::kRetry, delay};
}

std::optional<absl::Duration> parseRetryAfter(std::string_view value, absl::Time now) {
  value = trimSpaces(value);
  if (value.empty()) return std::nullopt;

  if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    // More than 9 digits is over 31 years: clamp without risking overflow.
    if (value.size() > 9) return kMaxRetryAfter;
    int64_t seconds = 0;
    for (char c : value) seconds = seconds * 10 + (c - '0');
    return std::min(absl::Seconds(seconds), kMaxRetryAfter);
  }

  // RFC 9110 §5.6.7: senders use IMF-fixdate; recipients also accept the
  // obsolete RFC 850 and asctime forms.
  static constexpr const char* kFormats[] = {
      "%a, %d %b %Y %H:%M:%S GMT",  // IMF-fixdate
      "%A, %d-%b-%y %H:%M:%S GMT",  // RFC 850
      "%a %b %e %H:%M:%S %Y",       // asctime
  };
  const absl::string_view text(value.data(), value.size());
  for (const char* format : kFormats) {
    absl::Time when;
    std::string err;
    if (absl::ParseTime(format, text, absl::UTCTimeZone(), &when, &err)) {
      if (when <= now) return absl::ZeroDuration();
      return std::min(when - now, kMaxRetryAfter);
    }
  }
  return std::nullopt;
}

}  // namespace airbag::policy
