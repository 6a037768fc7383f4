// Saturation-aware admission; see admission_control.h.
#include "policy/admission_control.h"

#include <algorithm>
#include <cassert>

namespace airbag::policy {

uint32_t Admission::lane(const std::string& route, const AdmissionConfig& config,
                         uint32_t ceiling) {
  absl::MutexLock l(&mu_);
  for (size_t i = 0; i < lanes_.size(); ++i)
    if (lanes_[i]->route == route) return static_cast<uint32_t>(i);
  auto lane = std::make_unique<Lane>();
  lane->route = route;
  lane->config = config;
  lane->ceiling = ceiling;
  lanes_.push_back(std::move(lane));
  shapeLimiterLocked();
  return static_cast<uint32_t>(lanes_.size() - 1);
}

void Admission::configure(uint32_t lane, const AdmissionConfig& config, uint32_t ceiling) {
  absl::MutexLock l(&mu_);
  Lane& ln = *lanes_[lane];
  ln.config = config;
  ln.ceiling = ceiling;
  ln.active = true;
  shapeLimiterLocked();
  // A larger limit admits on the next release or pump.
}

void Admission::retainLanes(const std::vector<std::string>& routes) {
  absl::MutexLock l(&mu_);
  for (auto& ln : lanes_)
    ln->active = std::find(routes.begin(), routes.end(), ln->route) != routes.end();
  shapeLimiterLocked();
}

void Admission::shapeLimiterLocked() {
  bool any = false;
  AdaptiveLimitConfig bounds{UINT32_MAX, 0};
  uint32_t ceiling = 0;
  for (const auto& ln : lanes_) {
    if (!ln->active || !ln->config.adaptive) continue;
    any = true;
    bounds.min = std::min(bounds.min, ln->config.adaptive->min);
    bounds.max = std::max(bounds.max, ln->config.adaptive->max);
    ceiling = std::max(ceiling, ln->ceiling);
  }
  if (!any) {
    limiter_.reset();
  } else if (limiter_) {
    limiter_->reconfigure(bounds, ceiling);
  } else {
    // The limiter's first window starts with its first sample.
    limiter_.emplace(bounds, ceiling, absl::InfinitePast());
  }
}

uint32_t Admission::queuedLocked() const {
  return tiers_[0].count + tiers_[1].count + tiers_[2].count;
}

AdmissionDecision Admission::tryAdmit(AdmissionWaiter* w, uint32_t lane_id, Priority priority,
                                      bool saturated) {
  absl::MutexLock l(&mu_);
  Lane& lane = *lanes_[lane_id];
  AdmissionReason why = saturated ? AdmissionReason::kSaturated : AdmissionReason::kAdaptiveLimit;
  // Those already waiting go first: after this, if anyone still waits there
  // is no room, and a newcomer queues behind them.
  grantLocked(saturated);
  if (!saturated && hasRoomLocked() && queuedLocked() == 0) {
    ++lane.in_flight;
    ++in_flight_;
    return {AdmissionDecision::Verdict::kAdmitted, why};
  }
  if (w == nullptr) return {AdmissionDecision::Verdict::kRefused, why};
  const int tier = static_cast<int>(priority);
  if (queuedLocked() >= lane.config.queue_max) {
    // Full for this route: push out the newest waiter of the lowest
    // priority below this one.
    AdmissionWaiter* victim = nullptr;
    for (int t = 2; t > tier && !victim; --t) victim = tiers_[static_cast<size_t>(t)].tail;
    if (!victim) return {AdmissionDecision::Verdict::kRefused, why};
    unlink(victim);
    victim->fate_ = AdmissionWaiter::Fate::kDisplaced;
    victim->onAdmissionDecided();
  }
  push(w, lane_id, tier);
  return {AdmissionDecision::Verdict::kQueued, why};
}

void Admission::push(AdmissionWaiter* w, uint32_t lane, int tier) {
  assert(w->fate_ != AdmissionWaiter::Fate::kQueued);
  Tier& t = tiers_[static_cast<size_t>(tier)];
  w->tier_ = static_cast<uint8_t>(tier);
  w->lane_ = lane;
  w->fate_ = AdmissionWaiter::Fate::kQueued;
  w->next_ = nullptr;
  w->prev_ = t.tail;
  if (t.tail)
    t.tail->next_ = w;
  else
    t.head = w;
  t.tail = w;
  ++t.count;
  ++lanes_[lane]->queued[static_cast<size_t>(tier)];
}

void Admission::unlink(AdmissionWaiter* w) {
  Tier& t = tiers_[w->tier_];
  if (w->prev_)
    w->prev_->next_ = w->next_;
  else
    t.head = w->next_;
  if (w->next_)
    w->next_->prev_ = w->prev_;
  else
    t.tail = w->prev_;
  w->prev_ = w->next_ = nullptr;
  --t.count;
  --lanes_[w->lane_]->queued[w->tier_];
}

void Admission::grantLocked(bool saturated) {
  if (saturated) return;
  // Critical first, FIFO within a priority.
  for (Tier& t : tiers_) {
    while (t.head && hasRoomLocked()) {
      AdmissionWaiter* w = t.head;
      unlink(w);
      ++lanes_[w->lane_]->in_flight;
      ++in_flight_;
      w->fate_ = AdmissionWaiter::Fate::kGranted;
      w->onAdmissionDecided();
    }
  }
}

void Admission::release(uint32_t lane, bool saturated) {
  absl::MutexLock l(&mu_);
  Lane& ln = *lanes_[lane];
  assert(ln.in_flight > 0 && in_flight_ > 0);
  if (ln.in_flight > 0) --ln.in_flight;
  if (in_flight_ > 0) --in_flight_;
  grantLocked(saturated);
}

void Admission::pump(bool saturated) {
  absl::MutexLock l(&mu_);
  grantLocked(saturated);
}

AdmissionFate Admission::leave(AdmissionWaiter* w) {
  absl::MutexLock l(&mu_);
  AdmissionWaiter::Fate fate = w->fate_;
  w->fate_ = AdmissionWaiter::Fate::kNone;
  switch (fate) {
    case AdmissionWaiter::Fate::kGranted:
      return AdmissionFate::kGranted;
    case AdmissionWaiter::Fate::kDisplaced:
      return AdmissionFate::kDisplaced;
    case AdmissionWaiter::Fate::kQueued:
      unlink(w);
      return AdmissionFate::kLeft;
    case AdmissionWaiter::Fate::kNone:
      break;
  }
  return AdmissionFate::kLeft;
}

void Admission::onLatency(absl::Duration latency, absl::Time now, bool saturated) {
  absl::MutexLock l(&mu_);
  if (!limiter_) return;
  if (limiter_->onSample(latency, in_flight_, now, saturated)) grantLocked(saturated);
}

absl::Duration Admission::queueTimeout(uint32_t lane) const {
  absl::MutexLock l(&mu_);
  return lanes_[lane]->config.queue_timeout;
}

Admission::Stats Admission::stats(uint32_t lane) const {
  absl::MutexLock l(&mu_);
  const Lane& ln = *lanes_[lane];
  Stats s;
  s.in_flight = ln.in_flight;
  s.upstream_in_flight = in_flight_;
  s.queued = ln.queued;
  s.adaptive = limiter_.has_value();
  if (limiter_) {
    s.limit = limiter_->limit();
    s.min_rtt = limiter_->minRtt();
    s.sample_rtt = limiter_->sampleRtt();
  }
  return s;
}

}  // namespace airbag::policy
