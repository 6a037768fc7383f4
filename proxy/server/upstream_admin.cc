// Upstream health for the admin API and metrics; see upstream_admin.h.
#include "proxy/server/upstream_admin.h"

#include "proxy/metrics/metrics.h"

namespace airbag::server {

using Json = nlohmann::json;

Json upstreamHealthJson(const pipeline::ResolvedUpstream& u, absl::Time now) {
  const upstream::UpstreamHealth& h = *u.health;
  Json j = {{"usable", h.usable(now)}};
  if (u.config->health) {
    j["active"] = {{"healthy", h.healthy()},
                   {"probes_passed", h.probesPassed()},
                   {"probes_failed", h.probesFailed()}};
  } else {
    j["active"] = nullptr;
  }
  if (u.config->passive) {
    absl::Time until = h.downUntil();
    j["passive"] = {
        {"down", h.passiveDown(now)},
        {"consecutive_connect_failures", h.consecutiveConnectFailures()},
        {"seconds_until_up",
         h.passiveDown(now) ? absl::ToDoubleSeconds(until - now) : 0.0}};
  } else {
    j["passive"] = nullptr;
  }
  return j;
}

Json upstreamsState(const pipeline::Snapshot& snap, absl::Time now) {
  Json all = Json::object();
  for (const pipeline::ResolvedUpstream& u : snap.upstreams) {
    Json j = {{"url", u.config->url}, {"tls", u.config->https}};
    j["health"] = upstreamHealthJson(u, now);
    const upstream::ConnectionCounts& c = *u.health->connections();
    j["connections"] = {{"open", c.open.load(std::memory_order_relaxed)},
                        {"idle", c.idle.load(std::memory_order_relaxed)}};
    all[u.config->name] = std::move(j);
  }
  return all;
}

std::vector<std::string> readinessProblems(const pipeline::Snapshot& snap) {
  std::vector<std::string> out;
  if (!snap.config->readiness.require_upstream) return out;
  for (size_t r = 0; r < snap.route_upstream.size(); ++r) {
    int i = snap.route_upstream[r];
    if (i < 0) continue;
    const pipeline::ResolvedUpstream& u = snap.upstreams[static_cast<size_t>(i)];
    if (!u.config->health || u.health->healthy()) continue;
    std::string reason = "upstream_unhealthy:" + u.config->name;
    bool seen = false;
    for (const std::string& s : out) seen = seen || s == reason;
    if (!seen) out.push_back(std::move(reason));
  }
  return out;
}

void collectUpstreamMetrics(const pipeline::Snapshot& snap, metrics::WorkerMetrics& out,
                            absl::Time now) {
  for (const pipeline::ResolvedUpstream& u : snap.upstreams)
    out.setGauge(out.families().upstream_healthy, {u.config->name}, u.health->usable(now) ? 1 : 0);
}

std::vector<upstream::HealthTarget> healthTargets(const pipeline::Snapshot& snap) {
  std::vector<upstream::HealthTarget> out;
  for (const pipeline::ResolvedUpstream& u : snap.upstreams) {
    if (!u.config->health) continue;
    upstream::HealthTarget t;
    t.config = *u.config;
    t.address = u.address;
    t.has_address = u.address_len > 0;
    t.health = u.health;
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace airbag::server
