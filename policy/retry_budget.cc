// Sliding-window retry budget; see retry_budget.h.
#include "policy/retry_budget.h"

#include <algorithm>

namespace airbag::policy {
namespace {

// Floor division of time since the epoch by `width` (IDivDuration truncates).
int64_t bucketIndex(absl::Time now, absl::Duration width) {
  absl::Duration rem;
  int64_t q = absl::IDivDuration(now - absl::UnixEpoch(), width, &rem);
  if (rem < absl::ZeroDuration()) --q;
  return q;
}

}  // namespace

RetryBudget::RetryBudget(const RetryBudgetConfig& config, absl::Duration window)
    : config_(config),
      window_(std::max(window, absl::Nanoseconds(RetryBudget::kBuckets))),
      bucket_width_(window_ / kBuckets),
      reserve_(std::max(0.0, config.min_per_second) * absl::ToDoubleSeconds(window_)) {}

RetryBudget::Bucket& RetryBudget::slot(int64_t index) {
  return buckets_[static_cast<size_t>(((index % kBuckets) + kBuckets) % kBuckets)];
}

RetryBudget::Bucket& RetryBudget::advance(absl::Time now) {
  // An infinite `now` has no bucket; treat it like a time that went back.
  if (now == absl::InfiniteFuture() || now == absl::InfinitePast()) {
    if (started_) return slot(current_);
    now = absl::UnixEpoch();
  }
  const int64_t index = bucketIndex(now, bucket_width_);
  if (!started_) {
    started_ = true;
    current_ = index;
    slot(index).index = index;
  } else if (index > current_) {
    // Recycle the slots of the buckets after the old newest up to the new
    // one: at most kBuckets of them, however far time jumped.
    const int64_t fresh = std::min<int64_t>(index - current_, kBuckets);
    for (int64_t k = 0; k < fresh; ++k) {
      Bucket& b = slot(index - k);
      requests_ -= b.requests;
      retries_ -= b.retries;
      b = Bucket{index - k, 0, 0};
    }
    current_ = index;
  }
  // An earlier `now` lands in the newest bucket: time never goes back.
  return slot(current_);
}

double RetryBudget::limit() const {
  return std::max(0.0, config_.ratio) * static_cast<double>(requests_) + reserve_;
}

void RetryBudget::recordRequest(absl::Time now) {
  absl::MutexLock lock(&mu_);
  ++advance(now).requests;
  ++requests_;
}

bool RetryBudget::tryAcquireRetry(absl::Time now) {
  absl::MutexLock lock(&mu_);
  Bucket& b = advance(now);
  if (static_cast<double>(retries_) + 1 > limit()) return false;
  ++b.retries;
  ++retries_;
  return true;
}

RetryBudget::Stats RetryBudget::stats(absl::Time now) {
  absl::MutexLock lock(&mu_);
  advance(now);
  Stats s;
  s.requests = requests_;
  s.retries = retries_;
  s.allowed_now = std::max(0.0, limit() - static_cast<double>(retries_));
  return s;
}

}  // namespace airbag::policy
