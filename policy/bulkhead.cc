// The bulkhead's slot accounting and intrusive FIFO queue; see bulkhead.h.
#include "policy/bulkhead.h"

#include <cassert>

namespace airbag::policy {
namespace {

constexpr uint64_t kOneQueued = uint64_t{1} << 32;

uint32_t inFlightOf(uint64_t counts) { return static_cast<uint32_t>(counts); }
uint32_t queuedOf(uint64_t counts) { return static_cast<uint32_t>(counts >> 32); }

}  // namespace

Bulkhead::Bulkhead(const BulkheadConfig& config)
    : max_in_flight_(config.max_in_flight), config_(config) {}

uint64_t Bulkhead::pushBack(BulkheadWaiter* w) {
  w->prev_ = tail_;
  w->next_ = nullptr;
  w->queued_in_ = this;
  if (tail_ != nullptr) {
    tail_->next_ = w;
  } else {
    head_ = w;
  }
  tail_ = w;
  return counts_.fetch_add(kOneQueued);
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
  counts_.fetch_sub(kOneQueued);
}

BulkheadWaiter* Bulkhead::popFront() {
  BulkheadWaiter* w = head_;
  if (w != nullptr) unlink(w);
  return w;
}

bool Bulkhead::takeFreeSlot() {
  // One CAS over both counts: a waiter queued in between makes it fail and look again.
  uint64_t counts = counts_.load();
  while (queuedOf(counts) == 0 &&
         inFlightOf(counts) < max_in_flight_.load(std::memory_order_relaxed)) {
    if (counts_.compare_exchange_weak(counts, counts + 1)) return true;
  }
  return false;
}

bool Bulkhead::grantWhileFree(const BulkheadWaiter* self) {
  // Bounded: every pass takes a slot or stops.
  bool took_self = false;
  for (;;) {
    BulkheadWaiter* granted = nullptr;
    {
      absl::MutexLock lock(&mu_);
      // With someone queued only holders of mu_ change the in-flight count.
      if (head_ == nullptr || inFlightOf(counts_.load()) >= config_.max_in_flight) {
        return took_self;
      }
      counts_.fetch_add(1);
      granted = popFront();
      if (granted != self) granted->onGranted();  // under the lock, as in release()
    }
    if (granted == self) took_self = true;
  }
}

BulkheadAdmit Bulkhead::tryAcquire(BulkheadWaiter* w) {
  if (takeFreeSlot()) return BulkheadAdmit::kAdmitted;
  {
    absl::MutexLock lock(&mu_);
    // The queue may have emptied, or a slot come free, since the look above.
    if (takeFreeSlot()) return BulkheadAdmit::kAdmitted;
    if (w == nullptr || queuedOf(counts_.load()) >= config_.max_queue) {
      rejected_.fetch_add(1, std::memory_order_relaxed);
      return BulkheadAdmit::kRejected;
    }
    assert(w->queued_in_ == nullptr && "a waiter is queued in one place at a time");
    // A release that ran before this push, without the queue, may have freed a
    // slot since takeFreeSlot() failed; the push itself tells.
    if (inFlightOf(pushBack(w)) >= config_.max_in_flight) return BulkheadAdmit::kQueued;
  }
  return grantWhileFree(w) ? BulkheadAdmit::kAdmitted : BulkheadAdmit::kQueued;
}

void Bulkhead::release() {
  // Nobody queued: the slot goes back with one CAS.
  uint64_t counts = counts_.load();
  while (queuedOf(counts) == 0) {
    assert(inFlightOf(counts) > 0 && "release() without a slot");
    if (inFlightOf(counts) == 0) return;
    if (counts_.compare_exchange_weak(counts, counts - 1)) return;
  }
  BulkheadWaiter* granted = nullptr;
  {
    absl::MutexLock lock(&mu_);
    const uint32_t in_flight = inFlightOf(counts_.load());
    assert(in_flight > 0 && "release() without a slot");
    if (in_flight == 0) return;
    // The slot passes straight to the head of the queue, so in_flight is unchanged;
    // after a shrinking reload the excess drains first.
    if (in_flight <= config_.max_in_flight) granted = popFront();
    if (granted == nullptr) counts_.fetch_sub(1);
    // Under the lock: once cancel() returns, no grant is in progress.
    if (granted != nullptr) granted->onGranted();
  }
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
    max_in_flight_.store(config.max_in_flight, std::memory_order_relaxed);
  }
  // A larger limit grants waiters one at a time.
  grantWhileFree(nullptr);
}

absl::Duration Bulkhead::queueTimeout() const {
  absl::MutexLock lock(&mu_);
  return config_.queue_timeout;
}

Bulkhead::Stats Bulkhead::stats() const {
  const uint64_t counts = counts_.load();
  return Stats{inFlightOf(counts), queuedOf(counts), rejected_.load(std::memory_order_relaxed)};
}

uint32_t Bulkhead::inFlight() const { return inFlightOf(counts_.load()); }

}  // namespace airbag::policy
