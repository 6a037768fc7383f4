// Mutable per-route state shared by every worker: the route's retry budget,
// circuit breaker and bulkhead (each internally synchronised, so a route
// trips once, not once per worker), plus runtime fault settings. It lives
// beside the immutable snapshot, keyed by route name; on reload a route
// whose name is unchanged keeps the same policy objects, so its breaker,
// bulkhead and budget state carry over. Building a new RouteRuntime changes
// nothing that is live: the carried-over objects take the new settings in
// commit(), once the whole new snapshot has been built.
#pragma once

#include <array>
#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "airbag/config.h"
#include "policy/admission_control.h"
#include "policy/bulkhead.h"
#include "policy/circuit_breaker.h"
#include "policy/hedge.h"
#include "policy/retry_budget.h"
#include "policy/shedder.h"

namespace airbag::pipeline {

class RouteRuntime {
 public:
  // Fresh state for `route`, or, with `previous` (the same-named route of the
  // config being replaced), that route's state carried over.
  RouteRuntime(const RouteConfig& route, const RouteRuntime* previous);

  const std::string& name() const { return name_; }
  // Applies this route's settings to the policy objects it carried over.
  void commit() const;
  policy::RetryBudget& budget() { return *budget_; }
  policy::Bulkhead& bulkhead() { return *bulkhead_; }
  // Null when the route has no `admission`. The Admission is its upstream's
  // (shared by the routes of that upstream); the route's lane in it is
  // admissionLane().
  policy::Admission* admission() { return admission_.get(); }
  uint32_t admissionLane() const { return lane_; }
  // Joins `admission` (the route's upstream's) with a lane of its own; called
  // while the snapshot is built, for routes with `admission`.
  void joinAdmission(std::shared_ptr<policy::Admission> admission);

  // Admission outcomes of this route, for GET /routes (process-wide).
  enum class AdmissionOutcome { kAdmitted, kQueued, kSaturated, kAdaptiveLimit, kDisplaced };
  void countAdmission(AdmissionOutcome o) {
    admissions_[static_cast<int>(o)].fetch_add(1, std::memory_order_relaxed);
  }
  uint64_t admissions(AdmissionOutcome o) const {
    return admissions_[static_cast<int>(o)].load(std::memory_order_relaxed);
  }
  // Recent times to first byte of the route's own tries, for `hedge.after:
  // pNN` and GET /routes; recorded only on routes with `hedge`. Carried over
  // on reload.
  policy::LatencyWindow& firstByte() { return *first_byte_; }
  // Hedges of this route by result, for GET /routes (process-wide).
  enum class Hedge { kSent, kWon, kLost, kSkipped };
  void countHedge(Hedge h) { hedges_[static_cast<int>(h)].fetch_add(1, std::memory_order_relaxed); }
  uint64_t hedges(Hedge h) const {
    return hedges_[static_cast<int>(h)].load(std::memory_order_relaxed);
  }
  // Null when the route has no circuit_breaker.
  policy::CircuitBreaker* breaker() { return breaker_.get(); }
  // The breaker of fallback step `step` (an upstream step), with the route's
  // circuit_breaker settings; null when the route has none.
  policy::CircuitBreaker* fallbackBreaker(size_t step) {
    return step < fallback_breakers_.size() ? fallback_breakers_[step].get() : nullptr;
  }

  // Cache lookups of this route by result, for GET /routes (the metrics
  // have them too, per worker; these are process-wide and cheap to read).
  enum class Lookup { kHit, kStale, kMiss, kBypass };
  void countLookup(Lookup r) { lookups_[static_cast<int>(r)].fetch_add(1, std::memory_order_relaxed); }
  uint64_t lookups(Lookup r) const {
    return lookups_[static_cast<int>(r)].load(std::memory_order_relaxed);
  }

  // Runtime fault injection set through the admin API; overrides the
  // route's configured `fault` while set. Thread-safe.
  std::optional<FaultConfig> faultOverride() const;
  void setFaultOverride(std::optional<FaultConfig> f);

 private:
  const std::string name_;
  RetryBudgetConfig budget_config_;
  BulkheadConfig bulkhead_config_;
  std::optional<CircuitBreakerConfig> breaker_config_;
  std::shared_ptr<policy::RetryBudget> budget_;
  std::shared_ptr<policy::Bulkhead> bulkhead_;
  std::optional<AdmissionConfig> admission_config_;
  std::shared_ptr<policy::Admission> admission_;
  uint32_t lane_ = 0;
  std::array<std::atomic<uint64_t>, 5> admissions_{};
  std::shared_ptr<policy::CircuitBreaker> breaker_;
  std::vector<std::string> fallback_names_;  // upstream of each fallback step ("" if none)
  std::vector<std::shared_ptr<policy::CircuitBreaker>> fallback_breakers_;
  std::array<std::atomic<uint64_t>, 4> lookups_{};
  std::shared_ptr<policy::LatencyWindow> first_byte_;
  std::array<std::atomic<uint64_t>, 4> hedges_{};
  // Shared with the same-named route of later snapshots.
  struct FaultState {
    absl::Mutex mu;
    std::optional<FaultConfig> override ABSL_GUARDED_BY(mu);
    std::atomic<bool> set{false};  // override.has_value(), readable without mu
  };
  std::shared_ptr<FaultState> fault_;
};

}  // namespace airbag::pipeline
