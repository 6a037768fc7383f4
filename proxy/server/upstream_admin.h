// The admin API's and the health checker's view of upstreams: GET /upstreams,
// the health part of /routes, /readyz under readiness.require_upstream, the
// upstream health gauge, and the targets handed to the health checker.
// Called on the admin and main threads; UpstreamHealth is thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
#include "nlohmann/json.hpp"
#include "proxy/pipeline/snapshot.h"
#include "proxy/upstream/health_checker.h"
#include "proxy/upstream/saturation_scraper.h"

namespace airbag::metrics {
class WorkerMetrics;
}

namespace airbag::server {

// One upstream's health for /upstreams and /routes.
nlohmann::json upstreamHealthJson(const pipeline::ResolvedUpstream& u, absl::Time now);

// GET /upstreams: every upstream by name.
nlohmann::json upstreamsState(const pipeline::Snapshot& snap, absl::Time now);

// With readiness.require_upstream: "upstream_unhealthy:<name>" for each
// route's own upstream that is probed and unhealthy. Empty otherwise.
std::vector<std::string> readinessProblems(const pipeline::Snapshot& snap);

// airbag_upstream_healthy{upstream} and airbag_upstream_saturated{upstream} into a scrape's scratch
// shard.
void collectUpstreamMetrics(const pipeline::Snapshot& snap, metrics::WorkerMetrics& out,
                            absl::Time now);

// What the health checker probes for this snapshot.
std::vector<upstream::HealthTarget> healthTargets(const pipeline::Snapshot& snap);

// One upstream's saturation readings for /upstreams; null when not scraped.
nlohmann::json upstreamSaturationJson(const pipeline::ResolvedUpstream& u, absl::Time now);

// What the saturation scraper reads for this snapshot.
std::vector<upstream::SaturationTarget> saturationTargets(const pipeline::Snapshot& snap);

}  // namespace airbag::server
