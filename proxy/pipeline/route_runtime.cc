// Per-route shared state and its carry-over on reload; see route_runtime.h.
#include "proxy/pipeline/route_runtime.h"

namespace airbag::pipeline {

RouteRuntime::RouteRuntime(const RouteConfig& route, const RouteRuntime* previous)
    : name_(route.name), budget_config_(route.retry.budget) {
  if (previous) {
    // The budget's allowance depends on its config; a changed one starts afresh.
    if (previous->budget_config_.ratio == budget_config_.ratio &&
        previous->budget_config_.min_per_second == budget_config_.min_per_second)
      budget_ = previous->budget_;
    bulkhead_ = previous->bulkhead_;
    bulkhead_->reconfigure(route.bulkhead);
    if (route.circuit_breaker && previous->breaker_) {
      breaker_ = previous->breaker_;
      breaker_->reconfigure(*route.circuit_breaker);
    }
    fault_mu_ = previous->fault_mu_;
    fault_override_ = previous->fault_override_;
  }
  if (!budget_) budget_ = std::make_shared<policy::RetryBudget>(route.retry.budget);
  if (!bulkhead_) bulkhead_ = std::make_shared<policy::Bulkhead>(route.bulkhead);
  if (route.circuit_breaker && !breaker_)
    breaker_ = std::make_shared<policy::CircuitBreaker>(*route.circuit_breaker);
  if (!fault_mu_) {
    fault_mu_ = std::make_shared<absl::Mutex>();
    fault_override_ = std::make_shared<std::optional<FaultConfig>>();
  }
}

std::optional<FaultConfig> RouteRuntime::faultOverride() const {
  absl::MutexLock l(fault_mu_.get());
  return *fault_override_;
}

void RouteRuntime::setFaultOverride(std::optional<FaultConfig> f) {
  absl::MutexLock l(fault_mu_.get());
  *fault_override_ = std::move(f);
}

}  // namespace airbag::pipeline
