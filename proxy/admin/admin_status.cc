// The admin router's status endpoints: GET / (the status page), GET /status
// and GET /routes/{name}/history, and the once-a-second history sample.
#include <unistd.h>

#include <fstream>

#include "absl/strings/str_cat.h"
#include "airbag/version.h"
#include "proxy/admin/admin_server.h"
#include "proxy/admin/status_page.h"

namespace airbag::admin {

namespace {

using Json = nlohmann::json;

// Resident set size from /proc/self/statm; null where it cannot be read.
Json residentBytes() {
  std::ifstream statm("/proc/self/statm");
  uint64_t pages_total = 0, pages_resident = 0;
  if (!(statm >> pages_total >> pages_resident)) return nullptr;
  long page = sysconf(_SC_PAGESIZE);
  return pages_resident * static_cast<uint64_t>(page > 0 ? page : 4096);
}

}  // namespace

Json AdminRouter::processStatus() const {
  Json j = hooks_.process_status ? hooks_.process_status() : Json::object();
  if (!j.is_object()) j = Json::object();
  j["version"] = kVersion;
  j["rss_bytes"] = residentBytes();
  j["draining"] = hooks_.draining ? hooks_.draining() : false;
  j["token_required"] = !token_.empty();
  return j;
}

Json AdminRouter::upstreams() const {
  Json all = hooks_.upstreams ? hooks_.upstreams() : Json(nullptr);
  if (!all.is_object()) return all;
  for (auto& [name, u] : all.items())
    if (u.is_object()) u["connections_opened"] = 0;
  for (const auto& s : registry_.totals(registry_.families().upstream_connections_opened)) {
    auto it = all.find(s.labels[0]);
    if (it != all.end() && it->is_object()) (*it)["connections_opened"] = s.count;
  }
  return all;
}

AdminResponse AdminRouter::statusPage() const {
  AdminResponse routes_reply = routes({});
  Json routes_json = routes_reply.status == 200
                         ? Json::parse(routes_reply.body, nullptr, /*allow_exceptions=*/false)
                         : Json::array();
  AdminResponse r;
  r.content_type = "text/html; charset=utf-8";
  r.body = renderStatusPage(processStatus(), routes_json, upstreams());
  // The page fetches nothing from elsewhere; say so to the browser as well.
  r.headers.emplace_back("Content-Security-Policy",
                         "default-src 'none'; script-src 'unsafe-inline'; "
                         "style-src 'unsafe-inline'; img-src data:; connect-src 'self'; "
                         "base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  return r;
}

AdminResponse AdminRouter::history(std::string_view name) const {
  std::shared_ptr<const Config> cfg = hooks_.config ? hooks_.config() : nullptr;
  if (cfg == nullptr) return errorResponse(503, "no_config", "no configuration loaded");
  bool known = false;
  for (const auto& r : cfg->routes) known = known || r.name == name;
  if (!known)
    return errorResponse(404, "not_found",
                         absl::StrCat("no route named \"", std::string(name), "\""));
  std::optional<Json> h = history_.toJson(name);
  if (!h) {
    // A route the sampler has not seen yet (the first second after a reload
    // that added it): an empty history of the same shape.
    HistoryStore empty;
    empty.sample(absl::Now(), {std::string(name)}, {});
    h = empty.toJson(name);
  }
  return jsonResponse(200, *h);
}

void AdminRouter::sampleHistory(absl::Time now) {
  std::shared_ptr<const Config> cfg = hooks_.config ? hooks_.config() : nullptr;
  std::vector<std::string> names;
  if (cfg != nullptr)
    for (const auto& r : cfg->routes) names.push_back(r.name);
  history_.sample(now, names, routeTotals(registry_));
}

}  // namespace airbag::admin
