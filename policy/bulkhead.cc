// The bulkhead's slot accounting and intrusive FIFO queue; see bulkhead.h.
#include "policy/bulkhead.h"

#include <cassert>

namespace airbag::policy {

Bulkhead::Bulkhead(const BulkheadConfig& config) : config_(config) {}

void Bulkhead::pushBack(BulkheadWaiter* w) {
  w->prev_ = tail_;
  w->next_ = nullptr;
  w->queued_in_ = this;
  if (tail_ != nullptr) {
    tail_->next_ = w;
  } else {
    head_ = w;
  }
  tail_ = w;
  ++queued_;
}

void Bulkhead::unlink(BulkheadWaiter* w) {
  if (w->prev_ != nullptr) {
    w->prev_->next_ = w->next_;
  } else {
    head_ = w->next_;
  }
  if (w->next_ != nullptr) {
    w->next_->prev_ = w->prev_;
  } else {
    tail_ = w->prev_;
  }
  w->prev_ = w->next_ = nullptr;
  w->queued_in_ = nullptr;
  --queued_;
}

BulkheadWaiter* Bulkhead::popFront() {
  BulkheadWaiter* w = head_;
  if (w != nullptr) unlink(w);
  return w;
}

BulkheadAdmit Bulkhead::tryAcquire(BulkheadWaiter* w) {
  absl::MutexLock lock(&mu_);
  if (in_flight_ < config_.max_in_flight && head_ == nullptr) {
    ++in_flight_;
    return BulkheadAdmit::kAdmitted;
  }
  if (w != nullptr && queued_ < config_.max_queue) {
    assert(w->queued_in_ == nullptr && "a waiter is queued in one place at a time");
    pushBack(w);
    return BulkheadAdmit::kQueued;
  }
  ++rejected_;
  return BulkheadAdmit::kRejected;
}

void Bulkhead::release() {
  BulkheadWaiter* granted = nullptr;
  {
    absl::MutexLock lock(&mu_);
    assert(in_flight_ > 0 && "release() without a slot");
    if (in_flight_ == 0) return;
    // The slot passes straight to the head of the queue, so in_flight is unchanged;
    // after a shrinking reload the excess drains first.
    if (in_flight_ <= config_.max_in_flight) granted = popFront();
    if (granted == nullptr) --in_flight_;
  }
  if (granted != nullptr) granted->onGranted();
}

bool Bulkhead::cancel(BulkheadWaiter* w) {
  absl::MutexLock lock(&mu_);
  if (w == nullptr || w->queued_in_ != this) return false;
  unlink(w);
  return true;
}

void Bulkhead::reconfigure(const BulkheadConfig& config) {
  {
    absl::MutexLock lock(&mu_);
    config_ = config;
  }
  // A larger limit grants waiters one at a time, each called after unlocking.
  // Bounded: every pass takes a slot or stops.
  for (;;) {
    BulkheadWaiter* granted = nullptr;
    {
      absl::MutexLock lock(&mu_);
      if (in_flight_ >= config_.max_in_flight) return;
      granted = popFront();
      if (granted == nullptr) return;
      ++in_flight_;
    }
    granted->onGranted();
  }
}

absl::Duration Bulkhead::queueTimeout() const {
  absl::MutexLock lock(&mu_);
  return config_.queue_timeout;
}

Bulkhead::Stats Bulkhead::stats() const {
  absl::MutexLock lock(&mu_);
  return Stats{in_flight_, queued_, rejected_};
}

uint32_t Bulkhead::inFlight() const {
  absl::MutexLock lock(&mu_);
  return in_flight_;
}

}  // namespace airbag::policy
