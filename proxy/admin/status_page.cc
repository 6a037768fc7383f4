// The status page's server-side part; see status_page.h.
#include "proxy/admin/status_page.h"

#include "absl/strings/str_cat.h"

namespace airbag::admin {

namespace {

using Json = nlohmann::json;

// A JSON value as table text: strings as they are, null as "-", the rest as
// JSON. Never throws on invalid UTF-8.
std::string text(const Json& v) {
  if (v.is_null()) return "-";
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "yes" : "no";
  return v.dump(-1, ' ', false, Json::error_handler_t::replace);
}

const Json& at(const Json& j, std::initializer_list<const char*> path) {
  static const Json kNull;
  const Json* cur = &j;
  for (const char* key : path) {
    if (!cur->is_object()) return kNull;
    auto it = cur->find(key);
    if (it == cur->end()) return kNull;
    cur = &*it;
  }
  return *cur;
}

void row(std::string& out, std::initializer_list<std::string> cells, bool head = false) {
  out += "<tr>";
  for (const std::string& c : cells)
    absl::StrAppend(&out, head ? "<th>" : "<td>", htmlEscape(c), head ? "</th>" : "</td>");
  out += "</tr>\n";
}

}  // namespace

std::string htmlEscape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string renderStateTables(const Json& status, const Json& routes, const Json& upstreams) {
  std::string out = "<h2>Process</h2>\n<table class=\"plain\" id=\"plain-process\">\n";
  for (const char* key : {"version", "uptime_seconds", "config_file", "workers", "rss_bytes",
                          "draining", "token_required"})
    row(out, {key, text(at(status, {key}))});
  const Json& reload = at(status, {"last_reload"});
  std::string reload_text = "never";
  if (!reload.is_null()) {
    bool ok = at(reload, {"ok"}) == Json(true);
    reload_text = absl::StrCat(text(at(reload, {"at"})),
                               ok ? " ok" : " failed: ", ok ? "" : text(at(reload, {"error"})));
  }
  row(out, {"last_reload", reload_text});
  out += "</table>\n<h2>Routes</h2>\n<table class=\"plain\" id=\"plain-routes\">\n";
  row(out,
      {"route", "upstream", "circuit", "until half-open (s)",
       "bulkhead in flight / queued / rejected", "retries allowed now",
       "cache entries / bytes / hits / misses", "fault"},
      /*head=*/true);
  if (routes.is_array()) {
    for (const Json& r : routes) {
      const Json& st = at(r, {"state"});
      const Json& circuit = at(st, {"circuit"});
      std::string circuit_text = "none";
      if (!circuit.is_null()) {
        circuit_text = text(at(circuit, {"state"}));
        if (text(at(circuit, {"override"})) != "auto")
          absl::StrAppend(&circuit_text, " (forced ", text(at(circuit, {"override"})), ")");
      }
      const Json& cache = at(st, {"cache"});
      row(out,
          {text(at(r, {"name"})), text(at(r, {"upstream"})), circuit_text,
           text(at(circuit, {"seconds_until_half_open"})),
           absl::StrCat(text(at(st, {"bulkhead", "in_flight"})), " / ",
                        text(at(st, {"bulkhead", "queued"})), " / ",
                        text(at(st, {"bulkhead", "rejected"}))),
           text(at(st, {"retry_budget", "retries_allowed_now"})),
           cache.is_null()
               ? "-"
               : absl::StrCat(text(at(cache, {"entries"})), " / ", text(at(cache, {"bytes"})),
                              " / ", text(at(cache, {"hits"})), " / ", text(at(cache, {"misses"}))),
           text(at(st, {"fault"}))});
    }
  }
  out += "</table>\n";
  if (upstreams.is_object()) {
    out += "<h2>Upstreams</h2>\n<table class=\"plain\" id=\"plain-upstreams\">\n";
    row(out, {"upstream", "url", "usable", "probes", "passive", "connections opened"},
        /*head=*/true);
    for (const auto& [name, u] : upstreams.items()) {
      const Json& active = at(u, {"health", "active"});
      const Json& passive = at(u, {"health", "passive"});
      row(out, {name, text(at(u, {"url"})), text(at(u, {"health", "usable"})),
                active.is_null()                        ? "off"
                : at(active, {"healthy"}) == Json(true) ? "healthy"
                                                        : "unhealthy",
                passive.is_null()                     ? "off"
                : at(passive, {"down"}) == Json(true) ? "down"
                                                      : "up",
                text(at(u, {"connections_opened"}))});
    }
    out += "</table>\n";
  }
  return out;
}

std::string renderStatusPage(const Json& status, const Json& routes, const Json& upstreams) {
  std::string page(kStatusPageHtml);
  size_t at_marker = page.find(kStateTablesMarker);
  if (at_marker != std::string::npos)
    page.replace(at_marker, kStateTablesMarker.size(),
                 renderStateTables(status, routes, upstreams));
  return page;
}

}  // namespace airbag::admin
