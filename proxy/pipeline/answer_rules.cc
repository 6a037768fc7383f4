// Answer validation and cache entries; see answer_rules.h.
#include "proxy/pipeline/answer_rules.h"

#include <algorithm>
#include <optional>

#include "policy/cache_control.h"
#include "proxy/json/document.h"
#include "proxy/json/validate.h"

namespace airbag::pipeline {

bool answerIsValid(const RouteConfig& route, int status, std::string_view body,
                   std::string* reason) {
  if (!route.validate) return true;
  if (status < 200 || status > 299) return true;  // only 2xx answers are checked
  const ValidateConfig& v = *route.validate;
  if (!v.status.empty() && std::find(v.status.begin(), v.status.end(), status) == v.status.end()) {
    if (reason) *reason = "status not in validate.status";
    return false;
  }
  if (v.json.empty()) return true;
  json::ValidationResult r = json::validate(json::Document::parse(body), v.json);
  if (!r.ok && reason) *reason = std::move(r.reason);
  return r.ok;
}

std::shared_ptr<policy::CacheEntry> makeCacheEntry(
    const RouteConfig& route, std::string key, int status,
    std::vector<std::pair<std::string, std::string>> headers, std::string body, bool stream,
    bool event_stream, std::string_view cache_control, absl::Time now) {
  const RouteCacheConfig& c = *route.cache;
  // A stream is kept only when it ended properly: an event stream with its
  // [DONE] marker, any other with its framing intact (the caller saw it end).
  if (stream && event_stream && body.find("data: [DONE]") == std::string::npos) return nullptr;
  if (body.size() > c.max_entry_bytes) return nullptr;
  policy::Freshness f = policy::freshnessFor(
      c, cache_control.empty() ? std::nullopt : std::optional<std::string_view>(cache_control),
      /*finished_event_stream=*/stream && event_stream);
  if (!f.store) return nullptr;
  auto entry = std::make_shared<policy::CacheEntry>();
  entry->key = std::move(key);
  entry->status = status;
  entry->headers = std::move(headers);
  entry->body = std::move(body);
  entry->stream = stream;
  entry->stored_at = now;
  entry->freshness = f;
  entry->route = route.name;
  return entry;
}

}  // namespace airbag::pipeline
