// Renders a Config snapshot as JSON for the admin API. Field names follow the
// YAML keys so what GET /config shows can be read against the file.
#include "proxy/config/config_json.h"

#include <algorithm>

#include "absl/time/time.h"
#include "proxy/config/str_util.h"
#include "proxy/config/units.h"

namespace airbag::config {
namespace {

using Json = nlohmann::ordered_json;

std::string duration(absl::Duration d) {
  return d == absl::ZeroDuration() ? "0s" : absl::FormatDuration(d);
}

std::string_view priorityName(Priority p) {
  switch (p) {
    case Priority::kCritical:
      return "critical";
    case Priority::kNormal:
      return "normal";
    case Priority::kOptional:
      return "optional";
  }
  return "normal";
}

std::string_view jitterName(Jitter j) {
  switch (j) {
    case Jitter::kFull:
      return "full";
    case Jitter::kEqual:
      return "equal";
    case Jitter::kDecorrelated:
      return "decorrelated";
    case Jitter::kNone:
      return "none";
  }
  return "full";
}

std::string_view keyBodyName(CacheKeyBody b) {
  switch (b) {
    case CacheKeyBody::kRaw:
      return "raw";
    case CacheKeyBody::kJsonCanonical:
      return "json-canonical";
    case CacheKeyBody::kNone:
      return "none";
  }
  return "raw";
}

// Operands and bodies were validated as JSON at load; parse them back so the
// output shows values, not strings of JSON. A body that is not JSON stays text.
Json embedded(const std::string& text) {
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  return j.is_discarded() ? Json(text) : j;
}

// In the file's own keys: the content type goes back into `headers` when it
// is not the one `json` or `body` implies. A JSON body under another content
// type is shown as `body`, which loads back to the same answer.
// A TLS client block, as upstreams and cache.shared write it.
Json clientTls(const UpstreamTlsConfig& t) {
  Json tls = {{"verify", t.verify}};
  if (!t.ca.empty()) tls["ca"] = t.ca;
  if (!t.sni.empty()) tls["sni"] = t.sni;
  return tls;
}

Json respondJson(const RespondConfig& r) {
  Json out = {{"status", r.status}};
  Json headers = Json::object();
  for (const auto& [name, value] : r.headers) headers[name] = value;
  const bool as_json = r.content_type == "application/json";
  if (r.content_type != (as_json ? "application/json" : "text/plain")) {
    headers["content-type"] = r.content_type;
  }
  out["headers"] = std::move(headers);
  if (as_json) {
    out["json"] = embedded(r.body);
  } else {
    out["body"] = r.body;
  }
  return out;
}

Json routeJson(const RouteConfig& r) {
  Json out;
  out["name"] = r.name;
  Json match = Json::object();
  if (!r.match.path.empty()) match["path"] = r.match.path;
  if (!r.match.path_prefix.empty()) match["path_prefix"] = r.match.path_prefix;
  if (!r.match.path_regex.empty()) match["path_regex"] = r.match.path_regex;
  match["methods"] = r.match.methods;
  Json headers = Json::object();
  for (const HeaderMatch& h : r.match.headers) headers[h.name] = h.value;
  match["headers"] = std::move(headers);
  out["match"] = std::move(match);
  out["upstream"] = r.upstream;
  out["priority"] = priorityName(r.priority);
  out["timeout"] = {{"total", duration(r.timeout.total)},
                    {"per_try", duration(r.timeout.per_try)},
                    {"first_byte", duration(r.timeout.first_byte)},
                    {"idle", duration(r.timeout.idle)}};

  Json on = Json::array();
  static constexpr std::pair<uint32_t, std::string_view> kRetryOn[] = {
      {kRetryOnConnectFailure, "connect-failure"},
      {kRetryOnReset, "reset"},
      {kRetryOnTimeout, "timeout"},
      {kRetryOn5xx, "5xx"},
      {kRetryOnRetriableStatus, "retriable-status"},
      {kRetryOnInvalid, "invalid"}};
  for (const auto& [bit, name] : kRetryOn) {
    if (r.retry.on & bit) on.push_back(name);
  }
  out["retry"] = {
      {"attempts", r.retry.attempts},
      {"on", std::move(on)},
      {"retriable_status", r.retry.retriable_status},
      {"backoff",
       {{"base", duration(r.retry.backoff.base)},
        {"max", duration(r.retry.backoff.max)},
        {"jitter", jitterName(r.retry.backoff.jitter)}}},
      {"honor_retry_after", r.retry.honor_retry_after},
      {"budget",
       {{"ratio", r.retry.budget.ratio}, {"min_per_second", r.retry.budget.min_per_second}}}};
  out["bulkhead"] = {{"max_in_flight", r.bulkhead.max_in_flight},
                     {"max_queue", r.bulkhead.max_queue},
                     {"queue_timeout", duration(r.bulkhead.queue_timeout)}};
  if (r.admission) {
    Json a = {
        {"queue",
         {{"max", r.admission->queue_max}, {"timeout", duration(r.admission->queue_timeout)}}}};
    if (r.admission->adaptive)
      a["adaptive"] = {{"min", r.admission->adaptive->min}, {"max", r.admission->adaptive->max}};
    out["admission"] = std::move(a);
  }
  if (r.hedge) {
    out["hedge"] = {
        {"after", r.hedge->percentile > 0 ? "p" + std::to_string(r.hedge->percentile)
                                          : duration(r.hedge->after)},
        {"max", r.hedge->max}};
  }
  if (r.circuit_breaker) {
    const CircuitBreakerConfig& b = *r.circuit_breaker;
    out["circuit_breaker"] = {{"window", duration(b.window)},
                              {"minimum_calls", b.minimum_calls},
                              {"failure_rate", b.failure_rate},
                              {"slow_call_duration", duration(b.slow_call_duration)},
                              {"slow_call_rate", b.slow_call_rate},
                              {"consecutive_failures", b.consecutive_failures},
                              {"open_for", duration(b.open_for)},
                              {"max_open_for", duration(b.max_open_for)},
                              {"half_open_calls", b.half_open_calls}};
  }
  if (r.cache) {
    const RouteCacheConfig& c = *r.cache;
    out["cache"] = {{"ttl", duration(c.ttl)},
                    {"stale_while_revalidate", duration(c.stale_while_revalidate)},
                    {"stale_if_error", duration(c.stale_if_error)},
                    {"statuses", c.statuses},
                    {"respect_cache_control", c.respect_cache_control},
                    {"key",
                     {{"body", keyBodyName(c.key.body)},
                      {"ignore", c.key.ignore},
                      {"headers", c.key.headers},
                      {"query", c.key.query}}},
                    {"max_entry_bytes", c.max_entry_bytes},
                    {"streams", c.streams},
                    {"shared", c.shared}};
  }
  if (r.validate) {
    Json checks = Json::array();
    for (const JsonCheck& c : r.validate->json) {
      Json check = {{"pointer", c.pointer}};
      if (c.type) check["type"] = jsonTypeName(*c.type);
      if (c.exists) check["exists"] = *c.exists;
      if (c.finite) check["finite"] = true;
      if (c.min) check["min"] = *c.min;
      if (c.max) check["max"] = *c.max;
      if (c.min_items) check["min_items"] = *c.min_items;
      checks.push_back(std::move(check));
    }
    out["validate"] = {{"status", r.validate->status}, {"json", std::move(checks)}};
  }
  Json fallback = Json::array();
  for (const FallbackStep& step : r.fallback) {
    switch (step.kind) {
      case FallbackStep::Kind::kUpstream:
        fallback.push_back({{"upstream", step.upstream}, {"timeout", duration(step.timeout)}});
        break;
      case FallbackStep::Kind::kRules: {
        Json rules = Json::array();
        for (const Rule& rule : step.rules) {
          Json when = Json::array();
          for (const Predicate& p : rule.when) {
            when.push_back({{"pointer", p.pointer}, {predicateOpName(p.op), embedded(p.value_json)}});
          }
          rules.push_back({{"name", rule.name},
                           {"when", std::move(when)},
                           {"respond", respondJson(rule.respond)}});
        }
        fallback.push_back({{"rules", std::move(rules)}});
        break;
      }
      case FallbackStep::Kind::kRespond:
        fallback.push_back({{"respond", respondJson(step.respond)}});
        break;
    }
  }
  out["fallback"] = std::move(fallback);
  out["fault"] = {
      {"delay", {{"percent", r.fault.delay_percent}, {"duration", duration(r.fault.delay)}}},
      {"abort", {{"percent", r.fault.abort_percent}, {"status", r.fault.abort_status}}}};
  return out;
}

// Checks that `obj` has only `known` keys; `what` names it in the message.
absl::Status onlyKeys(const nlohmann::json& obj, std::string_view what,
                      const std::vector<std::string_view>& known) {
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    if (std::find(known.begin(), known.end(), it.key()) == known.end()) {
      return absl::InvalidArgumentError(strCat("unknown key \"", it.key(), "\" in ", what,
                                               " (expected ", strJoin(known, ", "), ")"));
    }
  }
  return absl::OkStatus();
}

// One part of a fault body ("delay" or "abort"): an object with `percent`
// and `other`, nothing else. Sets *percent and returns the value of `other`,
// or null when the part or that key is absent.
absl::StatusOr<const nlohmann::json*> faultPart(const nlohmann::json& body, std::string_view part,
                                                std::string_view other, double* percent) {
  auto it = body.find(part);
  if (it == body.end()) return nullptr;
  if (!it->is_object()) return absl::InvalidArgumentError(strCat(part, " must be an object"));
  if (absl::Status s = onlyKeys(*it, part, {"percent", other}); !s.ok()) return s;
  if (auto p = it->find("percent"); p != it->end()) {
    if (!p->is_number() || p->get<double>() < 0 || p->get<double>() > 100) {
      return absl::InvalidArgumentError(strCat(part, ".percent must be a number from 0 to 100"));
    }
    *percent = p->get<double>();
  }
  auto o = it->find(other);
  return o == it->end() ? nullptr : &*o;
}

}  // namespace

absl::StatusOr<FaultConfig> faultFromJson(const nlohmann::json& body) {
  if (!body.is_object()) return absl::InvalidArgumentError("body must be a JSON object");
  if (absl::Status s = onlyKeys(body, "the fault", {"delay", "abort"}); !s.ok()) return s;
  FaultConfig f;
  absl::StatusOr<const nlohmann::json*> duration =
      faultPart(body, "delay", "duration", &f.delay_percent);
  if (!duration.ok()) return duration.status();
  if (const nlohmann::json* d = *duration) {
    absl::StatusOr<absl::Duration> parsed = d->is_string()
                                                ? parseDuration(d->get<std::string>())
                                                : absl::InvalidArgumentError("it is not a string");
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(
          strCat("delay.duration: ", parsed.status().message(),
                 "; write a string such as \"200ms\", \"1.5s\" or \"1m\""));
    }
    f.delay = *parsed;
  }
  absl::StatusOr<const nlohmann::json*> status =
      faultPart(body, "abort", "status", &f.abort_percent);
  if (!status.ok()) return status.status();
  if (const nlohmann::json* st = *status) {
    if (!st->is_number_integer() || st->get<int64_t>() < 200 || st->get<int64_t>() > 599) {
      return absl::InvalidArgumentError("abort.status must be an HTTP status from 200 to 599");
    }
    f.abort_status = st->get<int>();
  }
  return f;
}

nlohmann::json routeToJson(const RouteConfig& route) {
  // GET /routes adds live state beside the config, which is simplest on the
  // plain json type; its keys come out sorted, unlike GET /config.
  return nlohmann::json::parse(
      routeJson(route).dump(-1, ' ', false, Json::error_handler_t::replace));
}

std::string toJson(const Config& config) {
  Json out;
  const ListenConfig& l = config.listen;
  Json listen = {{"address", l.address},
                 {"workers", l.workers == 0 ? Json("auto") : Json(l.workers)}};
  if (l.tls) {
    Json tls = {{"cert", l.tls->cert}, {"key", l.tls->key}, {"min_version", l.tls->min_version}};
    if (!l.tls->address.empty()) tls["address"] = l.tls->address;
    if (!l.tls->client_ca.empty()) tls["client_ca"] = l.tls->client_ca;
    listen["tls"] = std::move(tls);
  }
  listen["limits"] = {{"max_header_bytes", l.limits.max_header_bytes},
                      {"max_body_bytes", l.limits.max_body_bytes},
                      {"header_timeout", duration(l.limits.header_timeout)},
                      {"idle_timeout", duration(l.limits.idle_timeout)}};
  out["listen"] = std::move(listen);
  Json admin = {{"address", config.admin.address}};
  // Where the token lives is not shown: knowing the path helps an attacker
  // who can read files but not list them.
  if (!config.admin.token_file.empty()) admin["token_file"] = "<set>";
  out["admin"] = std::move(admin);
  out["log"] = {{"level", config.log.level},
                {"access_log", config.log.access_log},
                {"format", config.log.format == LogFormat::kJson ? "json" : "text"}};
  if (config.shedding) out["shedding"] = {{"max_in_flight", config.shedding->max_in_flight}};
  out["cache"] = {{"max_bytes", config.cache.max_bytes}};
  if (const auto& s = config.cache.shared) {
    Json shared = {{"redis", s->redis},
                   {"timeout", duration(s->timeout)},
                   {"coalesce", s->coalesce},
                   {"coalesce_wait", duration(s->coalesce_wait)},
                   {"cluster", s->cluster}};
    if (!s->password_file.empty()) shared["password_file"] = "<set>";
    if (s->tls) shared["tls"] = clientTls(s->tls_settings);
    out["cache"]["shared"] = std::move(shared);
  }
  out["readiness"] = {{"require_upstream", config.readiness.require_upstream}};
  Json upstreams = Json::object();
  for (const UpstreamConfig& u : config.upstreams) {
    Json up = {{"url", u.url},
               {"connect_timeout", duration(u.connect_timeout)},
               {"max_connections", u.max_connections}};
    if (u.tls) up["tls"] = clientTls(*u.tls);
    if (u.http2) up["http2"] = true;
    if (u.health) {
      up["health"] = {{"path", u.health->path},
                      {"interval", duration(u.health->interval)},
                      {"timeout", duration(u.health->timeout)},
                      {"rise", u.health->rise},
                      {"fall", u.health->fall},
                      {"expect", u.health->expect}};
    }
    if (u.passive) {
      up["passive"] = {{"consecutive_connect_failures", u.passive->consecutive_connect_failures},
                       {"down_for", duration(u.passive->down_for)},
                       {"max_down_for", duration(u.passive->max_down_for)}};
    }
    if (u.saturation) {
      Json when = Json::array();
      for (const SaturationThreshold& t : u.saturation->when_any)
        when.push_back({{"metric", t.metric}, {"gt", t.gt}});
      up["saturation"] = {{"metrics_path", u.saturation->metrics_path},
                          {"interval", duration(u.saturation->interval)},
                          {"when_any", std::move(when)}};
      if (u.saturation->port != 0) up["saturation"]["port"] = u.saturation->port;
    }
    upstreams[u.name] = std::move(up);
  }
  out["upstreams"] = std::move(upstreams);
  Json routes = Json::array();
  for (const RouteConfig& r : config.routes) routes.push_back(routeJson(r));
  out["routes"] = std::move(routes);
  // The loader refuses text that is not UTF-8; replacing rather than throwing
  // keeps this total even for a snapshot built some other way.
  return out.dump(2, ' ', false, Json::error_handler_t::replace);
}

}  // namespace airbag::config
