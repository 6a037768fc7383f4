// Per-route shared state and its carry-over on reload; see route_runtime.h.
#include "proxy/pipeline/route_runtime.h"

namespace airbag::pipeline {

RouteRuntime::RouteRuntime(const RouteConfig& route, const RouteRuntime* previous)
    : name_(route.name),
      budget_config_(route.retry.budget),
      bulkhead_config_(route.bulkhead),
      breaker_config_(route.circuit_breaker),
      admission_config_(route.admission) {
  if (previous) {
    // The budget's allowance depends on its config; a changed one starts afresh.
    if (previous->budget_config_.ratio == budget_config_.ratio &&
        previous->budget_config_.min_per_second == budget_config_.min_per_second)
      budget_ = previous->budget_;
    bulkhead_ = previous->bulkhead_;
    if (route.circuit_breaker && previous->breaker_) breaker_ = previous->breaker_;
    fault_ = previous->fault_;
    first_byte_ = previous->first_byte_;
  }
  if (!budget_) budget_ = std::make_shared<policy::RetryBudget>(route.retry.budget);
  if (!bulkhead_) bulkhead_ = std::make_shared<policy::Bulkhead>(route.bulkhead);
  if (route.circuit_breaker && !breaker_)
    breaker_ = std::make_shared<policy::CircuitBreaker>(*route.circuit_breaker);
  // Each fallback upstream gets a breaker of its own (same settings as the
  // route's), carried over by upstream name.
  for (const FallbackStep& step : route.fallback) {
    std::shared_ptr<policy::CircuitBreaker> b;
    bool is_upstream = step.kind == FallbackStep::Kind::kUpstream;
    if (is_upstream && route.circuit_breaker) {
      if (previous) {
        for (size_t i = 0; i < previous->fallback_names_.size(); ++i)
          if (previous->fallback_names_[i] == step.upstream && previous->fallback_breakers_[i])
            b = previous->fallback_breakers_[i];
      }
      if (!b) b = std::make_shared<policy::CircuitBreaker>(*route.circuit_breaker);
    }
    fallback_names_.push_back(is_upstream ? step.upstream : std::string());
    fallback_breakers_.push_back(std::move(b));
  }
  if (!fault_) fault_ = std::make_shared<FaultState>();
  if (!first_byte_) first_byte_ = std::make_shared<policy::LatencyWindow>();
}

void RouteRuntime::commit() const {
  // Carried-over objects take the new settings only now, once the whole new
  // snapshot was built; fresh ones already have them, and reconfiguring
  // them again changes nothing.
  bulkhead_->reconfigure(bulkhead_config_);
  if (admission_) admission_->configure(lane_, *admission_config_, bulkhead_config_.max_in_flight);
  if (breaker_config_) {
    breaker_->reconfigure(*breaker_config_);
    for (const auto& b : fallback_breakers_)
      if (b) b->reconfigure(*breaker_config_);
  }
}

void RouteRuntime::joinAdmission(std::shared_ptr<policy::Admission> admission) {
  // A lane made now has these settings already; a carried-over one gets
  // them in commit().
  lane_ = admission->lane(name_, *admission_config_, bulkhead_config_.max_in_flight);
  admission_ = std::move(admission);
}

std::optional<FaultConfig> RouteRuntime::faultOverride() const {
  // Almost always unset: then one load, no lock on the request path.
  if (!fault_->set.load(std::memory_order_acquire)) return std::nullopt;
  absl::MutexLock l(&fault_->mu);
  return fault_->override;
}

void RouteRuntime::setFaultOverride(std::optional<FaultConfig> f) {
  absl::MutexLock l(&fault_->mu);
  fault_->set.store(f.has_value(), std::memory_order_release);
  fault_->override = std::move(f);
}

}  // namespace airbag::pipeline
