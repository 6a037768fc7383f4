// The circuit breaker's state machine and sliding time window; see circuit_breaker.h.
#include "policy/circuit_breaker.h"

#include <algorithm>
#include <limits>

#include "policy/stamped_counter.h"

namespace airbag::policy {
namespace {

constexpr int64_t kPastNs = std::numeric_limits<int64_t>::min();
constexpr int64_t kFutureNs = std::numeric_limits<int64_t>::max();

// half_open_at_ for lock-free readers: Unix nanoseconds, the infinities saturated.
int64_t toMirror(absl::Time t) {
  if (t == absl::InfinitePast()) return kPastNs;
  if (t == absl::InfiniteFuture()) return kFutureNs;
  return absl::ToUnixNanos(t);
}
absl::Time fromMirror(int64_t ns) {
  return ns == kFutureNs ? absl::InfiniteFuture() : absl::FromUnixNanos(ns);
}

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
    : half_open_at_ns_(kPastNs), config_(config), open_for_(config.open_for) {
  absl::MutexLock lock(&mu_);
  mirrorConfig();
}

void CircuitBreaker::mirrorConfig() {
  bucket_ns_.store(bucketNanosFor(config_), std::memory_order_relaxed);
  slow_call_ns_.store(absl::ToInt64Nanoseconds(config_.slow_call_duration),
                      std::memory_order_relaxed);
  trip_consecutive_.store(config_.consecutive_failures, std::memory_order_relaxed);
  minimum_calls_.store(config_.minimum_calls, std::memory_order_relaxed);
  failure_rate_.store(config_.failure_rate, std::memory_order_relaxed);
  slow_call_rate_.store(config_.slow_call_rate, std::memory_order_relaxed);
}

int64_t CircuitBreaker::bucketIndex(absl::Time now) const {
  // Plain 64-bit nanoseconds (good until 2262) keep this off the 128-bit path.
  const int64_t bucket_ns = bucket_ns_.load(std::memory_order_relaxed);
  const int64_t ns = absl::ToInt64Nanoseconds(now - absl::UnixEpoch());
  int64_t idx = ns / bucket_ns;
  if (ns % bucket_ns < 0) --idx;  // floor, for times before the epoch
  return idx;
}

void CircuitBreaker::clearWindow() {
  for (Bucket& b : buckets_) {
    b.calls.store(0);
    b.failures.store(0);
    b.slow.store(0);
  }
}

void CircuitBreaker::record(int64_t idx, bool failure, bool slow) {
  int64_t slot = idx % kBuckets;
  if (slot < 0) slot += kBuckets;
  Bucket& b = buckets_[static_cast<size_t>(slot)];
  // Workers read their clocks independently, so `now` may lag another worker's;
  // a result that lands on a newer bucket is simply counted there.
  stamped::addOne(b.calls, idx, kBuckets);
  if (failure) stamped::addOne(b.failures, idx, kBuckets);
  if (slow) stamped::addOne(b.slow, idx, kBuckets);
}

void CircuitBreaker::countConsecutive(bool success) {
  if (success) {
    // Most results succeed after a success: read first, so they write nothing.
    if (consecutive_.load(std::memory_order_relaxed) != 0) consecutive_.store(0);
    return;
  }
  uint32_t seen = consecutive_.load(std::memory_order_relaxed);
  while (seen < std::numeric_limits<uint32_t>::max() &&
         !consecutive_.compare_exchange_weak(seen, seen + 1)) {
  }
}

CircuitBreaker::WindowCounts CircuitBreaker::windowCounts(int64_t idx, bool with_slow) const {
  WindowCounts c;
  for (const Bucket& b : buckets_) {
    c.calls += stamped::liveCount(b.calls.load(std::memory_order_relaxed), idx, kBuckets);
    c.failures += stamped::liveCount(b.failures.load(std::memory_order_relaxed), idx, kBuckets);
    if (with_slow) {
      c.slow += stamped::liveCount(b.slow.load(std::memory_order_relaxed), idx, kBuckets);
    }
  }
  return c;
}

bool CircuitBreaker::isSlow(bool success, absl::Duration duration) const {
  return success &&
         absl::ToInt64Nanoseconds(duration) > slow_call_ns_.load(std::memory_order_relaxed);
}

bool CircuitBreaker::tripDue(int64_t idx) const {
  const uint32_t trip_consecutive = trip_consecutive_.load(std::memory_order_relaxed);
  if (trip_consecutive > 0 && consecutive_.load() >= trip_consecutive) return true;
  const double slow_call_rate = slow_call_rate_.load(std::memory_order_relaxed);
  const bool slow_trips = slow_call_rate < 1.0;
  const WindowCounts c = windowCounts(idx, slow_trips);
  const uint32_t minimum_calls = minimum_calls_.load(std::memory_order_relaxed);
  if (c.calls == 0 || c.calls < std::max<uint32_t>(1, minimum_calls)) return false;
  // Division (not rate * calls) so that 3 of 10 meets a configured 0.3 exactly.
  const double calls = static_cast<double>(c.calls);
  if (c.failures > 0 &&
      static_cast<double>(c.failures) / calls >= failure_rate_.load(std::memory_order_relaxed)) {
    return true;
  }
  return slow_trips && c.slow > 0 && static_cast<double>(c.slow) / calls >= slow_call_rate;
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
  half_open_at_ns_.store(toMirror(half_open_at_), std::memory_order_relaxed);
  Gate gate = Gate::kClosed;
  switch (override_) {
    case CircuitOverride::kForceOpen:
      gate = Gate::kForcedOpen;
      break;
    case CircuitOverride::kForceClosed:
      gate = Gate::kForcedClosed;
      break;
    case CircuitOverride::kAuto:
      gate = state_ == CircuitState::kOpen       ? Gate::kOpen
             : state_ == CircuitState::kHalfOpen ? Gate::kHalfOpen
                                                 : Gate::kClosed;
      break;
  }
  // Release: a reader that sees the gate sees the half_open_at_ stored with it.
  gate_.store(gate, std::memory_order_release);
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
  consecutive_.store(0);
  open_for_ = config_.open_for;
}

absl::Duration CircuitBreaker::unknownWait() const {
  return std::max(absl::ZeroDuration(), std::min(config_.open_for, absl::Seconds(1)));
}

bool CircuitBreaker::openUntil(absl::Time now, absl::Time* at) const {
  const int64_t at_ns = half_open_at_ns_.load(std::memory_order_relaxed);
  if (at_ns == kPastNs) return false;
  *at = fromMirror(at_ns);
  return now < *at;
}

CircuitBreaker::Permit CircuitBreaker::tryAcquire(absl::Time now) {
  switch (gate_.load(std::memory_order_acquire)) {
    case Gate::kClosed:
    case Gate::kForcedClosed:
      return Permit{true, false, absl::ZeroDuration()};
    case Gate::kOpen: {
      absl::Time at;
      if (openUntil(now, &at)) return Permit{false, false, at - now};
      break;  // due for half-open: the mutex decides who moves it
    }
    case Gate::kHalfOpen:
    case Gate::kForcedOpen:
      break;
  }
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
  const bool slow = isSlow(success, duration);
  const int64_t idx = bucketIndex(now);
  const Gate gate = gate_.load(std::memory_order_acquire);
  if (!probe && (gate == Gate::kClosed || gate == Gate::kForcedClosed)) {
    // Closed: count without the mutex; take it only to trip, and confirm there,
    // since another result may have tripped (or a success reset the count) first.
    record(idx, !success, slow);
    countConsecutive(success);
    if (gate == Gate::kForcedClosed || !tripDue(idx)) return;
    absl::MutexLock lock(&mu_);
    advance(now);
    if (override_ == CircuitOverride::kAuto && state_ == CircuitState::kClosed && tripDue(idx)) {
      open(now, config_.open_for);
    }
    observe();
    return;
  }

  absl::MutexLock lock(&mu_);
  advance(now);
  record(idx, !success, slow);
  countConsecutive(success);

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
  if (automatic && state_ == CircuitState::kClosed && tripDue(idx)) {
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
  switch (gate_.load(std::memory_order_acquire)) {
    case Gate::kClosed:
    case Gate::kForcedClosed:
      return CircuitState::kClosed;
    case Gate::kHalfOpen:
      return CircuitState::kHalfOpen;
    case Gate::kForcedOpen:
      return CircuitState::kOpen;
    case Gate::kOpen: {
      absl::Time at;
      if (openUntil(now, &at)) return CircuitState::kOpen;
      break;  // may be due for half-open, which is counted when first seen
    }
  }
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
  mirrorConfig();
  if (window_changed) clearWindow();
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
  const WindowCounts c = windowCounts(bucketIndex(now), true);
  s.calls = c.calls;
  s.failures = c.failures;
  s.slow_calls = c.slow;
  s.consecutive_failures = consecutive_.load();
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
