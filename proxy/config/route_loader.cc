// The route part of the YAML schema (DESIGN.md §3 `routes`): match,
// timeouts, retry, bulkhead, breaker, cache, validation, the fallback ladder
// and faults, each read and checked into RouteConfig. Part of the Loader.
#include <algorithm>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "proxy/config/loader.h"
#include "proxy/config/str_util.h"
#include "proxy/config/units.h"
#include "proxy/log/format.h"
#include "re2/re2.h"

namespace airbag::config::internal {

void Loader::readRoutes(const Entry& e) {
  if (!e.value.IsSequence()) {
    diag_.error(e.mark(), strCat("'routes' must be a list of routes, got ", kindName(e.value)));
    return;
  }
  if (e.value.size() == 0) {
    diag_.error(e.mark(), "'routes' must list at least one route");
    return;
  }
  for (const YAML::Node& node : e.value) {
    RouteConfig r;
    r.loc = locOf(node.Mark());
    readRoute(node, r);
    config_.routes.push_back(std::move(r));
  }
}

void Loader::readRoute(const YAML::Node& node, RouteConfig& r) {
  MapReader m(diag_, node, "route",
              {"name", "match", "upstream", "priority", "timeout", "retry", "bulkhead", "admission", "hedge",
               "circuit_breaker", "cache", "validate", "fallback", "fault"});
  if (!m.valid()) return;
  if (node.IsNull()) {
    diag_.error(node.Mark(), "a route needs at least name, match and upstream");
    return;
  }
  if (const Entry* n = m.require("name")) {
    if (auto v = read_.string(n)) {
      r.name = *v;
      for (const RouteConfig& other : config_.routes) {
        if (other.name == r.name) {
          diag_.error(n->mark(), strCat("duplicate route name '", r.name, "' (first at line ",
                                        other.loc.line, ")"));
          break;
        }
      }
    }
  }
  if (const Entry* e = m.require("match")) readMatch(*e, r.match);
  if (const Entry* u = m.require("upstream")) {
    if (auto v = read_.string(u)) {
      r.upstream = *v;
      checkUpstreamRef(*u, r.upstream);
    }
  }
  if (auto v = read_.oneOf<Priority>(m.find("priority"), {{"critical", Priority::kCritical},
                                                          {"normal", Priority::kNormal},
                                                          {"optional", Priority::kOptional}})) {
    r.priority = *v;
  }
  if (const Entry* e = m.find("timeout")) readTimeout(*e, r.timeout);
  if (const Entry* e = m.find("retry")) readRetry(*e, r.retry);
  if (const Entry* e = m.find("bulkhead")) readBulkhead(*e, r.bulkhead);
  if (const Entry* e = m.find("admission")) readAdmission(*e, r);
  if (const Entry* e = m.find("hedge")) readHedge(*e, r);
  if (const Entry* e = m.find("circuit_breaker")) {
    CircuitBreakerConfig b;
    readBreaker(*e, b);
    r.circuit_breaker = b;
  }
  if (const Entry* e = m.find("cache")) {
    RouteCacheConfig c;
    readRouteCache(*e, c);
    r.cache = std::move(c);
  }
  if (const Entry* e = m.find("validate")) {
    ValidateConfig v;
    readValidate(*e, v);
    r.validate = std::move(v);
  }
  if (const Entry* e = m.find("fallback")) readFallback(*e, r);
  if (const Entry* e = m.find("fault")) readFault(*e, r.fault);
}

void Loader::readMatch(const Entry& e, MatchConfig& match) {
  MapReader m(diag_, e.value, "match", {"path", "path_prefix", "path_regex", "methods", "headers"});
  // `match: {}` is allowed and matches every path: a catch-all last route.
  int path_keys = 0;
  for (std::string_view key : {"path", "path_prefix", "path_regex"}) {
    const Entry* p = m.find(key);
    if (p == nullptr) continue;
    if (++path_keys > 1) {
      diag_.error(p->key_mark, "match takes at most one of path, path_prefix and path_regex");
    }
    std::optional<std::string> v = read_.string(p);
    if (!v) continue;
    if (key == "path_regex") {
      checkRegex(p->mark(), key, *v);
      match.path_regex = *v;
    } else if ((*v)[0] != '/') {
      diag_.error(p->mark(), strCat("'", key, "' must start with '/'"));
    } else {
      (key == "path" ? match.path : match.path_prefix) = *v;
    }
  }
  if (const Entry* methods = m.find("methods")) {
    static constexpr std::string_view kMethods[] = {"GET",   "HEAD",    "POST",  "PUT",    "DELETE",
                                                    "PATCH", "OPTIONS", "TRACE", "CONNECT"};
    read_.list(methods, [&](const YAML::Node& n) {
      std::optional<std::string> s = read_.scalarNode(n, "a method");
      if (!s) return;
      const std::string upper = absl::AsciiStrToUpper(*s);
      if (std::find(std::begin(kMethods), std::end(kMethods), upper) == std::end(kMethods)) {
        diag_.error(n.Mark(),
                    strCat("invalid method '", *s,
                           "' (expected GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, TRACE "
                           "or CONNECT)"));
        return;
      }
      if (std::find(match.methods.begin(), match.methods.end(), upper) != match.methods.end()) {
        diag_.error(n.Mark(), strCat("method '", upper, "' is listed twice"));
        return;
      }
      match.methods.push_back(upper);
    });
  }
  if (const Entry* h = m.find("headers")) {
    MapReader hm(diag_, h->value, "match.headers", {});
    for (const Entry& he : hm.entries()) {
      if (!isToken(he.key)) {
        diag_.error(he.key_mark, strCat("invalid header name '", he.key, "'"));
        continue;
      }
      if (auto v = read_.string(&he, true)) {
        match.headers.push_back({absl::AsciiStrToLower(he.key), *v});
      }
    }
  }
}

void Loader::readTimeout(const Entry& e, TimeoutConfig& t) {
  MapReader m(diag_, e.value, "timeout", {"total", "per_try", "first_byte", "idle"});
  if (auto v = read_.duration(m.find("total"), false)) t.total = *v;
  const Entry* per_try = m.find("per_try");
  const Entry* first_byte = m.find("first_byte");
  std::optional<absl::Duration> pt = read_.duration(per_try, false);
  std::optional<absl::Duration> fb = read_.duration(first_byte, false);
  t.per_try = pt.value_or(t.total);
  t.first_byte = fb.value_or(t.per_try);
  if (auto v = read_.duration(m.find("idle"), false)) t.idle = *v;
  if (pt && *pt > t.total) {
    diag_.error(per_try->mark(), strCat("timeout.per_try (", durationText(*pt),
                                        ") exceeds timeout.total (", durationText(t.total), ")"));
  }
  if (fb && *fb > t.per_try) {
    diag_.error(first_byte->mark(),
                strCat("timeout.first_byte (", durationText(*fb), ") exceeds ",
                       pt ? "timeout.per_try (" : "timeout.total (", durationText(t.per_try), ")"));
  }
}

void Loader::readRetry(const Entry& e, RetryConfig& r) {
  MapReader m(diag_, e.value, "retry",
              {"attempts", "on", "retriable_status", "backoff", "honor_retry_after", "budget"});
  if (auto v = read_.integer(m.find("attempts"), 1, 100)) r.attempts = static_cast<int>(*v);
  if (const Entry* on = m.find("on")) {
    static const std::vector<std::pair<std::string_view, RetryOn>> kConditions = {
        {"connect-failure", kRetryOnConnectFailure},
        {"reset", kRetryOnReset},
        {"timeout", kRetryOnTimeout},
        {"5xx", kRetryOn5xx},
        {"retriable-status", kRetryOnRetriableStatus},
        {"invalid", kRetryOnInvalid}};
    uint32_t bits = 0;
    bool ok = true;
    read_.list(on, [&](const YAML::Node& n) {
      std::optional<std::string> s = read_.scalarNode(n, "a retry condition");
      if (!s) {
        ok = false;
        return;
      }
      std::vector<std::string_view> names;
      for (const auto& [name, bit] : kConditions) {
        names.push_back(name);
        if (name == *s) {
          bits |= bit;
          return;
        }
      }
      ok = false;
      read_.reportNotOneOf(n.Mark(), "retry.on", *s, names);
    });
    if (ok && on->value.IsSequence()) r.on = bits;
  }
  const Entry* statuses = m.find("retriable_status");
  if (auto v = read_.statusList(statuses)) r.retriable_status = *v;
  if ((r.on & kRetryOnRetriableStatus) && r.retriable_status.empty()) {
    const Entry* on = m.find("on");
    diag_.error(on ? on->mark() : m.mark(),
                "retry.on includes 'retriable-status' but retriable_status lists no statuses");
  }
  if (const Entry* b = m.find("backoff")) {
    MapReader bm(diag_, b->value, "retry.backoff", {"base", "max", "jitter"});
    if (auto v = read_.duration(bm.find("base"), false)) r.backoff.base = *v;
    const Entry* max = bm.find("max");
    if (auto v = read_.duration(max, false)) r.backoff.max = *v;
    if (auto v = read_.oneOf<Jitter>(bm.find("jitter"), {{"full", Jitter::kFull},
                                                         {"equal", Jitter::kEqual},
                                                         {"decorrelated", Jitter::kDecorrelated},
                                                         {"none", Jitter::kNone}})) {
      r.backoff.jitter = *v;
    }
    if (r.backoff.base > r.backoff.max) {
      diag_.error(max ? max->mark() : bm.mark(),
                  strCat("retry.backoff.max (", durationText(r.backoff.max),
                         ") is below backoff.base (", durationText(r.backoff.base), ")"));
    }
  }
  if (auto v = read_.boolean(m.find("honor_retry_after"))) r.honor_retry_after = *v;
  if (const Entry* b = m.find("budget")) {
    MapReader bm(diag_, b->value, "retry.budget", {"ratio", "min_per_second"});
    if (auto v = read_.ratio(bm.find("ratio"))) r.budget.ratio = *v;
    const Entry* mps = bm.find("min_per_second");
    if (auto v = read_.number(mps)) {
      if (*v < 0) {
        diag_.error(mps->mark(), "'min_per_second' must not be negative");
      } else {
        r.budget.min_per_second = *v;
      }
    }
  }
}

void Loader::readBulkhead(const Entry& e, BulkheadConfig& b) {
  MapReader m(diag_, e.value, "bulkhead", {"max_in_flight", "max_queue", "queue_timeout"});
  if (auto v = read_.integer(m.find("max_in_flight"), 1, kMaxU32)) {
    b.max_in_flight = static_cast<uint32_t>(*v);
  }
  if (auto v = read_.integer(m.find("max_queue"), 0, kMaxU32))
    b.max_queue = static_cast<uint32_t>(*v);
  if (auto v = read_.duration(m.find("queue_timeout"), false)) b.queue_timeout = *v;
}

void Loader::readBreaker(const Entry& e, CircuitBreakerConfig& b) {
  MapReader m(diag_, e.value, "circuit_breaker",
              {"window", "minimum_calls", "failure_rate", "slow_call_duration", "slow_call_rate",
               "consecutive_failures", "open_for", "max_open_for", "half_open_calls"});
  if (auto v = read_.duration(m.find("window"), false)) b.window = *v;
  if (auto v = read_.integer(m.find("minimum_calls"), 1, kMaxU32)) {
    b.minimum_calls = static_cast<uint32_t>(*v);
  }
  if (auto v = read_.ratio(m.find("failure_rate"))) b.failure_rate = *v;
  if (auto v = read_.duration(m.find("slow_call_duration"), false)) b.slow_call_duration = *v;
  if (auto v = read_.ratio(m.find("slow_call_rate"))) b.slow_call_rate = *v;
  if (auto v = read_.integer(m.find("consecutive_failures"), 0, kMaxU32)) {
    b.consecutive_failures = static_cast<uint32_t>(*v);
  }
  if (auto v = read_.duration(m.find("open_for"), false)) b.open_for = *v;
  const Entry* max_open = m.find("max_open_for");
  if (auto v = read_.duration(max_open, false)) b.max_open_for = *v;
  if (auto v = read_.integer(m.find("half_open_calls"), 1, kMaxU32)) {
    b.half_open_calls = static_cast<uint32_t>(*v);
  }
  if (b.max_open_for < b.open_for) {
    diag_.error(max_open ? max_open->mark() : m.mark(),
                strCat("circuit_breaker.max_open_for (", durationText(b.max_open_for),
                       ") is below open_for (", durationText(b.open_for), ")"));
  }
}

void Loader::readRouteCache(const Entry& e, RouteCacheConfig& c) {
  MapReader m(diag_, e.value, "cache",
              {"ttl", "stale_while_revalidate", "stale_if_error", "statuses",
               "respect_cache_control", "key", "max_entry_bytes", "streams", "shared"});
  if (auto v = read_.duration(m.find("ttl"), false)) c.ttl = *v;
  if (auto v = read_.duration(m.find("stale_while_revalidate"))) c.stale_while_revalidate = *v;
  if (auto v = read_.duration(m.find("stale_if_error"))) c.stale_if_error = *v;
  if (const Entry* s = m.find("statuses")) {
    if (auto v = read_.statusList(s)) {
      if (v->empty()) {
        diag_.error(s->mark(), "'statuses' must list at least one status");
      } else {
        c.statuses = *v;
      }
    }
  }
  if (auto v = read_.boolean(m.find("respect_cache_control"))) c.respect_cache_control = *v;
  if (const Entry* k = m.find("key")) {
    MapReader km(diag_, k->value, "cache.key", {"body", "ignore", "headers", "query"});
    if (auto v = read_.oneOf<CacheKeyBody>(km.find("body"),
                                           {{"raw", CacheKeyBody::kRaw},
                                            {"json-canonical", CacheKeyBody::kJsonCanonical},
                                            {"none", CacheKeyBody::kNone}})) {
      c.key.body = *v;
    }
    if (const Entry* ig = km.find("ignore")) {
      read_.list(ig, [&](const YAML::Node& n) {
        std::optional<std::string> s = read_.scalarNode(n, "a JSON pointer");
        if (!s) return;
        if (!isJsonPointer(*s) || s->empty()) {
          diag_.error(n.Mark(), strCat("'", *s, "' is not a JSON pointer such as /id"));
          return;
        }
        c.key.ignore.push_back(*s);
      });
      if (!c.key.ignore.empty() && c.key.body != CacheKeyBody::kJsonCanonical) {
        diag_.error(ig->mark(), "cache.key.ignore needs body: json-canonical");
      }
    }
    const Entry* hs = km.find("headers");
    if (auto v = read_.stringList(hs)) {
      for (std::string& h : *v) {
        if (!isToken(h)) {
          diag_.error(hs->mark(), strCat("invalid header name '", h, "'"));
          continue;
        }
        c.key.headers.push_back(absl::AsciiStrToLower(h));
      }
    }
    if (auto v = read_.boolean(km.find("query"))) c.key.query = *v;
  }
  if (auto v = read_.size(m.find("max_entry_bytes"), 1)) c.max_entry_bytes = *v;
  if (auto v = read_.boolean(m.find("streams"))) c.streams = *v;
  if (const Entry* sh = m.find("shared")) {
    if (auto v = read_.boolean(sh)) c.shared = *v;
    if (c.shared) shared_routes_.push_back(sh->mark());
  }
}

void Loader::readValidate(const Entry& e, ValidateConfig& v) {
  MapReader m(diag_, e.value, "validate", {"status", "json"});
  if (auto s = read_.statusList(m.find("status"))) v.status = *s;
  read_.list(m.find("json"), [&](const YAML::Node& n) {
    MapReader cm(diag_, n, "a json check",
                 {"pointer", "type", "exists", "finite", "min", "max", "min_items"});
    if (!cm.valid()) return;
    JsonCheck check;
    check.loc = locOf(n.Mark());
    if (const Entry* p = cm.require("pointer")) {
      if (auto s = read_.string(p, true)) {
        checkPointer(*p, *s);
        check.pointer = *s;
      }
    }
    check.type = read_.oneOf<JsonType>(cm.find("type"), {{"object", JsonType::kObject},
                                                         {"array", JsonType::kArray},
                                                         {"string", JsonType::kString},
                                                         {"number", JsonType::kNumber},
                                                         {"boolean", JsonType::kBoolean},
                                                         {"null", JsonType::kNull}});
    check.exists = read_.boolean(cm.find("exists"));
    if (auto f = read_.boolean(cm.find("finite"))) check.finite = *f;
    check.min = read_.number(cm.find("min"));
    const Entry* max = cm.find("max");
    check.max = read_.number(max);
    if (auto mi = read_.integer(cm.find("min_items"), 0, INT64_MAX)) {
      check.min_items = static_cast<uint64_t>(*mi);
    }
    if (check.min && check.max && *check.min > *check.max) {
      diag_.error(max->mark(), "'max' is below 'min'");
    }
    v.json.push_back(std::move(check));
  });
}

void Loader::readFallback(const Entry& e, RouteConfig& r) {
  bool terminal_seen = false;
  std::vector<std::string> rule_names;
  read_.list(&e, [&](const YAML::Node& n) {
    if (!n.IsMap()) {
      diag_.error(n.Mark(), strCat("a fallback step must be a map with one of upstream, "
                                   "rules or respond, got ",
                                   kindName(n)));
      return;
    }
    // The kind decides which keys belong, so look before reading strictly.
    std::vector<std::string> kinds;
    for (const auto& kv : n) {
      if (!kv.first.IsScalar()) continue;
      const std::string k = kv.first.Scalar();
      if (k == "upstream" || k == "rules" || k == "respond") kinds.push_back(k);
    }
    if (kinds.size() != 1) {
      MapReader any(diag_, n, "fallback step", {"upstream", "timeout", "rules", "respond"});
      diag_.error(n.Mark(), kinds.empty()
                                ? "a fallback step needs one of upstream, rules or respond"
                                : "a fallback step takes only one of upstream, rules "
                                  "and respond; write them as separate steps");
      return;
    }
    FallbackStep step;
    step.loc = locOf(n.Mark());
    if (terminal_seen) {
      diag_.error(n.Mark(),
                  "this fallback step is never reached: a respond step before it always "
                  "answers");
    }
    if (kinds[0] == "upstream") {
      step.kind = FallbackStep::Kind::kUpstream;
      MapReader m(diag_, n, "fallback step", {"upstream", "timeout"});
      const Entry* u = m.find("upstream");
      if (auto v = read_.string(u)) {
        step.upstream = *v;
        checkUpstreamRef(*u, step.upstream);
      }
      if (auto v = read_.duration(m.find("timeout"), false)) step.timeout = *v;
    } else if (kinds[0] == "rules") {
      step.kind = FallbackStep::Kind::kRules;
      MapReader m(diag_, n, "fallback step", {"rules"});
      const Entry* rules = m.find("rules");
      readRules(*rules, step.rules);
      if (rules->value.IsSequence() && rules->value.size() == 0) {
        diag_.error(rules->mark(), "'rules' must list at least one rule");
      }
      for (const Rule& rule : step.rules) {
        if (std::find(rule_names.begin(), rule_names.end(), rule.name) != rule_names.end()) {
          diag_.error(rules->mark(), strCat("duplicate rule name '", rule.name, "' in route"));
        }
        rule_names.push_back(rule.name);
      }
    } else {
      step.kind = FallbackStep::Kind::kRespond;
      MapReader m(diag_, n, "fallback step", {"respond"});
      readRespond(*m.find("respond"), step.respond);
      terminal_seen = true;
    }
    r.fallback.push_back(std::move(step));
  });
}

void Loader::readRules(const Entry& e, std::vector<Rule>& rules) {
  read_.list(&e, [&](const YAML::Node& n) {
    MapReader m(diag_, n, "rule", {"name", "when", "respond"});
    if (!m.valid()) return;
    Rule rule;
    if (auto v = read_.string(m.require("name"))) rule.name = *v;
    // No `when` (or an empty list) is a rule that always answers.
    read_.list(m.find("when"), [&](const YAML::Node& p) {
      Predicate pred;
      readPredicate(p, pred);
      rule.when.push_back(std::move(pred));
    });
    if (const Entry* r = m.require("respond")) readRespond(*r, rule.respond);
    rules.push_back(std::move(rule));
  });
}

void Loader::readPredicate(const YAML::Node& node, Predicate& p) {
  static const std::vector<std::pair<std::string_view, PredicateOp>> kOps = {
      {"eq", PredicateOp::kEq},          {"ne", PredicateOp::kNe},
      {"gt", PredicateOp::kGt},          {"ge", PredicateOp::kGe},
      {"lt", PredicateOp::kLt},          {"le", PredicateOp::kLe},
      {"in", PredicateOp::kIn},          {"exists", PredicateOp::kExists},
      {"matches", PredicateOp::kMatches}};
  std::vector<std::string_view> known = {"pointer"};
  for (const auto& [name, op] : kOps) known.push_back(name);
  MapReader m(diag_, node, "predicate", known);
  if (!m.valid()) return;
  p.loc = locOf(node.Mark());
  if (const Entry* ptr = m.require("pointer")) {
    if (auto v = read_.string(ptr, true)) {
      checkPointer(*ptr, *v);
      p.pointer = *v;
    }
  }
  const Entry* operand = nullptr;
  for (const auto& [name, op] : kOps) {
    const Entry* e = m.find(name);
    if (e == nullptr) continue;
    if (operand != nullptr) {
      diag_.error(e->key_mark, strCat("a predicate takes exactly one operator; '", operand->key,
                                      "' is already given"));
      continue;
    }
    operand = e;
    p.op = op;
  }
  if (operand == nullptr) {
    diag_.error(m.mark(),
                "a predicate needs one operator: eq, ne, gt, ge, lt, le, in, exists or matches");
    return;
  }
  const YAML::Node& v = operand->value;
  switch (p.op) {
    case PredicateOp::kGt:
    case PredicateOp::kGe:
    case PredicateOp::kLt:
    case PredicateOp::kLe: {
      if (auto n = read_.number(operand)) {
        // Integers keep their written form ("5000", not "5000.0").
        int64_t i = 0;
        p.value_json =
            absl::SimpleAtoi(v.Scalar(), &i) ? std::to_string(i) : compactJson(nlohmann::json(*n));
      }
      return;
    }
    case PredicateOp::kIn: {
      if (!v.IsSequence()) {
        diag_.error(operand->mark(), strCat("'in' needs a list of values, got ", kindName(v)));
        return;
      }
      break;
    }
    case PredicateOp::kExists: {
      if (auto b = read_.boolean(operand)) p.value_json = *b ? "true" : "false";
      return;
    }
    case PredicateOp::kMatches: {
      if (auto s = read_.string(operand)) {
        checkRegex(operand->mark(), "matches", *s);
        p.value_json = compactJson(nlohmann::json(*s));
      }
      return;
    }
    default:
      break;
  }
  if (auto j = read_.json(v)) p.value_json = compactJson(*j);
}

void Loader::readRespond(const Entry& e, RespondConfig& out) {
  MapReader m(diag_, e.value, "respond", {"status", "headers", "json", "body"});
  if (!m.valid()) return;
  if (auto v = read_.integer(m.find("status"), 100, 599)) out.status = static_cast<int>(*v);
  std::string content_type;
  if (const Entry* h = m.find("headers")) {
    MapReader hm(diag_, h->value, "respond.headers", {});
    for (const Entry& he : hm.entries()) {
      if (!isToken(he.key)) {
        diag_.error(he.key_mark, strCat("invalid header name '", he.key, "'"));
        continue;
      }
      std::optional<std::string> v = read_.string(&he, true);
      if (!v) continue;
      const std::string name = absl::AsciiStrToLower(he.key);
      // The content type travels in its own field so it is written once.
      if (name == "content-type") {
        content_type = *v;
      } else {
        out.headers.emplace_back(name, *v);
      }
    }
  }
  const Entry* json = m.find("json");
  const Entry* body = m.find("body");
  // Both are still read, so their own errors are reported with the conflict.
  if (json && body) diag_.error(body->key_mark, "respond takes either 'json' or 'body', not both");
  if (auto v = read_.string(body, true)) out.body = *v;
  if (json) {
    if (auto j = read_.json(json->value)) out.body = compactJson(*j);
  }
  if (!content_type.empty()) {
    out.content_type = content_type;
  } else {
    out.content_type = json ? "application/json" : "text/plain";
  }
}

void Loader::readFault(const Entry& e, FaultConfig& f) {
  MapReader m(diag_, e.value, "fault", {"delay", "abort"});
  auto percent = [&](const Entry* p, double* out) {
    if (auto v = read_.number(p)) {
      if (*v < 0 || *v > 100) {
        diag_.error(p->mark(), strCat("'percent' must be within 0..100, got ", *v));
      } else {
        *out = *v;
      }
    }
  };
  if (const Entry* d = m.find("delay")) {
    MapReader dm(diag_, d->value, "fault.delay", {"percent", "duration"});
    percent(dm.find("percent"), &f.delay_percent);
    if (auto v = read_.duration(dm.find("duration"))) f.delay = *v;
  }
  if (const Entry* a = m.find("abort")) {
    MapReader am(diag_, a->value, "fault.abort", {"percent", "status"});
    percent(am.find("percent"), &f.abort_percent);
    if (auto v = read_.integer(am.find("status"), 100, 599)) f.abort_status = static_cast<int>(*v);
  }
}

}  // namespace airbag::config::internal
