// What a request holds on shared policy state, as values: a shedder slot, an
// admission slot, a bulkhead slot, a breaker permit, the leadership of a cache fill. Each is
// taken by the stage that needs it and given back when its owner lets go of
// it (reset(), a new value assigned, or destruction), so a request that ends
// by any path, or is cancelled, releases exactly what it took. Each is a
// std::unique_ptr whose deleter gives the hold back, so moves are sound.
#pragma once

#include <memory>
#include <string>
#include <utility>

#include "absl/time/time.h"
#include "airbag/config.h"
#include "policy/admission_control.h"
#include "policy/bulkhead.h"
#include "policy/cache_store.h"
#include "policy/circuit_breaker.h"
#include "policy/shedder.h"
#include "proxy/upstream/upstream_saturation.h"

namespace airbag::pipeline {

namespace hold_internal {
struct ShedRelease {
  Priority priority = Priority::kNormal;
  void operator()(policy::Shedder* s) const { s->release(priority); }
};
struct AdmissionRelease {
  uint32_t lane = 0;
  const upstream::UpstreamSaturation* saturation = nullptr;  // of the route's upstream
  void operator()(policy::Admission* a) const {
    a->release(lane, saturation && saturation->saturated());
  }
};
struct BulkheadRelease {
  void operator()(policy::Bulkhead* b) const { b->release(); }
};
struct PermitAbandon {
  bool probe = false;
  void operator()(policy::CircuitBreaker* b) const { b->onAbandoned(probe); }
};
struct FillEnd {
  std::string key;
  void operator()(policy::CacheStore* s) const { s->completeFill(key, nullptr); }
};
}  // namespace hold_internal

// Admission by the global shedder.
using ShedSlot = std::unique_ptr<policy::Shedder, hold_internal::ShedRelease>;
inline ShedSlot makeShedSlot(policy::Shedder* s, Priority p) { return ShedSlot(s, {p}); }

// A place in a route's admission lane (among the requests it lets through at once).
using AdmissionSlot = std::unique_ptr<policy::Admission, hold_internal::AdmissionRelease>;

// A slot of a route's bulkhead.
using BulkheadSlot = std::unique_ptr<policy::Bulkhead, hold_internal::BulkheadRelease>;

// Leave to make one call through a circuit breaker: reported with the call's
// verdict, or abandoned without one when dropped.
class BreakerPermit {
 public:
  BreakerPermit() = default;
  BreakerPermit(policy::CircuitBreaker* b, bool probe) : p_(b, {probe}) {}
  bool held() const { return p_ != nullptr; }
  void reset() { p_.reset(); }
  // Gives the call's verdict; the permit is spent.
  void report(absl::Time now, bool success, absl::Duration took) {
    if (!p_) return;
    bool probe = p_.get_deleter().probe;
    p_.release()->onResult(now, success, took, probe);
  }

 private:
  std::unique_ptr<policy::CircuitBreaker, hold_internal::PermitAbandon> p_;
};

// The duty of the first request that missed a key to end the fill for the
// requests coalesced behind it: complete() once the answer is known (stored
// or not); dropping it ends the fill with nothing, so that the followers go
// upstream themselves.
class FillLeadership {
 public:
  FillLeadership() = default;
  FillLeadership(policy::CacheStore* store, std::string key) : p_(store, {std::move(key)}) {}
  bool held() const { return p_ != nullptr; }
  void reset() { p_.reset(); }
  void complete(std::shared_ptr<const policy::CacheEntry> entry) {
    if (!p_) return;
    std::string key = std::move(p_.get_deleter().key);
    p_.release()->completeFill(key, std::move(entry));
  }

 private:
  std::unique_ptr<policy::CacheStore, hold_internal::FillEnd> p_;
};

}  // namespace airbag::pipeline
