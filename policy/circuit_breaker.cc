// The circuit breaker's state machine and sliding time window; see circuit_breaker.h.
#include "policy/circuit_breaker.h"

#include <algorithm>
#include <limits>

namespace airbag::policy {
namespace {

constexpr int64_t kNoBucket = std::numeric_limits<int64_t>::min();

uint32_t probeQuota(const CircuitBreakerConfig& c) {
  return std::max<uint32_t>(1, c.half_open_calls);
}

int64_t bucketNanosFor(const CircuitBreakerConfig& c) {
  return std::max<int64_t>(1, absl::ToInt64Nanoseconds(c.window) / CircuitBreaker::kBuckets);
}

}  // namespace

std::string_view circuitStateLabel(CircuitState s) {
  switch (s) {
    case CircuitState::kClosed:
      return "closed";
    case CircuitState::kOpen:
      return "open";
    case CircuitState::kHalfOpen:
      return "half_open";
  }
  return "closed";
}

CircuitBreaker::CircuitBreaker(const CircuitBreakerConfig& config)
    : config_(config), bucket_ns_(bucketNanosFor(config)), open_for_(config.open_for) {
  absl::MutexLock lock(&mu_);
  clearWindow();
}

int64_t CircuitBreaker::bucketIndex(absl::Time now) const {
  // Plain 64-bit nanoseconds (good until 2262) keep this off the 128-bit path.
  const int64_t ns = absl::ToInt64Nanoseconds(now - absl::UnixEpoch());
  int64_t idx = ns / bucket_ns_;
  if (ns % bucket_ns_ < 0) --idx;  // floor, for times before the epoch
  return idx;
}

void CircuitBreaker::clearWindow() {
  for (Bucket& b : buckets_) b = Bucket{kNoBucket, 0, 0, 0};
}

void CircuitBreaker::record(int64_t idx, bool failure, bool slow) {
  int64_t slot = idx % kBuckets;
  if (slot < 0) slot += kBuckets;
  Bucket& b = buckets_[static_cast<size_t>(slot)];
  // Workers read their clocks independently, so `now` may lag another worker's;
  // a result that lands on a newer bucket is simply counted there.
  if (b.index < idx) b = Bucket{idx, 0, 0, 0};
  ++b.calls;
  if (failure) ++b.failures;
  if (slow) ++b.slow;
}

CircuitBreaker::WindowCounts CircuitBreaker::windowCounts(int64_t idx) const {
  WindowCounts c;
  for (const Bucket& b : buckets_) {
    if (b.index == kNoBucket || b.index <= idx - kBuckets) continue;
    c.calls += b.calls;
    c.failures += b.failures;
    c.slow += b.slow;
  }
  return c;
}

bool CircuitBreaker::isSlow(bool success, absl::Duration duration) const {
  return success && duration > config_.slow_call_duration;
}

bool CircuitBreaker::shouldTrip(int64_t idx) const {
  if (config_.consecutive_failures > 0 && consecutive_ >= config_.consecutive_failures) {
    return true;
  }
  const WindowCounts c = windowCounts(idx);
  if (c.calls == 0 || c.calls < std::max<uint32_t>(1, config_.minimum_calls)) return false;
  // Division (not rate * calls) so that 3 of 10 meets a configured 0.3 exactly.
  const double calls = static_cast<double>(c.calls);
  if (c.failures > 0 && static_cast<double>(c.failures) / calls >= config_.failure_rate) {
    return true;
  }
  return config_.slow_call_rate < 1.0 && c.slow > 0 &&
         static_cast<double>(c.slow) / calls >= config_.slow_call_rate;
}

CircuitState CircuitBreaker::effective() const {
  switch (override_) {
    case CircuitOverride::kForceOpen:
      return CircuitState::kOpen;
    case CircuitOverride::kForceClosed:
      return CircuitState::kClosed;
    case CircuitOverride::kAuto:
      break;
  }
  return state_;
}

void CircuitBreaker::observe() const {
  const CircuitState now_state = effective();
  if (now_state == last_seen_) return;
  ++transitions_[static_cast<size_t>(now_state)];
  last_seen_ = now_state;
}

void CircuitBreaker::advance(absl::Time now) const {
  if (override_ != CircuitOverride::kAuto || state_ != CircuitState::kOpen) return;
  if (now < half_open_at_ || orphans_ > 0) return;
  state_ = CircuitState::kHalfOpen;
  round_admitted_ = round_in_flight_ = round_succeeded_ = 0;
  observe();
}

void CircuitBreaker::endRound() const {
  orphans_ += round_in_flight_;
  round_admitted_ = round_in_flight_ = round_succeeded_ = 0;
}

void CircuitBreaker::open(absl::Time now, absl::Duration for_how_long) {
  endRound();
  state_ = CircuitState::kOpen;
  open_for_ = for_how_long;
  half_open_at_ = now + for_how_long;
}

void CircuitBreaker::close() {
  endRound();
  state_ = CircuitState::kClosed;
  clearWindow();
  consecutive_ = 0;
  open_for_ = config_.open_for;
}

absl::Duration CircuitBreaker::unknownWait() const {
  return std::max(absl::ZeroDuration(), std::min(config_.open_for, absl::Seconds(1)));
}

CircuitBreaker::Permit CircuitBreaker::tryAcquire(absl::Time now) {
  absl::MutexLock lock(&mu_);
  switch (override_) {
    case CircuitOverride::kForceOpen:
      return Permit{false, false, config_.open_for};
    case CircuitOverride::kForceClosed:
      return Permit{true, false, absl::ZeroDuration()};
    case CircuitOverride::kAuto:
      break;
  }
  advance(now);
  switch (state_) {
    case CircuitState::kClosed:
      return Permit{true, false, absl::ZeroDuration()};
    case CircuitState::kOpen: {
      const absl::Duration wait = half_open_at_ - now;
      return Permit{false, false, wait > absl::ZeroDuration() ? wait : unknownWait()};
    }
    case CircuitState::kHalfOpen:
      if (round_admitted_ < probeQuota(config_)) {
        ++round_admitted_;
        ++round_in_flight_;
        return Permit{true, true, absl::ZeroDuration()};
      }
      return Permit{false, false, unknownWait()};
  }
  return Permit{false, false, unknownWait()};
}

void CircuitBreaker::onResult(absl::Time now, bool success, absl::Duration duration, bool probe) {
  absl::MutexLock lock(&mu_);
  advance(now);
  const bool slow = isSlow(success, duration);
  const int64_t idx = bucketIndex(now);
  record(idx, !success, slow);
  if (success) {
    consecutive_ = 0;
  } else if (consecutive_ < std::numeric_limits<uint32_t>::max()) {
    ++consecutive_;
  }

  const bool automatic = override_ == CircuitOverride::kAuto;
  if (probe) {
    // In half-open every outstanding probe belongs to this round (a round starts
    // only with no orphan left), so anything else is an orphan reporting late.
    if (automatic && state_ == CircuitState::kHalfOpen && round_in_flight_ > 0) {
      --round_in_flight_;
      const bool failed = !success || (slow && config_.slow_call_rate < 1.0);
      if (failed) {
        open(now, std::min(open_for_ * 2, std::max(config_.max_open_for, config_.open_for)));
      } else if (++round_succeeded_ >= probeQuota(config_)) {
        close();
      }
    } else if (orphans_ > 0) {
      --orphans_;
    }
  }
  if (automatic && state_ == CircuitState::kClosed && shouldTrip(idx)) {
    open(now, config_.open_for);
  }
  observe();
}

void CircuitBreaker::onAbandoned(bool probe) {
  if (!probe) return;  // no verdict, nothing to count
  absl::MutexLock lock(&mu_);
  if (override_ == CircuitOverride::kAuto && state_ == CircuitState::kHalfOpen &&
      round_in_flight_ > 0) {
    --round_in_flight_;
    --round_admitted_;
  } else if (orphans_ > 0) {
    --orphans_;
  }
}

CircuitState CircuitBreaker::state(absl::Time now) const {
  absl::MutexLock lock(&mu_);
  advance(now);
  return effective();
}

void CircuitBreaker::setOverride(CircuitOverride mode) {
  absl::MutexLock lock(&mu_);
  if (mode == override_) return;
  const CircuitOverride previous = override_;
  override_ = mode;
  endRound();
  if (mode == CircuitOverride::kAuto) {
    if (previous == CircuitOverride::kForceOpen) {
      // Resume cautiously: a half-open round as soon as earlier probes are back.
      state_ = CircuitState::kOpen;
      half_open_at_ = absl::InfinitePast();
    } else {
      state_ = CircuitState::kClosed;
      open_for_ = config_.open_for;
    }
  }
  observe();
}

CircuitOverride CircuitBreaker::override() const {
  absl::MutexLock lock(&mu_);
  return override_;
}

void CircuitBreaker::reconfigure(const CircuitBreakerConfig& config) {
  absl::MutexLock lock(&mu_);
  const bool window_changed = config.window != config_.window;
  config_ = config;
  if (window_changed) {
    bucket_ns_ = bucketNanosFor(config_);
    clearWindow();
  }
  const absl::Duration cap = std::max(config_.max_open_for, config_.open_for);
  open_for_ = state_ == CircuitState::kClosed ? config_.open_for
                                              : std::clamp(open_for_, config_.open_for, cap);
  // A smaller probe quota may already be met by the successes of this round.
  if (state_ == CircuitState::kHalfOpen && round_succeeded_ >= probeQuota(config_)) close();
  observe();
}

CircuitBreaker::Stats CircuitBreaker::stats(absl::Time now) const {
  absl::MutexLock lock(&mu_);
  advance(now);
  Stats s;
  s.state = effective();
  const WindowCounts c = windowCounts(bucketIndex(now));
  s.calls = c.calls;
  s.failures = c.failures;
  s.slow_calls = c.slow;
  s.consecutive_failures = consecutive_;
  if (override_ == CircuitOverride::kAuto && state_ == CircuitState::kOpen) {
    s.until_half_open = std::max(absl::ZeroDuration(), half_open_at_ - now);
  }
  s.current_open_for = open_for_;
  s.probes_in_flight = round_in_flight_ + orphans_;
  s.override_mode = override_;
  return s;
}

uint64_t CircuitBreaker::transitions(CircuitState to) const {
  absl::MutexLock lock(&mu_);
  return transitions_[static_cast<size_t>(to)];
}

}  // namespace airbag::policy
