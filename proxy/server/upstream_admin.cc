// Upstream health for the admin API and metrics; see upstream_admin.h.
#include "proxy/server/upstream_admin.h"

#include <cmath>

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
    j["saturation"] = upstreamSaturationJson(u, now);
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
  for (const pipeline::ResolvedUpstream& u : snap.upstreams) {
    out.setGauge(out.families().upstream_healthy, {u.config->name}, u.health->usable(now) ? 1 : 0);
    if (u.config->saturation)
      out.setGauge(out.families().upstream_saturated, {u.config->name},
                   u.saturation->saturated() ? 1 : 0);
  }
}

namespace {

// What a prober of `u` needs, in the shape of its target type (the copy of
// the config and the address resolved at load); the caller adds its state.
template <typename Target>
Target targetOf(const pipeline::ResolvedUpstream& u) {
  Target t;
  t.config = *u.config;
  t.address = u.address;
  t.has_address = u.address_len > 0;
  return t;
}

}  // namespace

std::vector<upstream::HealthTarget> healthTargets(const pipeline::Snapshot& snap) {
  std::vector<upstream::HealthTarget> out;
  for (const pipeline::ResolvedUpstream& u : snap.upstreams) {
    if (!u.config->health) continue;
    out.push_back(targetOf<upstream::HealthTarget>(u));
    out.back().health = u.health;
  }
  return out;
}

Json upstreamSaturationJson(const pipeline::ResolvedUpstream& u, absl::Time now) {
  if (!u.config->saturation) return nullptr;
  upstream::UpstreamSaturation::View v = u.saturation->view();
  Json readings = Json::array();
  for (const upstream::SaturationReading& r : v.readings) {
    Json one = {{"metric", r.metric}, {"gt", r.gt}, {"value", nullptr}, {"over", false}};
    if (r.value) {
      one["value"] =
          std::isfinite(*r.value) ? Json(*r.value) : Json(*r.value > 0 ? "+Inf" : "-Inf");
      one["over"] = *r.value > r.gt;
    }
    readings.push_back(std::move(one));
  }
  Json j = {{"state", upstream::saturationStateName(v.state)},
            {"readings", std::move(readings)},
            {"scrapes_ok", v.scrapes_ok},
            {"scrapes_failed", v.scrapes_failed}};
  j["seconds_since_scrape"] = v.last_scrape == absl::InfinitePast()
                                  ? Json(nullptr)
                                  : Json(absl::ToDoubleSeconds(now - v.last_scrape));
  j["error"] = v.error.empty() ? Json(nullptr) : Json(v.error);
  return j;
}

std::vector<upstream::SaturationTarget> saturationTargets(const pipeline::Snapshot& snap) {
  std::vector<upstream::SaturationTarget> out;
  for (const pipeline::ResolvedUpstream& u : snap.upstreams) {
    if (!u.config->saturation) continue;
    out.push_back(targetOf<upstream::SaturationTarget>(u));
    out.back().saturation = u.saturation;
  }
  return out;
}

}  // namespace airbag::server
