// The admin API's view of live route state: rendering breaker, bulkhead and
// budget state for /routes, applying circuit overrides and runtime faults,
// and sampling that state into metrics at scrape time. Called on the admin
// thread; everything it touches is thread-safe.
#pragma once

#include <optional>
#include <string_view>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "proxy/pipeline/snapshot.h"

namespace airbag::metrics {
class WorkerMetrics;
}

namespace airbag::server {

// Live state of one route for GET /routes: breaker, bulkhead, budget, fault.
nlohmann::json routeState(const pipeline::Snapshot& snap, std::string_view route, absl::Time now);

// POST /routes/{name}/circuit: "open" | "closed" | "auto". FailedPrecondition
// when the route has no circuit breaker.
absl::Status setCircuitOverride(const pipeline::Snapshot& snap, std::string_view route,
                                std::string_view state);

// PUT /routes/{name}/fault with {"delay":{"percent":P,"duration":"200ms"},
// "abort":{"percent":P,"status":503}}; DELETE clears it.
absl::Status setFault(const pipeline::Snapshot& snap, std::string_view route,
                      const nlohmann::json& fault);
absl::Status clearFault(const pipeline::Snapshot& snap, std::string_view route);

// POST /cache/purge: one route's entries, or (nullopt) every entry.
absl::Status purgeCache(const pipeline::Snapshot& snap, std::optional<std::string_view> route);

// Writes the gauges and counters read from shared route state (circuit state
// and transitions, bulkhead occupancy) into a scrape's scratch shard.
void collectRouteMetrics(const pipeline::Snapshot& snap, metrics::WorkerMetrics& out,
                         absl::Time now);

}  // namespace airbag::server
