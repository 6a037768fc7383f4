// The fallback ladder of DESIGN.md §1: when the route's upstream cannot
// answer, a stale entry within stale_if_error, then the route's fallback
// steps in order (fallback upstreams, rules, the safe default), and only
// then a local error reply. Also the validation of model answers. Part of
// Exchange.
#include "proxy/json/rules.h"
#include "proxy/metrics/metrics.h"
#include "proxy/pipeline/answer_rules.h"
#include "proxy/pipeline/exchange.h"
#include "spdlog/spdlog.h"

namespace airbag::pipeline {

const json::Document& Exchange::requestJson() {
  if (!r_.request_json_parsed) {
    request_json_ = json::Document::parse(r_.view.body);  // once per request
    r_.request_json_parsed = true;
  }
  return request_json_;
}

bool Exchange::validateAnswer() {
  std::string reason;
  if (answerIsValid(*r_.route, try_.status(), try_.body(), &reason)) return true;
  if (ctx_.logger) ctx_.logger->debug("route {}: invalid answer: {}", r_.route->name, reason);
  return false;
}

void Exchange::runFallback(Failure failure, absl::Time now) {
  // The leader of a coalesced miss has nothing to share; waiting followers
  // go their own way (each may find its own fallback).
  r_.holds.fill.reset();
  // A permit taken for a call never made (the bulkhead was full) gives no verdict.
  r_.holds.permit.reset();
  // The admission slot is for calls to the route's own upstream.
  r_.holds.admission.reset();
  const RouteConfig& route = *r_.route;
  if (route.cache && !r_.stale_tried && !cache_key_.empty() && r_.cache_status != "bypass") {
    r_.stale_tried = true;
    policy::CacheStore::LookupResult found = r_.snapshot->cache->lookup(cache_key_, now);
    if (found.kind != policy::CacheStore::Lookup::kMiss) {
      if (ctx_.metrics)
        ctx_.metrics->incCounter(ctx_.metrics->families().fallbacks_total, {route.name, "stale"});
      serveEntry(*found.entry, AnswerSource::kStale, "stale");
      return;
    }
  }
  // No stale answer here: another pod's may be in the shared tier.
  if (route.cache && !cache_key_.empty() && r_.cache_status != "bypass" &&
      staleFromShared(failure, now))
    return;
  const Snapshot::Fallbacks& fb = r_.snapshot->fallbacks[r_.route_index];
  while (r_.fallback_next < route.fallback.size()) {
    size_t i = r_.fallback_next++;
    const FallbackStep& step = route.fallback[i];
    switch (step.kind) {
      case FallbackStep::Kind::kUpstream:
        if (startFallbackTry(i, now)) return;
        break;  // down, or its breaker is open: next step
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

bool Exchange::startFallbackTry(size_t step, absl::Time now) {
  int up = r_.snapshot->fallbacks[r_.route_index].upstream[step];
  // A fallback upstream its probes or connect failures marked down is passed
  // over without a connect, as the route's own upstream is.
  if (!r_.snapshot->upstreams[static_cast<size_t>(up)].health->usable(now)) return false;
  if (policy::CircuitBreaker* breaker = r_.runtime->fallbackBreaker(step)) {
    policy::CircuitBreaker::Permit p = breaker->tryAcquire(now);
    if (!p.allowed) return false;
    r_.holds.permit = BreakerPermit(breaker, p.probe);
  }
  enter(Stage::kFallback);
  r_.fallback_try = step;
  const UpstreamConfig& upstream = *r_.snapshot->upstreams[static_cast<size_t>(up)].config;
  setSource(AnswerSource::kFallback, upstream.name);
  // A fallback has its own timeout, counted from now: the route's deadline
  // may already be spent by the failure that brought us here.
  absl::Time end = now + r_.route->fallback[step].timeout;
  launchTry(upstream, ctx_.upstreams[static_cast<size_t>(up)], end, end, now);
  return true;
}

void Exchange::serveRespond(const RespondConfig& respond, AnswerSource source,
                            std::string_view label) {
  setSource(source, label);
  if (ctx_.metrics)
    ctx_.metrics->incCounter(ctx_.metrics->families().fallbacks_total,
                             {r_.route->name, source_label_});
  r_.status = respond.status;
  HeaderPairs& headers = scratch_headers_;
  headers.clear();
  for (const auto& [name, value] : respond.headers) headers.emplace_back(name, value);
  scratch_.clear();
  appendAnswerHead(scratch_, respond.status, headers, respond.content_type, Framing::kLength,
                   respond.body.size(), answerMeta());
  // A HEAD learns the length of the answer, never its bytes.
  std::string_view body = r_.view.method == "HEAD" ? std::string_view() : respond.body;
  r_.bytes_sent = static_cast<int64_t>(body.size());
  finish(respond.status, /*aborted=*/false, scratch_, body);
}

void Exchange::finalFailure(Failure failure) {
  switch (failure) {
    case Failure::kShed:
      replyLocal(429, "shed", "airbag is at its in-flight limit; lower-priority work is shed", 1);
      return;
    case Failure::kBulkheadFull:
      replyLocal(429, "bulkhead_full", "too many requests in flight for this route", 1);
      return;
    case Failure::kAdmission:
      if (r_.admission_reason == policy::AdmissionReason::kSaturated)
        replyLocal(503, "saturated", "the model is saturated; the request was not admitted in time",
                   1);
      else
        replyLocal(429, "adaptive_limit", "this route is at its adaptive concurrency limit", 1);
      return;
    case Failure::kCircuitOpen:
      replyLocal(503, "circuit_open", "the circuit breaker of this route is open",
                 r_.circuit_retry_after_s);
      return;
    case Failure::kFaultAbort:
      replyLocal(r_.fault_status, "fault_abort", "aborted by fault injection");
      return;
    case Failure::kTimeout:
      replyLocal(504, "timeout", "the upstream did not answer in time");
      return;
    case Failure::kUnavailable:
      replyLocal(503, "upstream_unavailable",
                 "the upstream could not be reached or did not send a valid answer");
      return;
    case Failure::kInvalid:
      replyLocal(503, "upstream_unavailable", "the upstream's answer failed validation");
      return;
    case Failure::kAnswer:
      // The upstream's own error answer, held back whole, goes out as it was.
      r_.bytes_sent = static_cast<int64_t>(try_.body().size());
      finish(try_.status(), /*aborted=*/false, try_.clientHead(), try_.body());
      return;
  }
}

}  // namespace airbag::pipeline
