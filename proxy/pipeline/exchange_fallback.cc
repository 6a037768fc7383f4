// The fallback ladder of DESIGN.md §1: when the route's upstream cannot
// answer, a stale entry within stale_if_error, then the route's fallback
// steps in order (fallback upstreams, rules, the safe default), and only
// then a local error reply. Also the validation of model answers. Part of
// Exchange.
#include <algorithm>

#include "proxy/http/status.h"
#include "proxy/http/text.h"
#include "proxy/json/rules.h"
#include "proxy/json/validate.h"
#include "proxy/metrics/metrics.h"
#include "proxy/pipeline/exchange.h"
#include "spdlog/spdlog.h"

namespace airbag::pipeline {

const json::Document& Exchange::requestJson() {
  if (!request_json_parsed_) {
    request_json_ = json::Document::parse(req_.body);  // once per request
    request_json_parsed_ = true;
  }
  return request_json_;
}

bool Exchange::answerIsValid(const RouteConfig& route, int status, std::string_view body,
                             std::string* reason) {
  if (!route.validate) return true;
  if (status < 200 || status > 299) return true;  // only 2xx answers are checked
  const ValidateConfig& v = *route.validate;
  if (!v.status.empty() && std::find(v.status.begin(), v.status.end(), status) == v.status.end()) {
    *reason = "status not in validate.status";
    return false;
  }
  if (v.json.empty()) return true;
  json::ValidationResult r = json::validate(json::Document::parse(body), v.json);
  if (!r.ok) *reason = std::move(r.reason);
  return r.ok;
}

bool Exchange::validateAnswer() {
  std::string reason;
  if (answerIsValid(*route_, status_, body_, &reason)) return true;
  if (ctx_.logger) ctx_.logger->debug("route {}: invalid answer: {}", route_->name, reason);
  return false;
}

policy::CircuitBreaker* Exchange::currentBreaker() {
  if (fallback_step_ < 0) return runtime_->breaker();
  return runtime_->fallbackBreaker(static_cast<size_t>(fallback_step_));
}

void Exchange::runFallback(Failure failure) {
  // The leader of a coalesced miss has nothing to share; waiting followers
  // go their own way (each may find its own fallback).
  if (fill_leader_) leaveFill(nullptr);
  if (route_->cache && !stale_tried_ && !cache_key_.empty() && cache_status_ != "bypass") {
    stale_tried_ = true;
    policy::CacheStore::LookupResult r = snapshot_->cache->lookup(cache_key_, ctx_.now());
    if (r.kind != policy::CacheStore::Lookup::kMiss) {
      if (ctx_.metrics)
        ctx_.metrics->incCounter(ctx_.metrics->families().fallbacks_total, {route_->name, "stale"});
      serveEntry(*r.entry, AnswerSource::kStale, "stale");
      return;
    }
  }
  const Snapshot::Fallbacks& fb = snapshot_->fallbacks[static_cast<size_t>(
      std::distance(snapshot_->config->routes.data(), route_))];
  while (fallback_next_ < route_->fallback.size()) {
    size_t i = fallback_next_++;
    const FallbackStep& step = route_->fallback[i];
    switch (step.kind) {
      case FallbackStep::Kind::kUpstream:
        if (startFallbackAttempt(i)) return;
        break;  // its breaker is open: next step
      case FallbackStep::Kind::kRules:
        if (const Rule* rule = fb.rules[i]->match(requestJson())) {
          serveRespond(rule->respond, AnswerSource::kRule, rule->name);
          return;
        }
        break;
      case FallbackStep::Kind::kRespond:
        serveRespond(step.respond, AnswerSource::kDefault, {});
        return;
    }
  }
  finalFailure(failure);
}

bool Exchange::startFallbackAttempt(size_t step) {
  const Snapshot::Fallbacks& fb = snapshot_->fallbacks[static_cast<size_t>(
      std::distance(snapshot_->config->routes.data(), route_))];
  if (permit_held_) {
    // Held from admission, but the call was never made (the bulkhead was
    // full): no verdict for the route's breaker.
    permit_held_ = false;
    if (policy::CircuitBreaker* b = currentBreaker()) b->onAbandoned(permit_probe_);
  }
  fallback_step_ = static_cast<int>(step);
  absl::Time now = WorkerContext::preciseNow();
  if (policy::CircuitBreaker* breaker = runtime_->fallbackBreaker(step)) {
    policy::CircuitBreaker::Permit p = breaker->tryAcquire(now);
    if (!p.allowed) return false;
    permit_held_ = true;
    permit_probe_ = p.probe;
  }
  int up = fb.upstream[step];
  upstream_config_ = snapshot_->upstreams[static_cast<size_t>(up)].config;
  upstream_ = ctx_.upstreams[static_cast<size_t>(up)];
  setSource(AnswerSource::kFallback, upstream_config_->name);
  // A fallback has its own timeout, counted from now: the route's deadline
  // may already be spent by the failure that brought us here.
  absl::Time end = now + route_->fallback[step].timeout;
  launchTry(now, end, end);
  return true;
}

void Exchange::serveRespond(const RespondConfig& r, AnswerSource source, std::string_view label) {
  setSource(source, label);
  if (ctx_.metrics)
    ctx_.metrics->incCounter(ctx_.metrics->families().fallbacks_total,
                             {route_->name, source_label_});
  if (!down_.keepAlive()) close_ = true;
  status_ = r.status;
  std::string& h = client_head_;
  h.clear();
  http::append(h, "HTTP/1.1 ", r.status, " ", http::reasonPhrase(r.status), "\r\n");
  if (!r.content_type.empty()) http::append(h, "content-type: ", r.content_type, "\r\n");
  for (const auto& [name, value] : r.headers) http::append(h, name, ": ", value, "\r\n");
  http::append(h, "x-airbag-source: ", source_label_, "\r\nx-airbag-attempts: ", attempts_,
               "\r\nx-request-id: ", request_id_, "\r\n");
  if (!cache_status_.empty()) http::append(h, "x-airbag-cache: ", cache_status_, "\r\n");
  http::append(h, "content-length: ", r.body.size(), "\r\n");
  if (close_)
    h += "connection: close\r\n";
  else if (req_.version_minor == 0)
    h += "connection: keep-alive\r\n";
  h += "\r\n";
  // A HEAD learns the length of the answer, never its bytes.
  std::string_view body = req_.method == "HEAD" ? std::string_view() : std::string_view(r.body);
  bytes_sent_ = static_cast<int64_t>(body.size());
  finish(r.status, /*aborted=*/false, h, body);
}

void Exchange::finalFailure(Failure failure) {
  switch (failure) {
    case Failure::kShed:
      replyLocal(429, "shed", "airbag is at its in-flight limit; lower-priority work is shed", 1);
      return;
    case Failure::kBulkheadFull:
      replyLocal(429, "bulkhead_full", "too many requests in flight for this route", 1);
      return;
    case Failure::kCircuitOpen:
      replyLocal(503, "circuit_open", "the circuit breaker of this route is open",
                 circuit_retry_after_s_);
      return;
    case Failure::kFaultAbort:
      replyLocal(fault_status_, "fault_abort", "aborted by fault injection");
      return;
    case Failure::kTimeout:
      replyLocal(504, "timeout", "the upstream did not answer in time");
      return;
    case Failure::kUnavailable:
      replyLocal(503, "upstream_unavailable", "the upstream could not be reached or closed the connection");
      return;
    case Failure::kInvalid:
      replyLocal(503, "upstream_unavailable", "the upstream's answer failed validation");
      return;
    case Failure::kAnswer:
      // The upstream's own error answer, held back whole, goes out as it was.
      bytes_sent_ = static_cast<int64_t>(body_.size());
      finish(status_, /*aborted=*/false, client_head_, body_);
      return;
  }
}

}  // namespace airbag::pipeline
