// Live route state for the admin API and metrics; see route_admin.h.
#include "proxy/server/route_admin.h"

#include <string>

#include "proxy/config/config_json.h"
#include "proxy/metrics/metrics.h"
#include "proxy/server/upstream_admin.h"

namespace airbag::server {
namespace {

using Json = nlohmann::json;

double seconds(absl::Duration d) { return absl::ToDoubleSeconds(d); }

pipeline::RouteRuntime* find(const pipeline::Snapshot& snap, std::string_view route) {
  return snap.runtime(route);
}

absl::Status notFound(std::string_view route) {
  return absl::NotFoundError("no route named \"" + std::string(route) + "\"");
}

}  // namespace

Json routeState(const pipeline::Snapshot& snap, std::string_view route, absl::Time now) {
  Json j = Json::object();
  pipeline::RouteRuntime* rt = find(snap, route);
  if (!rt) return j;
  if (policy::CircuitBreaker* b = rt->breaker()) {
    policy::CircuitBreaker::Stats s = b->stats(now);
    static constexpr const char* kOverride[] = {"auto", "open", "closed"};
    j["circuit"] = {{"state", std::string(policy::circuitStateLabel(s.state))},
                    {"override", kOverride[static_cast<int>(s.override_mode)]},
                    {"window_calls", s.calls},
                    {"window_failures", s.failures},
                    {"window_slow_calls", s.slow_calls},
                    {"consecutive_failures", s.consecutive_failures},
                    {"seconds_until_half_open", seconds(s.until_half_open)},
                    {"current_open_for_seconds", seconds(s.current_open_for)},
                    {"probes_in_flight", s.probes_in_flight}};
  } else {
    j["circuit"] = nullptr;
  }
  for (size_t i = 0; i < snap.config->routes.size(); ++i)
    if (snap.config->routes[i].name == route && snap.route_upstream[i] >= 0) {
      const pipeline::ResolvedUpstream& u =
          snap.upstreams[static_cast<size_t>(snap.route_upstream[i])];
      j["upstream"] = {{"name", u.config->name},
                       {"health", upstreamHealthJson(u, now)},
                       {"saturation", upstreamSaturationJson(u, now)}};
    }
  policy::Bulkhead::Stats bh = rt->bulkhead().stats();
  j["bulkhead"] = {{"in_flight", bh.in_flight}, {"queued", bh.queued}, {"rejected", bh.rejected}};
  if (policy::Admission* a = rt->admission()) {
    policy::Admission::Stats as = a->stats(rt->admissionLane());
    using O = pipeline::RouteRuntime::AdmissionOutcome;
    Json adm = {
        {"limit", as.adaptive ? Json(as.limit) : Json(nullptr)},
        {"in_flight", as.in_flight},
        {"upstream_in_flight", as.upstream_in_flight},
        {"queued",
         {{"critical", as.queued[0]}, {"normal", as.queued[1]}, {"optional", as.queued[2]}}},
        {"admitted", rt->admissions(O::kAdmitted)},
        {"admitted_after_queue", rt->admissions(O::kQueued)},
        {"refused_saturated", rt->admissions(O::kSaturated)},
        {"refused_adaptive_limit", rt->admissions(O::kAdaptiveLimit)},
        {"displaced", rt->admissions(O::kDisplaced)}};
    adm["adaptive"] = as.adaptive ? Json{{"min_rtt_seconds", seconds(as.min_rtt)},
                                         {"sample_rtt_seconds", seconds(as.sample_rtt)}}
                                  : Json(nullptr);
    j["admission"] = std::move(adm);
  } else {
    j["admission"] = nullptr;
  }
  j["hedge"] = nullptr;
  for (const RouteConfig& rc : snap.config->routes) {
    if (rc.name != route || !rc.hedge) continue;
    // The delay in force now: the fixed one, or the measured percentile (null
    // while too few samples: no hedges yet).
    std::optional<absl::Duration> after = rc.hedge->after;
    if (rc.hedge->percentile > 0) after = rt->firstByte().percentile(rc.hedge->percentile, now);
    using H = pipeline::RouteRuntime::Hedge;
    j["hedge"] = {{"after_seconds", after ? Json(seconds(*after)) : Json(nullptr)},
                  {"first_byte_samples", rt->firstByte().samples(now)},
                  {"sent", rt->hedges(H::kSent)},
                  {"won", rt->hedges(H::kWon)},
                  {"lost", rt->hedges(H::kLost)},
                  {"skipped", rt->hedges(H::kSkipped)}};
  }
  policy::RetryBudget::Stats bs = rt->budget().stats(now);
  j["retry_budget"] = {{"requests_in_window", bs.requests},
                       {"retries_in_window", bs.retries},
                       {"retries_allowed_now", bs.allowed_now}};
  if (snap.cache) {
    policy::CacheStore::RouteStats cs = snap.cache->routeStats(route);
    using L = pipeline::RouteRuntime::Lookup;
    j["cache"] = {{"entries", cs.entries},
                  {"bytes", cs.bytes},
                  {"hits", rt->lookups(L::kHit)},
                  {"stale", rt->lookups(L::kStale)},
                  {"misses", rt->lookups(L::kMiss)},
                  {"bypassed", rt->lookups(L::kBypass)}};
    const RouteConfig* rc = nullptr;
    for (const RouteConfig& r : snap.config->routes)
      if (r.name == route) rc = &r;
    if (snap.shared_tier && rc && rc->cache && rc->cache->shared)
      j["cache"]["shared"] = {
          {"redis", snap.shared_tier->settings().url},
          {"breaker",
           std::string(policy::circuitStateLabel(snap.shared_tier->breaker().state(now)))}};
  }
  if (auto f = rt->faultOverride()) {
    j["fault"] = {{"source", "admin"},
                  {"delay", {{"percent", f->delay_percent}, {"seconds", seconds(f->delay)}}},
                  {"abort", {{"percent", f->abort_percent}, {"status", f->abort_status}}}};
  } else {
    j["fault"] = {{"source", "config"}};
  }
  return j;
}

absl::Status setCircuitOverride(const pipeline::Snapshot& snap, std::string_view route,
                                std::string_view state) {
  pipeline::RouteRuntime* rt = find(snap, route);
  if (!rt) return notFound(route);
  policy::CircuitBreaker* b = rt->breaker();
  if (!b)
    return absl::FailedPreconditionError("route \"" + std::string(route) +
                                         "\" has no circuit_breaker");
  if (state == "open")
    b->setOverride(policy::CircuitOverride::kForceOpen);
  else if (state == "closed")
    b->setOverride(policy::CircuitOverride::kForceClosed);
  else if (state == "auto")
    b->setOverride(policy::CircuitOverride::kAuto);
  else
    return absl::InvalidArgumentError("state must be open, closed or auto");
  return absl::OkStatus();
}

absl::Status setFault(const pipeline::Snapshot& snap, std::string_view route, const Json& fault) {
  pipeline::RouteRuntime* rt = find(snap, route);
  if (!rt) return notFound(route);
  absl::StatusOr<FaultConfig> f = config::faultFromJson(fault);
  if (!f.ok()) return f.status();
  rt->setFaultOverride(*f);
  return absl::OkStatus();
}

absl::Status purgeCache(const pipeline::Snapshot& snap, std::optional<std::string_view> route) {
  if (!snap.cache) return absl::OkStatus();
  if (!route) {
    snap.cache->purgeAll();
    return absl::OkStatus();
  }
  if (!find(snap, *route)) return notFound(*route);
  snap.cache->purgeRoute(*route);
  return absl::OkStatus();
}

absl::Status clearFault(const pipeline::Snapshot& snap, std::string_view route) {
  pipeline::RouteRuntime* rt = find(snap, route);
  if (!rt) return notFound(route);
  rt->setFaultOverride(std::nullopt);
  return absl::OkStatus();
}

void collectRouteMetrics(const pipeline::Snapshot& snap, metrics::WorkerMetrics& out,
                         absl::Time now) {
  const metrics::Families& f = out.families();
  for (const auto& rt : snap.runtimes) {
    std::string_view name = rt->name();
    if (policy::CircuitBreaker* b = rt->breaker()) {
      out.setGauge(f.circuit_state, {name}, static_cast<double>(static_cast<int>(b->state(now))));
      for (policy::CircuitState to : {policy::CircuitState::kClosed, policy::CircuitState::kOpen,
                                      policy::CircuitState::kHalfOpen}) {
        uint64_t n = b->transitions(to);
        if (n > 0) out.incCounter(f.circuit_transitions_total, {name, policy::circuitStateLabel(to)}, n);
      }
    }
    policy::Bulkhead::Stats bh = rt->bulkhead().stats();
    out.setGauge(f.bulkhead_in_flight, {name}, bh.in_flight);
    out.setGauge(f.bulkhead_queued, {name}, bh.queued);
    if (policy::Admission* a = rt->admission()) {
      policy::Admission::Stats as = a->stats(rt->admissionLane());
      if (as.adaptive) out.setGauge(f.admission_limit, {name}, as.limit);
      static constexpr std::string_view kTier[] = {"critical", "normal", "optional"};
      for (size_t t = 0; t < 3; ++t)
        out.setGauge(f.admission_queued, {name, kTier[t]}, as.queued[t]);
    }
  }
  if (snap.cache) {
    policy::CacheStore::Stats cs = snap.cache->stats();
    out.setGauge(f.cache_bytes, {}, static_cast<double>(cs.bytes));
    out.setGauge(f.cache_entries, {}, static_cast<double>(cs.entries));
  }
}

}  // namespace airbag::server
