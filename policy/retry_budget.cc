// Sliding-window retry budget with a per-second reserve; see retry_budget.h.
#include "policy/retry_budget.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "policy/stamped_counter.h"

namespace airbag::policy {
namespace {

using stamped::countOf;
using stamped::pack;
using stamped::stampOf;

constexpr int64_t kMillionths = 1000000;
// Far above any sane reserve, and keeps the millionths well inside int64.
constexpr double kMaxMinPerSecond = 1e9;

// Floor division of nanoseconds since the epoch by `width_ns` (> 0). Plain
// integers: absl's Duration division is out of line and several times dearer,
// and this runs twice per request.
int64_t sliceIndex(int64_t now_ns, int64_t width_ns) {
  int64_t q = now_ns / width_ns;
  if (now_ns % width_ns < 0) --q;
  return q;
}

constexpr int64_t kNanosPerSecond = 1000000000;

int64_t reserveInMillionths(double min_per_second) {
  // std::max/min with the constant first also map NaN to 0.
  const double m = std::min(kMaxMinPerSecond, std::max(0.0, min_per_second));
  return static_cast<int64_t>(std::floor(m * static_cast<double>(kMillionths)));
}

constexpr int64_t kUnset = std::numeric_limits<int64_t>::min();

}  // namespace

RetryBudget::RetryBudget(const RetryBudgetConfig& config, absl::Duration window)
    : config_(config),
      window_(std::max(window, absl::Nanoseconds(RetryBudget::kBuckets))),
      bucket_width_ns_(std::max<int64_t>(1, absl::ToInt64Nanoseconds(window_ / kBuckets))),
      ratio_(std::max(0.0, config.ratio)),
      reserve_whole_(
          static_cast<uint64_t>(reserveInMillionths(config.min_per_second) / kMillionths)),
      reserve_millionths_(reserveInMillionths(config.min_per_second) % kMillionths),
      first_second_(kUnset),
      current_(kUnset) {}

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

RetryBudget::Position RetryBudget::advance(absl::Time now) {
  // An infinite `now` has no bucket; treat it like a time that went back.
  if (now == absl::InfiniteFuture() || now == absl::InfinitePast()) {
    const int64_t current = current_.load(std::memory_order_relaxed);
    if (current != kUnset) return {current, reserve_second_.load()};
    now = absl::UnixEpoch();
  }
  const int64_t now_ns = absl::ToUnixNanos(now);
  int64_t index = sliceIndex(now_ns, bucket_width_ns_);
  const int64_t second = sliceIndex(now_ns, kNanosPerSecond);
  int64_t first = first_second_.load(std::memory_order_relaxed);
  if (first == kUnset && first_second_.compare_exchange_strong(first, second)) first = second;
  // The newest bucket only moves forward; an earlier `now` lands in it.
  int64_t current = current_.load(std::memory_order_relaxed);
  while (index > current && !current_.compare_exchange_weak(current, index)) {
  }
  index = std::max(index, current);
  // The reserve does not accumulate: a new second starts from its own share.
  const int64_t k = second - first;
  uint64_t word = reserve_second_.load();
  while (k > static_cast<int64_t>(stampOf(word))) {
    if (reserve_second_.compare_exchange_weak(word, pack(k, 0))) return {index, pack(k, 0)};
  }
  return {index, word};
}

RetryBudget::Sums RetryBudget::sumWindow(int64_t index) const {
  Sums sums;
  for (const Bucket& b : buckets_) {
    sums.requests +=
        stamped::liveCount(b.requests.load(std::memory_order_relaxed), index, kBuckets);
    sums.ratio_retries +=
        stamped::liveCount(b.ratio_retries.load(std::memory_order_relaxed), index, kBuckets);
    sums.reserve_retries +=
        stamped::liveCount(b.reserve_retries.load(std::memory_order_relaxed), index, kBuckets);
  }
  return sums;
}

uint64_t RetryBudget::ratioLeft(const Sums& sums) const {
  // Whole retries only: retries + 1 <= x holds exactly when retries + 1 <= floor(x).
  const double allowed = std::floor(ratio_ * static_cast<double>(sums.requests));
  const double left = allowed - static_cast<double>(sums.ratio_retries);
  // The cap keeps an absurd ratio from overflowing the conversion.
  return left > 0 ? static_cast<uint64_t>(std::min(left, 1e18)) : 0;
}

void RetryBudget::recordRequest(absl::Time now) {
  const int64_t index = advance(now).index;
  stamped::addOne(slot(index).requests, index, kBuckets);
}

bool RetryBudget::tryAcquireRetry(absl::Time now) {
  const Position pos = advance(now);
  Bucket& b = slot(pos.index);
  // Against the ratio. The CAS fails if a retry was granted in this bucket since
  // `seen` was read, and then the window is summed again.
  uint64_t seen = b.ratio_retries.load();
  while (ratioLeft(sumWindow(pos.index)) > 0) {
    if (b.ratio_retries.compare_exchange_weak(seen, stamped::bumped(seen, pos.index, kBuckets)))
      return true;
  }
  // From the reserve of the current second (a later second, if another caller
  // has moved on: time does not go back).
  uint64_t word = pos.second_word;
  while (countOf(word) < reserveOf(stampOf(word))) {
    if (reserve_second_.compare_exchange_weak(word, word + 1)) {
      stamped::addOne(b.reserve_retries, pos.index, kBuckets);
      return true;
    }
  }
  return false;
}

RetryBudget::Stats RetryBudget::stats(absl::Time now) {
  const Position pos = advance(now);
  const Sums sums = sumWindow(pos.index);
  Stats s;
  s.requests = sums.requests;
  s.retries = sums.ratio_retries + sums.reserve_retries;
  s.reserve_retries = sums.reserve_retries;
  const uint64_t reserve = reserveOf(stampOf(pos.second_word));
  const uint64_t used = countOf(pos.second_word);
  s.allowed_now = static_cast<double>(ratioLeft(sums) + (used < reserve ? reserve - used : 0));
  return s;
}

}  // namespace airbag::policy
