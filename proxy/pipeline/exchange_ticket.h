// Exchange::Ticket, shared by the Exchange's sources: a request's place in a
// bulkhead queue or among the followers of a coalesced cache fill.
#pragma once

#include <event2/event.h>

#include <memory>

#include "absl/synchronization/mutex.h"
#include "policy/bulkhead.h"
#include "policy/cache_store.h"
#include "proxy/pipeline/exchange.h"

namespace airbag::pipeline {

// A place in a route's bulkhead queue or a cache fill. The slot (or the
// answer) may come from another worker's thread, racing with this request ending, so the ticket is shared:
// while queued it keeps itself alive, and it wakes its owner only while the
// owner is still waiting for it.
class Exchange::Ticket final : public policy::BulkheadWaiter,
                                public policy::CacheStore::FillWaiter {
 public:
  Ticket(event* wake) : wake_(wake) {}

  void onFilled(std::shared_ptr<const policy::CacheEntry> entry) override {
    std::shared_ptr<Ticket> keep;
    {
      absl::MutexLock l(&mu_);
      keep = std::move(self_);
      filled_ = std::move(entry);
      if (waiting_) event_active(wake_, 0, 0);
    }
  }
  std::shared_ptr<const policy::CacheEntry> takeFilled() {
    absl::MutexLock l(&mu_);
    return std::move(filled_);
  }

  void onGranted() override {
    std::shared_ptr<Ticket> keep;
    {
      absl::MutexLock l(&mu_);
      keep = std::move(self_);
      if (waiting_) event_active(wake_, 0, 0);
    }
  }
  // Called by the owner before queueing.
  void arm(std::shared_ptr<Ticket> self) {
    absl::MutexLock l(&mu_);
    self_ = std::move(self);
    waiting_ = true;
  }
  // Called by the owner when it stops waiting (granted, timed out, gone).
  void disarm() {
    absl::MutexLock l(&mu_);
    waiting_ = false;
  }
  // After a successful Bulkhead::cancel no grant will come.
  void dropSelf() {
    absl::MutexLock l(&mu_);
    self_.reset();
  }

 private:
  absl::Mutex mu_;
  event* const wake_;
  std::shared_ptr<Ticket> self_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const policy::CacheEntry> filled_ ABSL_GUARDED_BY(mu_);
  bool waiting_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace airbag::pipeline
