// Sliding-window retry budget with a per-second reserve; see retry_budget.h.
#include "policy/retry_budget.h"

#include <algorithm>
#include <cmath>

namespace airbag::policy {
namespace {

constexpr int64_t kMillionths = 1000000;
// Far above any sane reserve, and keeps the millionths well inside int64.
constexpr double kMaxMinPerSecond = 1e9;

// Floor division of time since the epoch by `width` (IDivDuration truncates).
int64_t sliceIndex(absl::Time now, absl::Duration width) {
  absl::Duration rem;
  int64_t q = absl::IDivDuration(now - absl::UnixEpoch(), width, &rem);
  if (rem < absl::ZeroDuration()) --q;
  return q;
}

int64_t reserveInMillionths(double min_per_second) {
  // std::max/min with the constant first also map NaN to 0.
  const double m = std::min(kMaxMinPerSecond, std::max(0.0, min_per_second));
  return static_cast<int64_t>(std::floor(m * static_cast<double>(kMillionths)));
}

}  // namespace

RetryBudget::RetryBudget(const RetryBudgetConfig& config, absl::Duration window)
    : config_(config),
      window_(std::max(window, absl::Nanoseconds(RetryBudget::kBuckets))),
      bucket_width_(window_ / kBuckets),
      ratio_(std::max(0.0, config.ratio)),
      reserve_whole_(
          static_cast<uint64_t>(reserveInMillionths(config.min_per_second) / kMillionths)),
      reserve_millionths_(reserveInMillionths(config.min_per_second) % kMillionths) {}

RetryBudget::Bucket& RetryBudget::slot(int64_t index) {
  return buckets_[static_cast<size_t>(((index % kBuckets) + kBuckets) % kBuckets)];
}

uint64_t RetryBudget::reserveOf(int64_t k) const {
  // ceil(f*(k+1)) - ceil(f*k) for the fractional part f repeats every
  // million seconds, which keeps the products small.
  const int64_t j = k % kMillionths;
  auto ceilMillionths = [](int64_t x) { return (x + kMillionths - 1) / kMillionths; };
  return reserve_whole_ + static_cast<uint64_t>(ceilMillionths(reserve_millionths_ * (j + 1)) -
                                                ceilMillionths(reserve_millionths_ * j));
}

RetryBudget::Bucket& RetryBudget::advance(absl::Time now) {
  // An infinite `now` has no bucket; treat it like a time that went back.
  if (now == absl::InfiniteFuture() || now == absl::InfinitePast()) {
    if (started_) return slot(current_);
    now = absl::UnixEpoch();
  }
  const int64_t index = sliceIndex(now, bucket_width_);
  const int64_t second = sliceIndex(now, absl::Seconds(1));
  if (!started_) {
    started_ = true;
    current_ = index;
    slot(index).index = index;
    first_second_ = second_ = second;
    second_reserve_ = reserveOf(0);
    second_used_ = 0;
  } else if (index > current_) {
    // Recycle the slots of the buckets after the old newest up to the new
    // one: at most kBuckets of them, however far time jumped.
    const int64_t fresh = std::min<int64_t>(index - current_, kBuckets);
    for (int64_t k = 0; k < fresh; ++k) {
      Bucket& b = slot(index - k);
      requests_ -= b.requests;
      ratio_retries_ -= b.ratio_retries;
      reserve_retries_ -= b.reserve_retries;
      b = Bucket{index - k, 0, 0, 0};
    }
    current_ = index;
  }
  // The reserve does not accumulate: a new second starts from its own share.
  if (second > second_) {
    second_ = second;
    second_reserve_ = reserveOf(second - first_second_);
    second_used_ = 0;
  }
  // An earlier `now` lands in the newest bucket and second: time never goes back.
  return slot(current_);
}

uint64_t RetryBudget::ratioLeft() const {
  // Whole retries only: retries + 1 <= x holds exactly when retries + 1 <= floor(x).
  const double allowed = std::floor(ratio_ * static_cast<double>(requests_));
  const double left = allowed - static_cast<double>(ratio_retries_);
  // The cap keeps an absurd ratio from overflowing the conversion.
  return left > 0 ? static_cast<uint64_t>(std::min(left, 1e18)) : 0;
}

void RetryBudget::recordRequest(absl::Time now) {
  absl::MutexLock lock(&mu_);
  ++advance(now).requests;
  ++requests_;
}

bool RetryBudget::tryAcquireRetry(absl::Time now) {
  absl::MutexLock lock(&mu_);
  Bucket& b = advance(now);
  if (ratioLeft() > 0) {
    ++b.ratio_retries;
    ++ratio_retries_;
    return true;
  }
  if (second_used_ < second_reserve_) {
    ++second_used_;
    ++b.reserve_retries;
    ++reserve_retries_;
    return true;
  }
  return false;
}

RetryBudget::Stats RetryBudget::stats(absl::Time now) {
  absl::MutexLock lock(&mu_);
  advance(now);
  Stats s;
  s.requests = requests_;
  s.retries = ratio_retries_ + reserve_retries_;
  s.reserve_retries = reserve_retries_;
  s.allowed_now = static_cast<double>(ratioLeft() + (second_reserve_ - second_used_));
  return s;
}

}  // namespace airbag::policy
