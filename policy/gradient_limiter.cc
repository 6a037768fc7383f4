// The gradient concurrency limiter; see gradient_limiter.h.
#include "policy/gradient_limiter.h"

#include <algorithm>
#include <cmath>

namespace airbag::policy {

GradientLimiter::GradientLimiter(const AdaptiveLimitConfig& config, uint32_t ceiling,
                                 absl::Time now)
    : window_start_(now) {
  reconfigure(config, ceiling);
  limit_ = min_;
  next_probe_ = now;
}

void GradientLimiter::reconfigure(const AdaptiveLimitConfig& config, uint32_t ceiling) {
  max_ = std::max<uint32_t>(1, std::min(config.max, ceiling));
  min_ = std::min(config.min, max_);
  limit_ = std::clamp(limit_, min_, max_);
}

bool GradientLimiter::onSample(absl::Duration latency, uint32_t in_flight, absl::Time now,
                               bool saturated) {
  window_sum_ += latency;
  ++window_count_;
  window_in_flight_ = std::max(window_in_flight_, in_flight);
  window_saturated_ = window_saturated_ || saturated;
  if (now - window_start_ < kWindow || window_count_ < kMinSamples) return false;
  uint32_t before = limit();
  closeWindow(now);
  return limit() != before;
}

void GradientLimiter::closeWindow(absl::Time now) {
  absl::Duration sample = window_sum_ / window_count_;
  window_sum_ = absl::ZeroDuration();
  window_count_ = 0;
  window_start_ = now;
  uint32_t used = window_in_flight_;
  window_in_flight_ = 0;
  bool saturated = window_saturated_;
  window_saturated_ = false;
  last_sample_ = sample;
  if (probing_) {
    // At `min` in flight the upstream is as unloaded as this route can make it.
    min_rtt_ = std::max(sample, absl::Microseconds(1));
    probing_ = false;
    next_probe_ = now + kMinRttInterval;
    return;
  }
  if (now >= next_probe_) {
    probing_ = true;
    return;
  }
  // A sample below the learned minimum is the new minimum (the model got faster).
  if (sample < min_rtt_) min_rtt_ = std::max(sample, absl::Microseconds(1));
  double buffered = absl::ToDoubleSeconds(min_rtt_) * (1 + kBuffer);
  double gradient = std::clamp(buffered / absl::ToDoubleSeconds(sample), 0.5, 2.0);
  // App-limited or saturated: no evidence for more (see onSample()).
  if (gradient >= 1.0 && (used < limit_ || saturated)) return;
  // The headroom sqrt(limit) is given in full only while the latency shows
  // no queue at all (gradient 1 + kBuffer), and none once the queue has used
  // the buffer (gradient 1): the limit then settles where the latency is
  // min_rtt * (1 + kBuffer), instead of keeping sqrt(limit) requests waiting
  // in the model's own queue, where priority cannot reach them.
  double unused_buffer = std::clamp((gradient - 1.0) / kBuffer, 0.0, 1.0);
  double next = static_cast<double>(limit_) * gradient +
                std::sqrt(static_cast<double>(limit_)) * unused_buffer;
  limit_ = static_cast<uint32_t>(
      std::clamp(std::ceil(next), static_cast<double>(min_), static_cast<double>(max_)));
}

}  // namespace airbag::policy
