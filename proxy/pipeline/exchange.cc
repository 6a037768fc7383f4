// The request pipeline's sequencer; see exchange.h. The cache stage is in
// exchange_cache.cc, the fallback ladder in exchange_fallback.cc.
#include "proxy/pipeline/exchange.h"

#include <algorithm>
#include <array>
#include <cassert>
#include <cstring>

#include "policy/deadline.h"
#include "policy/retry.h"
#include "proxy/http/text.h"
#include "proxy/log/access_log.h"
#include "proxy/metrics/metrics.h"
#include "proxy/pipeline/local_reply.h"

namespace airbag::pipeline {
namespace {

// A generated request id: two random 64-bit numbers as 32 lower-case hex
// digits, a byte (two digits) per table lookup.
void appendRequestId(std::string& out, uint64_t a, uint64_t b) {
  static constexpr auto kPairs = [] {
    constexpr char kHex[] = "0123456789abcdef";
    std::array<char, 512> t{};
    for (int i = 0; i < 256; ++i) {
      t[2 * i] = kHex[i >> 4];
      t[2 * i + 1] = kHex[i & 0xf];
    }
    return t;
  }();
  char buf[32];
  for (int i = 7; i >= 0; --i, a >>= 8, b >>= 8) {
    std::memcpy(buf + 2 * i, &kPairs[2 * (a & 0xff)], 2);
    std::memcpy(buf + 16 + 2 * i, &kPairs[2 * (b & 0xff)], 2);
  }
  out.append(buf, sizeof(buf));
}

// A request moves forward through the stages; the only ways back are from a
// backoff to the next try and from one fallback upstream to the next.
[[maybe_unused]] bool legalMove(Exchange::Stage from, Exchange::Stage to) {
  using S = Exchange::Stage;
  if (to == S::kDone) return from != S::kIdle;
  if (from == S::kBackoff && to == S::kAttempt) return true;
  if (from == S::kFallback && to == S::kFallback) return true;
  if (from == S::kDone || from == S::kIdle) return to == S::kRouting;
  return to > from;
}

}  // namespace

void WorkerContext::deliverWake(const InboxMessage& m) {
  if (m.slot >= exchanges.size()) return;
  Exchange* e = exchanges[m.slot];
  if (e && e->generation() == m.generation) e->onWake();
}

Exchange::Exchange(WorkerContext& ctx, Downstream& down)
    : ctx_(ctx),
      down_(down),
      slot_(ctx.addExchange(this)),
      timer_(ctx.dispatcher->createTimer(this)),
      hedge_(*ctx.dispatcher, *this),
      try_(*ctx.dispatcher, *this) {}

Exchange::~Exchange() {
  cancel();
  ctx_.removeExchange(slot_);
}

void Exchange::enter(Stage next) {
  assert(legalMove(stage_, next));
  stage_ = next;
}

void Exchange::armWait(absl::Time until) { timer_->armAt(until); }

void Exchange::start(const RequestView& request) {
  absl::Time now = ctx_.dispatcher->now();
  enter(Stage::kRouting);
  generation_ = ctx_.newGeneration();
  r_ = Request{};
  r_.view = request;
  r_.snapshot = ctx_.snapshot;
  r_.start = now;
  r_.close = !down_.keepAlive();
  setSource(AnswerSource::kUpstream);
  cache_key_.clear();
  if (ctx_.metrics) ctx_.metrics->addInFlight(1);

  // One pass over the request's headers picks out the few the pipeline reads.
  std::optional<std::string_view> id;
  int hosts = 0;
  bool host_ok = true;
  const http::HeaderList& in = *request.headers;
  request_kinds_.clear();
  for (size_t i = 0; i < in.size(); ++i) {
    http::HeaderKind kind = http::classifyHeader(in.name(i));
    request_kinds_.push_back(kind);
    switch (kind) {
      case http::HeaderKind::kRequestId:
        if (!id) id = in.value(i);
        break;
      case http::HeaderKind::kBudget:
        if (!r_.budget_header) r_.budget_header = in.value(i);
        break;
      case http::HeaderKind::kConnection:
        if (!r_.connection_header) r_.connection_header = in.value(i);
        break;
      case http::HeaderKind::kHost:
        ++hosts;
        host_ok = host_ok && http::isValidHost(in.value(i));
        break;
      default:
        break;
    }
  }
  request_id_.clear();
  if (id && !id->empty() && id->size() <= 200) {
    request_id_.assign(*id);
  } else {
    uint64_t hi = ctx_.rng();
    appendRequestId(request_id_, hi, ctx_.rng());
    r_.request_id_generated = true;
  }
  // RFC 9112 §3.2: exactly one valid Host on HTTP/1.1; at most one on 1.0.
  if (hosts > 1 || !host_ok || (hosts == 0 && request.version_minor >= 1)) {
    r_.close = true;
    replyLocal(400, "bad_request",
               hosts == 0  ? "an HTTP/1.1 request needs a Host header"
               : hosts > 1 ? "more than one Host header"
                           : "the Host header is not a valid host[:port]");
    return;
  }
  route(now);
}

void Exchange::route(absl::Time now) {
  const Snapshot& snap = *r_.snapshot;
  int idx = snap.routes.match(r_.view.method, r_.view.path, *r_.view.headers);
  if (idx < 0) {
    replyLocal(404, "no_route", "no route matches this request");
    return;
  }
  r_.route_index = static_cast<size_t>(idx);
  r_.route = &snap.config->routes[r_.route_index];
  r_.runtime = snap.runtimes[r_.route_index].get();
  if (ctx_.metrics) r_.metrics = &ctx_.routeMetrics(r_.runtime);
  std::optional<absl::Duration> budget;
  if (r_.budget_header) {
    budget = policy::parseClientBudgetMs(*r_.budget_header);
    r_.client_budget = budget.has_value();
  }
  r_.deadline = policy::requestDeadline(r_.start, r_.route->timeout, budget);
  // The key is known before any stage can fail, so even a shed request can
  // fall back to a stale answer.
  if (r_.route->cache) buildCacheKey();
  admitShed(now);
}

void Exchange::admitShed(absl::Time now) {
  enter(Stage::kShedding);
  if (policy::Shedder* shedder = r_.snapshot->shedder.get()) {
    if (!shedder->tryAdmit(r_.route->priority)) {
      if (ctx_.metrics) {
        static constexpr std::string_view kPriority[] = {"critical", "normal", "optional"};
        ctx_.metrics->incCounter(ctx_.metrics->families().shed_total,
                                 {kPriority[static_cast<int>(r_.route->priority)]});
      }
      runFallback(Failure::kShed, now);
      return;
    }
    r_.holds.shed = makeShedSlot(shedder, r_.route->priority);
  }
  injectFault(now);
}

void Exchange::injectFault(absl::Time now) {
  enter(Stage::kFault);
  std::optional<FaultConfig> over = r_.runtime->faultOverride();
  const FaultConfig& f = over ? *over : r_.route->fault;
  if (f.abort_percent > 0 && absl::Uniform(ctx_.rng, 0.0, 100.0) < f.abort_percent) {
    // An injected abort is an upstream failure: the ladder takes over.
    r_.fault_status = f.abort_status;
    runFallback(Failure::kFaultAbort, now);
    return;
  }
  if (f.delay_percent > 0 && f.delay > absl::ZeroDuration() &&
      absl::Uniform(ctx_.rng, 0.0, 100.0) < f.delay_percent) {
    armWait(now + f.delay);  // onTimer goes on with the cache
    return;
  }
  lookupCache(now);
}

void Exchange::checkBreaker(absl::Time now) {
  enter(Stage::kCircuitBreaker);
  if (acquirePermit(now)) admit(now);
}

bool Exchange::acquirePermit(absl::Time now) {
  policy::CircuitBreaker* breaker = r_.runtime->breaker();
  if (!breaker || r_.holds.permit.held()) return true;
  policy::CircuitBreaker::Permit p = breaker->tryAcquire(now);
  if (!p.allowed) {
    r_.circuit_retry_after_s = std::max<int>(
        1, static_cast<int>(absl::ToInt64Seconds(absl::Ceil(p.retry_after, absl::Seconds(1)))));
    runFallback(Failure::kCircuitOpen, now);
    return false;
  }
  r_.holds.permit = BreakerPermit(breaker, p.probe);
  return true;
}

void Exchange::acquireBulkhead(absl::Time now) {
  enter(Stage::kBulkhead);
  policy::Bulkhead& bulkhead = r_.runtime->bulkhead();
  wait_generation_ = generation_;
  switch (bulkhead.tryAcquire(this)) {
    case policy::BulkheadAdmit::kAdmitted:
      r_.holds.bulkhead = BulkheadSlot(&bulkhead);
      beginAttempts(now);
      return;
    case policy::BulkheadAdmit::kQueued:
      r_.queued = true;
      armWait(now + bulkhead.queueTimeout());
      return;
    case policy::BulkheadAdmit::kRejected:
      if (ctx_.metrics)
        ctx_.metrics->incCounter(ctx_.metrics->families().bulkhead_rejected_total,
                                 {r_.route->name});
      runFallback(Failure::kBulkheadFull, now);
      return;
  }
}

// Runs on the thread that freed the slot, under the bulkhead's lock: only
// posts a wake-up to this exchange's worker.
void Exchange::onGranted() {
  ctx_.inbox->post({InboxMessage::Kind::kWake, slot_, wait_generation_});
}

// Runs on the leader's thread, under the cache shard's lock: likewise.
void Exchange::onFilled(std::shared_ptr<const policy::CacheEntry>) {
  ctx_.inbox->post({InboxMessage::Kind::kWake, slot_, wait_generation_});
}

void Exchange::onWake() {
  absl::Time now = ctx_.dispatcher->now();
  if (stage_ == Stage::kBulkhead && r_.queued) {
    r_.queued = false;
    timer_->disarm();
    r_.holds.bulkhead = BulkheadSlot(&r_.runtime->bulkhead());
    beginAttempts(now);
  } else if (stage_ == Stage::kAdmission) {
    onAdmissionWake(now);
  } else if (stage_ == Stage::kCoalesced && r_.following) {
    r_.following = false;
    timer_->disarm();
    onFillDone(now);
  }
}

void Exchange::leaveWaits() {
  if (r_.queued) {
    // Leave the queue, or give back a slot granted meanwhile; its wake-up,
    // still on its way, is then stale.
    r_.queued = false;
    policy::Bulkhead& bulkhead = r_.runtime->bulkhead();
    if (!bulkhead.cancel(this)) {
      bulkhead.release();
      generation_ = ctx_.newGeneration();
    }
  }
  if (r_.following) {
    r_.following = false;
    if (!r_.snapshot->cache->leaveFill(cache_key_, this)) generation_ = ctx_.newGeneration();
  }
  leaveAdmissionQueue();
}

void Exchange::onTimer() {
  absl::Time now = ctx_.dispatcher->now();
  switch (stage_) {
    case Stage::kFault:  // the injected delay is over
      lookupCache(now);
      return;
    case Stage::kBulkhead: {  // queue_timeout
      bool granted_meanwhile = r_.queued && !r_.runtime->bulkhead().cancel(this);
      r_.queued = false;
      if (granted_meanwhile) {
        // Granted at the last moment: the slot is ours, use it.
        generation_ = ctx_.newGeneration();
        r_.holds.bulkhead = BulkheadSlot(&r_.runtime->bulkhead());
        beginAttempts(now);
        return;
      }
      if (ctx_.metrics)
        ctx_.metrics->incCounter(ctx_.metrics->families().bulkhead_rejected_total,
                                 {r_.route->name});
      runFallback(Failure::kBulkheadFull, now);
      return;
    }
    case Stage::kCoalesced: {  // the leader's fetch outlived this request's deadline
      bool filled_meanwhile = r_.following && !r_.snapshot->cache->leaveFill(cache_key_, this);
      r_.following = false;
      if (filled_meanwhile) {
        generation_ = ctx_.newGeneration();
        onFillDone(now);
      } else {
        runFallback(Failure::kTimeout, now);
      }
      return;
    }
    case Stage::kAdmission:  // a recheck, or the queue timeout
      onAdmissionTimer(now);
      return;
    case Stage::kSharedLookup:  // waiting for another pod's answer (exchange_coalesce.cc)
      pollShared(now);
      return;
    case Stage::kBackoff:
      startAttempt(now);
      return;
    default:
      return;
  }
}

void Exchange::beginAttempts(absl::Time now) {
  r_.runtime->budget().recordRequest(now);
  if (r_.route->retry.attempts > 1) r_.backoff.emplace(r_.route->retry.backoff);
  startAttempt(now);
}

void Exchange::startAttempt(absl::Time now) {
  enter(Stage::kAttempt);
  if (now >= r_.deadline) {
    runFallback(Failure::kTimeout, now);
    return;
  }
  // A retry asks the breaker again: one that opened meanwhile stops it.
  if (!acquirePermit(now)) return;
  const Snapshot& snap = *r_.snapshot;
  int up = snap.route_upstream[r_.route_index];
  // An upstream the probes or its connect failures marked down is not tried
  // at all: like an open breaker, the ladder takes over without a connect.
  if (!snap.upstreams[static_cast<size_t>(up)].health->usable(now)) {
    runFallback(Failure::kUnavailable, now);
    return;
  }
  policy::TryDeadlines d = policy::tryDeadlines(now, r_.deadline, r_.route->timeout);
  launchTry(*snap.upstreams[static_cast<size_t>(up)].config,
            hedgeClient(ctx_.upstreams[static_cast<size_t>(up)], now), d.end, d.first_byte, now);
}

void Exchange::launchTry(const UpstreamConfig& upstream, UpstreamClient* client, absl::Time end,
                         absl::Time first_byte, absl::Time now) {
  ++r_.attempts;
  r_.try_upstream = &upstream;
  buildUpstreamHead(now, upstream);
  UpstreamTry::Plan plan;
  plan.client = client;
  plan.request.head = upstream_head_;
  plan.request.body = r_.view.body;
  plan.request.head_only_response = r_.view.method == "HEAD";
  plan.first_byte = first_byte;
  plan.end = end;
  plan.idle = r_.route->timeout.idle;
  plan.down = &down_;
  plan.client_version_minor = r_.view.version_minor;
  plan.retry = &r_.route->retry;
  // Only the route's own answers are stored.
  if (!r_.fallback_try && !cache_key_.empty()) plan.cache = &*r_.route->cache;
  try_.start(plan, now);
}

void Exchange::buildUpstreamHead(absl::Time now, const UpstreamConfig& upstream) {
  std::string& h = upstream_head_;
  h.clear();
  const http::HeaderList& in = *r_.view.headers;
  // The literals below come to under 100 bytes, plus two numbers.
  size_t bound = 100 + 2 * http::BoundedWriter::kMaxDecimal + r_.view.method.size() +
                 upstream.base_path.size() + r_.view.url.size() + upstream.host_header.size() +
                 request_id_.size();
  for (size_t i = 0; i < in.size(); ++i) bound += in.name(i).size() + in.value(i).size() + 4;
  http::BoundedWriter w(h, bound);
  w.add(r_.view.method, " ", upstream.base_path, r_.view.url, " HTTP/1.1\r\n");
  // Names listed in Connection are hop-by-hop too (RFC 9110 §7.6.1); the
  // usual "keep-alive"/"close" lists name nothing else worth a look.
  const auto& conn = r_.connection_header;
  bool connection_lists =
      conn && !http::iequals(*conn, "keep-alive") && !http::iequals(*conn, "close");
  for (size_t i = 0; i < in.size(); ++i) {
    std::string_view name = in.name(i);
    switch (request_kinds_[i]) {
      case http::HeaderKind::kOther:
      case http::HeaderKind::kContentType:
      case http::HeaderKind::kRequestId:
      case http::HeaderKind::kAirbag:
      case http::HeaderKind::kRetryAfter:
      case http::HeaderKind::kCacheControl:
      case http::HeaderKind::kPragma:
        if (connection_lists && http::headerHasToken(*conn, name)) continue;
        w.add(name, ": ", in.value(i), "\r\n");
        break;
      default:  // hop-by-hop, framing, Host, Expect and our budget header are ours to set
        break;
    }
  }
  // The upstream is addressed by its own name (as nginx's proxy_pass does):
  // a fallback on another host, or a hosted API, expects its own Host.
  w.add("host: ", upstream.host_header, "\r\n");
  if (r_.request_id_generated) w.add("x-request-id: ", request_id_, "\r\n");
  if (r_.client_budget) {
    int64_t left = std::max<int64_t>(0, absl::ToInt64Milliseconds(r_.deadline - now));
    w.add("x-airbag-timeout-ms: ", left, "\r\n");
  }
  std::string_view m = r_.view.method;
  if (!r_.view.body.empty() || m == "POST" || m == "PUT" || m == "PATCH")
    w.add("content-length: ", r_.view.body.size(), "\r\n");
  w.add("\r\n");
}

AnswerMeta Exchange::answerMeta() {
  if (!down_.keepAlive()) r_.close = true;  // e.g. draining began while this request ran
  AnswerMeta m;
  m.source = source_label_;
  m.attempts = r_.attempts;
  m.request_id = request_id_;
  m.cache = r_.cache_status;
  m.admission = r_.admission;
  m.close = r_.close;
  m.http10_keep_alive = r_.view.version_minor == 0;
  return m;
}

void Exchange::onTryCommitted() { enter(Stage::kStreaming); }

void Exchange::onTryDone(absl::Time now) {
  r_.upstream_time += now - try_.startedAt();
  r_.status = try_.status();
  if (try_.committed()) {
    endStream(now);
    return;
  }
  AttemptOutcome outcome = try_.outcome();
  if (outcome == AttemptOutcome::kOk && !try_.streaming() && !validateAnswer())
    outcome = AttemptOutcome::kInvalid;
  if (retryAfterTry(outcome, now)) return;  // retrying: this answer is dropped
  bool retriable_status = !r_.fallback_try && try_.complete() &&
                          r_.route->retry.attempts > 1 &&
                          policy::isRetriable(r_.route->retry, {outcome, try_.status(), {}});
  if (outcome != AttemptOutcome::kOk || retriable_status) {
    Failure f = outcome == AttemptOutcome::kInvalid   ? Failure::kInvalid
                : outcome == AttemptOutcome::kTimeout ? Failure::kTimeout
                : try_.failed()                       ? Failure::kUnavailable
                                                      : Failure::kAnswer;
    runFallback(f, now);
    return;
  }
  if (r_.fallback_try && ctx_.metrics)
    ctx_.metrics->incCounter(ctx_.metrics->families().fallbacks_total,
                             {r_.route->name, source_label_});
  maybeStore(now);
  if (!try_.streaming()) {
    r_.bytes_sent = static_cast<int64_t>(try_.body().size());
    finish(r_.status, /*aborted=*/false, try_.clientHead(), try_.body());
    return;
  }
  std::string_view tail = try_.streamTail();  // a stream that ended before any body byte
  finish(r_.status, /*aborted=*/false, tail);
}

void Exchange::endStream(absl::Time now) {
  AttemptOutcome outcome = try_.outcome();
  recordAttempt(outcome);
  bool ok = try_.complete();
  // The time to first byte: a long generation is not a slow call.
  r_.holds.permit.report(now, ok && outcome == AttemptOutcome::kOk, try_.latency(now));
  if (ok && outcome == AttemptOutcome::kOk) sampleLatency(now);
  r_.bytes_sent = try_.bytesRelayed();
  if (!ok) {
    // A failure mid-stream is made visible: an error event, then a cut.
    r_.close = true;
    finish(r_.status, /*aborted=*/true,
           try_.abortTail(outcome == AttemptOutcome::kTimeout ? "timeout" : "upstream_reset"));
    return;
  }
  if (r_.fallback_try && ctx_.metrics)
    ctx_.metrics->incCounter(ctx_.metrics->families().fallbacks_total,
                             {r_.route->name, source_label_});
  maybeStore(now);
  finish(r_.status, /*aborted=*/false, try_.streamTail());
}

bool Exchange::retryAfterTry(AttemptOutcome outcome, absl::Time now) {
  recordAttempt(outcome);
  r_.holds.permit.report(now, outcome == AttemptOutcome::kOk, try_.latency(now));
  if (outcome == AttemptOutcome::kOk) sampleLatency(now);
  if (outcome == AttemptOutcome::kInvalid && ctx_.metrics)
    ctx_.metrics->incCounter(ctx_.metrics->families().validation_failures_total,
                             {r_.route->name});
  if (r_.fallback_try || r_.route->retry.attempts <= 1) return false;
  policy::TryResult result;
  result.outcome = outcome;
  result.status = try_.failed() ? 0 : try_.status();
  result.retry_after = try_.retryAfter();
  policy::RetryDecision d = policy::decideRetry(r_.route->retry, result, r_.attempts, now,
                                                r_.deadline, /*body_replayable=*/true,
                                                *r_.backoff, r_.runtime->budget(), ctx_.rng);
  if (d.verdict == policy::RetryVerdict::kBudgetExhausted && ctx_.metrics)
    ctx_.metrics->incCounter(ctx_.metrics->families().retry_budget_exhausted_total,
                             {r_.route->name});
  if (d.verdict != policy::RetryVerdict::kRetry) return false;
  if (ctx_.metrics)
    ctx_.metrics->incCounter(ctx_.metrics->families().retries_total, {r_.route->name});
  enter(Stage::kBackoff);
  armWait(now + d.delay);  // onTimer starts the next try
  return true;
}

void Exchange::onDownstreamWritable() {
  if (stage_ == Stage::kStreaming) try_.onDownstreamWritable(ctx_.dispatcher->now());
}

void Exchange::replyLocal(int status, std::string_view code, std::string_view message,
                          std::optional<int> retry_after_seconds) {
  setSource(AnswerSource::kNone);
  LocalReply reply;
  reply.status = status;
  reply.code = code;
  reply.message = message;
  reply.route = r_.route ? std::string_view(r_.route->name) : std::string_view();
  reply.meta = answerMeta();
  reply.meta.retry_after_seconds = retry_after_seconds;
  reply.head_only = r_.view.method == "HEAD";
  scratch_.clear();
  appendLocalReply(scratch_, reply);
  r_.bytes_sent = static_cast<int64_t>(scratch_.size());
  finish(status, /*aborted=*/false, scratch_);
}

void Exchange::recordAttempt(AttemptOutcome outcome) {
  if (ctx_.metrics)
    r_.metrics->attempt(*ctx_.metrics, r_.route->name, r_.try_upstream->name, outcome);
}

void Exchange::setSource(AnswerSource source, std::string_view detail) {
  r_.source = source;
  source_label_.assign(answerSourceLabel(source));
  if (!detail.empty()) {
    source_label_ += ':';
    source_label_.append(detail);
  }
}

void Exchange::record(int status, absl::Time now) {
  std::string_view route_name = r_.route ? std::string_view(r_.route->name) : std::string_view();
  if (ctx_.metrics) {
    if (r_.metrics)
      r_.metrics->request(*ctx_.metrics, route_name, source_label_, status, now - r_.start);
    else
      ctx_.metrics->recordRequest(route_name, source_label_, status, now - r_.start);
    ctx_.metrics->addInFlight(-1);
  }
  if (ctx_.access_log) {
    log::AccessLogEntry e;
    e.time = r_.start;
    e.request_id = request_id_;
    e.route = route_name;
    e.method = r_.view.method;
    e.path = r_.view.url;  // the whole target, query included, as nginx logs $request_uri
    e.status = status;
    e.source = source_label_;
    e.attempts = r_.attempts;
    e.upstream_time = r_.upstream_time;
    e.total_time = now - r_.start;
    e.bytes_sent = r_.bytes_sent;
    e.cache = r_.cache_status;
    if (policy::CircuitBreaker* b = r_.runtime ? r_.runtime->breaker() : nullptr)
      e.breaker = policy::circuitStateLabel(b->state(now));
    ctx_.access_log->append(e);
  }
}

void Exchange::finish(int status, bool aborted, std::string_view last, std::string_view last2) {
  absl::Time now = ctx_.dispatcher->now();
  timer_->disarm();
  leaveWaits();
  r_.holds = Holds{};
  enter(Stage::kDone);
  // Counted before the last bytes go out, so a client that has its answer
  // also finds it in the metrics and the access log.
  record(status, now);
  if (!last.empty() || !last2.empty()) down_.write(last, last2);
  if (aborted)
    down_.responseAborted();
  else
    down_.responseDone(r_.close);
}

void Exchange::cancel() {
  if (!busy()) return;
  timer_->disarm();
  try_.cancel();
  leaveWaits();
  r_.holds = Holds{};
  enter(Stage::kDone);
  // 499: the client closed the connection before the answer was complete.
  setSource(AnswerSource::kNone);
  record(499, ctx_.dispatcher->now());
}

}  // namespace airbag::pipeline
