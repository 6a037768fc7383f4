// A cached health or readiness endpoint reports a model that has gone down as up (from the cache,
// or stale for stale_if_error), so the probe sees a healthy answer the model never gave now. And
// `admission` with neither a saturation reading nor an adaptive limit never holds anything back.
#include "proxy/config/config_warnings.h"

#include <algorithm>
#include <array>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "re2/re2.h"

namespace airbag::config {
namespace {

// Health and readiness paths the model-server families serve.
constexpr std::array<const char*, 10> kHealthPaths = {
    "/health",          "/healthz",         "/ready",          "/readyz",
    "/livez",           "/ping",            "/v2/health/live", "/v2/health/ready",
    "/v2/models/m/ready", "/v1/models/m/ready"};

// True when a GET of `path` can be taken by the route's match (headers aside).
bool takes(const MatchConfig& m, const std::string& path) {
  if (!m.methods.empty() &&
      std::none_of(m.methods.begin(), m.methods.end(),
                   [](const std::string& x) { return x == "GET" || x == "HEAD"; })) {
    return false;
  }
  if (!m.path.empty()) return m.path == path;
  if (!m.path_regex.empty()) {
    const RE2 re(m.path_regex);
    return re.ok() && RE2::FullMatch(path, re);
  }
  return absl::StartsWith(path, m.path_prefix);  // an empty prefix takes every path
}

}  // namespace

std::vector<std::string> configWarnings(const Config& config) {
  // For each health path, the routes that may take it, in order, up to the first that surely
  // does (one without header conditions): first match wins.
  std::vector<bool> warn(config.routes.size(), false);
  for (const std::string path : kHealthPaths) {
    for (size_t i = 0; i < config.routes.size(); ++i) {
      const RouteConfig& r = config.routes[i];
      if (!takes(r.match, path)) continue;
      if (r.cache) warn[i] = true;
      if (r.match.headers.empty()) break;
    }
  }
  std::vector<std::string> out;
  for (size_t i = 0; i < config.routes.size(); ++i) {
    if (!warn[i]) continue;
    out.push_back(absl::StrCat(
        config.source_path, ": warning: route \"", config.routes[i].name,
        "\" has a cache and takes health or readiness paths (such as /health or "
        "/v2/health/ready); a cached or stale answer reports a failed model as healthy. Give "
        "health endpoints a route of their own, without a cache, before this one"));
  }
  // The adaptive limit is the upstream's, set by any of its routes with admission.
  for (const RouteConfig& r : config.routes) {
    if (!r.admission || r.admission->adaptive) continue;
    const UpstreamConfig* u = config.findUpstream(r.upstream);
    if (!u || u->saturation) continue;
    bool adaptive =
        std::any_of(config.routes.begin(), config.routes.end(), [&](const RouteConfig& o) {
          return o.upstream == r.upstream && o.admission && o.admission->adaptive;
        });
    if (adaptive) continue;
    out.push_back(absl::StrCat(config.source_path, ": warning: route \"", r.name,
                               "\" has admission, but its upstream \"", r.upstream,
                               "\" has no saturation and no route of it sets admission.adaptive: "
                               "admission will never hold a request back"));
  }
  return out;
}

}  // namespace airbag::config
