// The adaptive concurrency limit of one route (`admission.adaptive`), after
// Envoy's gradient controller and Netflix's Gradient2: it learns the
// upstream's no-load latency (the minimum RTT), compares each window's
// average latency with it, and moves the limit by the gradient
//   gradient = clamp((min_rtt + 10%) / sample, 0.5, 2)
//   new = limit * gradient + sqrt(limit) * clamp((gradient - 1) / 10%, 0, 1)
// between min and max. The headroom term shrinks to nothing as the latency
// uses up the 10% buffer, so a queueing upstream whose latency grows with
// concurrency holds the limit at about 1.1x the concurrency it serves at
// full speed (Envoy and Gradient2 add sqrt(limit) always, which keeps that
// many requests waiting in the model's queue, out of priority's reach).
// The no-load latency is measured again every
// kMinRttInterval with the limit held at `min` for one window, so a model
// that became slower (or faster) for good is followed. For streams the
// sample is the time to first byte. Pure: time comes in as arguments; not
// thread-safe (the AdmissionController guards it).
#pragma once

#include <cstdint>

#include "absl/time/time.h"
#include "airbag/config.h"

namespace airbag::policy {

class GradientLimiter {
 public:
  // A window closes once it is this long and holds this many samples.
  static constexpr absl::Duration kWindow = absl::Milliseconds(250);
  static constexpr int kMinSamples = 5;
  static constexpr absl::Duration kMinRttInterval = absl::Seconds(30);
  // The latency above min_rtt that is still "no queue" (10%).
  static constexpr double kBuffer = 0.1;

  // `ceiling` (the bulkhead's max_in_flight) caps `config.max`.
  GradientLimiter(const AdaptiveLimitConfig& config, uint32_t ceiling, absl::Time now);

  // One finished call's latency, with the calls in flight when it ended
  // (itself included) and whether the model reported itself saturated then.
  // Returns true when the limit changed. The limit grows only from a window
  // whose calls in flight reached it (there is nothing to learn about more
  // concurrency than was used; while admission holds requests back for a
  // saturation, the model's short latency says nothing about the limit) and
  // in which the model never said it was saturated (its own queue is over
  // its threshold: more would only wait there).
  bool onSample(absl::Duration latency, uint32_t in_flight, absl::Time now,
                bool saturated = false);
  // New bounds on reload; the limit is clamped into them.
  void reconfigure(const AdaptiveLimitConfig& config, uint32_t ceiling);

  uint32_t limit() const { return probing_ ? min_ : limit_; }
  // The learned no-load latency; zero before the first measurement.
  absl::Duration minRtt() const { return min_rtt_; }
  // The average latency of the last closed window; zero before one closed.
  absl::Duration sampleRtt() const { return last_sample_; }
  bool probing() const { return probing_; }

 private:
  void closeWindow(absl::Time now);

  uint32_t min_;
  uint32_t max_;
  uint32_t limit_ = 0;
  bool probing_ = true;  // measuring min_rtt with the limit held at min_
  absl::Time next_probe_;
  absl::Duration min_rtt_ = absl::ZeroDuration();
  absl::Duration last_sample_ = absl::ZeroDuration();
  absl::Time window_start_;
  absl::Duration window_sum_ = absl::ZeroDuration();
  int window_count_ = 0;
  uint32_t window_in_flight_ = 0;  // the most in flight seen in the window
  bool window_saturated_ = false;  // the model said it was saturated in the window
};

}  // namespace airbag::policy
