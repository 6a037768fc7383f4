// Shared upstream health state; see upstream_health.h.
#include "proxy/upstream/upstream_health.h"

#include <algorithm>

namespace airbag::upstream {

absl::Time UpstreamHealth::downUntil() const {
  int64_t ns = down_until_ns_.load(std::memory_order_relaxed);
  return ns == INT64_MIN ? absl::InfinitePast() : absl::FromUnixNanos(ns);
}

bool UpstreamHealth::recordConnectFailure(const PassiveHealthConfig& p, absl::Time now) {
  uint32_t n = connect_failures_.fetch_add(1, std::memory_order_relaxed) + 1;
  if (n < p.consecutive_connect_failures) return false;
  // A failure while already down (a request that started before) adds nothing.
  if (passiveDown(now)) return false;
  // The streak is not reset when a period ends: the first request after it
  // that fails again starts the next, longer period at once.
  uint32_t periods = down_periods_.fetch_add(1, std::memory_order_relaxed);
  absl::Duration d = p.down_for;
  for (uint32_t i = 0; i < periods && d < p.max_down_for; ++i) d *= 2;
  d = std::min(d, p.max_down_for);
  down_until_ns_.store(absl::ToUnixNanos(now + d), std::memory_order_relaxed);
  return true;
}

void UpstreamHealth::recordSuccess() {
  // Cheap when nothing is to be cleared: no store on the hot path.
  if (connect_failures_.load(std::memory_order_relaxed) != 0)
    connect_failures_.store(0, std::memory_order_relaxed);
  if (down_periods_.load(std::memory_order_relaxed) != 0) {
    down_periods_.store(0, std::memory_order_relaxed);
    down_until_ns_.store(INT64_MIN, std::memory_order_relaxed);
  }
}

bool UpstreamHealth::recordProbe(const HealthCheckConfig& h, bool passed) {
  (passed ? probes_passed_ : probes_failed_).fetch_add(1, std::memory_order_relaxed);
  // Probes run on one thread, so the streak needs no compare-and-swap.
  if (passed) recordSuccess();  // a passing probe ends a passive down period
  bool healthy = healthy_.load(std::memory_order_relaxed);
  if (passed == healthy) {
    probe_streak_.store(0, std::memory_order_relaxed);
    return false;
  }
  uint32_t streak = probe_streak_.load(std::memory_order_relaxed) + 1;
  if (streak < (passed ? h.rise : h.fall)) {
    probe_streak_.store(streak, std::memory_order_relaxed);
    return false;
  }
  probe_streak_.store(0, std::memory_order_relaxed);
  healthy_.store(passed, std::memory_order_relaxed);
  return true;
}

void UpstreamHealth::resetProbes() {
  probe_streak_.store(0, std::memory_order_relaxed);
  healthy_.store(true, std::memory_order_relaxed);
}

}  // namespace airbag::upstream
