// Hedged tries; see hedge.h.
#include "policy/hedge.h"

#include <algorithm>
#include <cmath>

#include "policy/retry_budget.h"

namespace airbag::policy {

std::string_view hedgeVerdictLabel(HedgeVerdict v) {
  switch (v) {
    case HedgeVerdict::kSend:
      return "sent";
    case HedgeVerdict::kSkippedDeadline:
      return "skipped_deadline";
    case HedgeVerdict::kSkippedSaturated:
      return "skipped_saturated";
    case HedgeVerdict::kSkippedBreaker:
      return "skipped_breaker";
    case HedgeVerdict::kSkippedUnhealthy:
      return "skipped_unhealthy";
    case HedgeVerdict::kSkippedBudget:
      return "skipped_budget";
  }
  return "sent";
}

HedgeVerdict decideHedge(const HedgeInputs& in, RetryBudget& budget) {
  if (in.now >= in.deadline || !in.body_replayable) return HedgeVerdict::kSkippedDeadline;
  if (in.saturated) return HedgeVerdict::kSkippedSaturated;
  if (!in.breaker_closed) return HedgeVerdict::kSkippedBreaker;
  if (!in.upstream_usable) return HedgeVerdict::kSkippedUnhealthy;
  if (!budget.tryAcquireRetry(in.now)) return HedgeVerdict::kSkippedBudget;
  return HedgeVerdict::kSend;
}

absl::Duration LatencyWindow::bucketBound(int i) {
  return absl::Microseconds(std::llround(1000.0 * std::exp2(i / 4.0)));
}

uint64_t LatencyWindow::minSamples(int percentile) {
  int above = std::max(1, 100 - percentile);
  return std::max<uint64_t>(20, static_cast<uint64_t>((500 + above - 1) / above));
}

int64_t LatencyWindow::epochOf(absl::Time now) const {
  return absl::ToUnixNanos(now) / absl::ToInt64Nanoseconds(period_);
}

void LatencyWindow::advance(int64_t epoch) {
  if (epoch <= epoch_) return;
  if (epoch == epoch_ + 1)
    previous_ = current_;
  else
    previous_.fill(0);
  current_.fill(0);
  epoch_ = epoch;
}

void LatencyWindow::add(absl::Duration latency, absl::Time now) {
  double ms = absl::ToDoubleMilliseconds(latency);
  int i = ms <= 1.0 ? 0 : static_cast<int>(std::ceil(4.0 * std::log2(ms) - 1e-9));
  i = std::clamp(i, 0, kBuckets - 1);
  absl::MutexLock lock(&mu_);
  advance(epochOf(now));
  ++current_[static_cast<size_t>(i)];
}

LatencyWindow::Counts LatencyWindow::windowAt(absl::Time now) const {
  int64_t epoch = epochOf(now);
  Counts sum{};
  absl::MutexLock lock(&mu_);
  // What is older than the previous period is gone.
  for (size_t i = 0; i < kBuckets; ++i) {
    if (epoch_ == epoch) sum[i] = current_[i] + previous_[i];
    if (epoch_ == epoch - 1) sum[i] = current_[i];
  }
  return sum;
}

uint64_t LatencyWindow::samples(absl::Time now) const {
  uint64_t n = 0;
  for (uint64_t c : windowAt(now)) n += c;
  return n;
}

std::optional<absl::Duration> LatencyWindow::percentile(int percentile, absl::Time now) const {
  Counts sum = windowAt(now);
  uint64_t n = 0;
  for (uint64_t c : sum) n += c;
  if (n == 0 || n < minSamples(percentile)) return std::nullopt;
  // The smallest bucket at or below which percentile% of the samples fall.
  uint64_t rank = (n * static_cast<uint64_t>(percentile) + 99) / 100;
  uint64_t seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += sum[static_cast<size_t>(i)];
    if (seen >= rank) return bucketBound(i);
  }
  return bucketBound(kBuckets - 1);
}

}  // namespace airbag::policy
