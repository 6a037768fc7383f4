// The request pipeline's state machine; see exchange.h.
#include "proxy/pipeline/exchange.h"

#include <event2/event.h>

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "proxy/http/text.h"
#include "absl/synchronization/mutex.h"
#include "policy/deadline.h"
#include "policy/retry.h"
#include "proxy/http/status.h"
#include "proxy/log/access_log.h"
#include "proxy/metrics/metrics.h"
#include "proxy/pipeline/exchange_ticket.h"
#include "proxy/pipeline/local_reply.h"

namespace airbag::pipeline {
namespace {

// Answers up to this size are buffered whole (so a failure before their end
// can still be retried or replaced); larger or open-ended ones are streamed.
constexpr uint64_t kMaxBufferedBody = 8 * 1024 * 1024;
// Above this much queued for a slow client, stop reading the upstream.
constexpr size_t kPauseUpstreamAt = 256 * 1024;
// Per-request buffers grown past this are freed before the next request.
constexpr size_t kMaxKeptBuffer = 256 * 1024;




void appendHex(std::string& out, uint64_t v) {
  static constexpr char kHex[] = "0123456789abcdef";
  char buf[16];
  for (int i = 15; i >= 0; --i) {
    buf[i] = kHex[v & 0xf];
    v >>= 4;
  }
  out.append(buf, 16);
}

}  // namespace

Exchange::Exchange(WorkerContext& ctx, Downstream& down) : ctx_(ctx), down_(down) {
  event_assign(&timer_, ctx_.base, -1, 0, &Exchange::timerCb, this);
  event_assign(&wake_, ctx_.base, -1, 0, &Exchange::wakeCb, this);
}

Exchange::~Exchange() {
  cancel();
  event_del(&timer_);
  event_del(&wake_);
}

void Exchange::start(const RequestView& request) {
  // Buffers keep their capacity from request to request, but not what one
  // large answer made them: that would stay pinned to an idle connection.
  for (std::string* b : {&body_, &stream_out_, &stream_copy_, &client_head_})
    if (b->capacity() > kMaxKeptBuffer) std::string().swap(*b);
  req_ = request;
  stage_ = Stage::kRouting;
  snapshot_ = ctx_.snapshot;
  route_ = nullptr;
  upstream_config_ = nullptr;
  upstream_ = nullptr;
  runtime_ = nullptr;
  call_ = nullptr;
  attempts_ = 0;
  shed_admitted_ = bulkhead_held_ = permit_held_ = permit_probe_ = queued_ = false;
  backoff_.reset();
  retry_after_.reset();
  circuit_retry_after_s_ = 1;
  setSource(AnswerSource::kUpstream);
  cache_status_ = {};
  cache_key_.clear();
  fill_leader_ = false;
  stored_.reset();
  store_stream_ = false;
  stale_tried_ = false;
  fallback_next_ = 0;
  fallback_step_ = -1;
  request_json_parsed_ = false;
  upstream_time_ = absl::ZeroDuration();
  status_ = 0;
  got_head_ = streaming_ = committed_ = paused_ = sse_ = false;
  bytes_sent_ = 0;
  start_ = WorkerContext::preciseNow();
  close_ = !down_.keepAlive();
  client_budget_ = false;
  if (ctx_.metrics) ctx_.metrics->addInFlight(1);

  // One pass over the request's headers picks out the few the pipeline reads.
  std::optional<std::string_view> id;
  budget_header_.reset();
  connection_header_.reset();
  int hosts = 0;
  bool host_ok = true;
  const http::HeaderList& in = *req_.headers;
  request_kinds_.clear();
  for (size_t i = 0; i < in.size(); ++i) {
    http::HeaderKind kind = http::classifyHeader(in.name(i));
    request_kinds_.push_back(kind);
    switch (kind) {
      case http::HeaderKind::kRequestId:
        if (!id) id = in.value(i);
        break;
      case http::HeaderKind::kBudget:
        if (!budget_header_) budget_header_ = in.value(i);
        break;
      case http::HeaderKind::kConnection:
        if (!connection_header_) connection_header_ = in.value(i);
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
  request_id_generated_ = false;
  if (id && !id->empty() && id->size() <= 200) {
    request_id_.assign(*id);
  } else {
    appendHex(request_id_, ctx_.rng());
    appendHex(request_id_, ctx_.rng());
    request_id_generated_ = true;
  }
  // RFC 9112 §3.2: exactly one valid Host on HTTP/1.1; at most one on 1.0.
  if (hosts > 1 || !host_ok || (hosts == 0 && req_.version_minor >= 1)) {
    close_ = true;
    replyLocal(400, "bad_request",
               hosts == 0  ? "an HTTP/1.1 request needs a Host header"
               : hosts > 1 ? "more than one Host header"
                           : "the Host header is not a valid host[:port]");
    return;
  }
  route();
}

void Exchange::route() {
  const Snapshot& snap = *snapshot_;
  int idx = snap.routes.match(req_.method, req_.path, *req_.headers);
  if (idx < 0) {
    replyLocal(404, "no_route", "no route matches this request");
    return;
  }
  route_ = &snap.config->routes[static_cast<size_t>(idx)];
  int up = snap.route_upstream[static_cast<size_t>(idx)];
  upstream_config_ = snap.upstreams[static_cast<size_t>(up)].config;
  upstream_ = ctx_.upstreams[static_cast<size_t>(up)];
  runtime_ = snap.runtimes[static_cast<size_t>(idx)].get();

  std::optional<absl::Duration> budget;
  if (budget_header_) {
    budget = policy::parseClientBudgetMs(*budget_header_);
    client_budget_ = budget.has_value();
  }
  deadline_ = policy::requestDeadline(start_, route_->timeout, budget);
  // The key is known before any stage can fail, so even a shed request can
  // fall back to a stale answer.
  if (route_->cache) buildCacheKey();

  admitShed();
}

// The stages of DESIGN.md §1, in order. Each either passes the request on to
// the next or answers it.

void Exchange::admitShed() {
  stage_ = Stage::kShedding;
  if (policy::Shedder* shedder = snapshot_->shedder.get()) {
    if (!shedder->tryAdmit(route_->priority)) {
      if (ctx_.metrics) {
        static constexpr std::string_view kPriority[] = {"critical", "normal", "optional"};
        ctx_.metrics->incCounter(ctx_.metrics->families().shed_total,
                                 {kPriority[static_cast<int>(route_->priority)]});
      }
      runFallback(Failure::kShed);
      return;
    }
    shed_admitted_ = true;
  }
  injectFault();
}

void Exchange::injectFault() {
  stage_ = Stage::kFault;
  std::optional<FaultConfig> over = runtime_->faultOverride();
  const FaultConfig& f = over ? *over : route_->fault;
  if (f.abort_percent > 0 && absl::Uniform(ctx_.rng, 0.0, 100.0) < f.abort_percent) {
    // An injected abort is an upstream failure: the ladder takes over.
    fault_status_ = f.abort_status;
    runFallback(Failure::kFaultAbort);
    return;
  }
  if (f.delay_percent > 0 && f.delay > absl::ZeroDuration() &&
      absl::Uniform(ctx_.rng, 0.0, 100.0) < f.delay_percent) {
    armTimer(WorkerContext::preciseNow() + f.delay);  // onTimer continues with lookupCache()
    return;
  }
  lookupCache();
}

void Exchange::checkBreaker() {
  stage_ = Stage::kCircuitBreaker;
  if (acquirePermit(ctx_.now())) acquireBulkhead();
}

bool Exchange::acquirePermit(absl::Time now) {
  policy::CircuitBreaker* breaker = runtime_->breaker();
  if (!breaker || permit_held_) return true;
  policy::CircuitBreaker::Permit p = breaker->tryAcquire(now);
  if (!p.allowed) {
    circuit_retry_after_s_ = std::max<int>(
        1, static_cast<int>(absl::ToInt64Seconds(absl::Ceil(p.retry_after, absl::Seconds(1)))));
    runFallback(Failure::kCircuitOpen);
    return false;
  }
  permit_held_ = true;
  permit_probe_ = p.probe;
  return true;
}

void Exchange::acquireBulkhead() {
  stage_ = Stage::kBulkhead;
  if (!ticket_) ticket_ = std::make_shared<Ticket>(&wake_);
  ticket_->arm(ticket_);
  switch (runtime_->bulkhead().tryAcquire(ticket_.get())) {
    case policy::BulkheadAdmit::kAdmitted:
      ticket_->disarm();
      ticket_->dropSelf();
      bulkhead_held_ = true;
      beginAttempts();
      return;
    case policy::BulkheadAdmit::kQueued:
      queued_ = true;
      armTimer(WorkerContext::preciseNow() + runtime_->bulkhead().queueTimeout());
      return;
    case policy::BulkheadAdmit::kRejected:
      ticket_->disarm();
      ticket_->dropSelf();
      if (ctx_.metrics)
        ctx_.metrics->incCounter(ctx_.metrics->families().bulkhead_rejected_total,
                                 {route_->name});
      runFallback(Failure::kBulkheadFull);
      return;
  }
}

void Exchange::wakeCb(int, short, void* arg) { static_cast<Exchange*>(arg)->onWake(); }

void Exchange::onWake() {
  if (queued_) {
    onBulkheadGranted();
  } else if (stage_ == Stage::kCoalesced && ticket_) {
    ticket_->disarm();
    event_del(&timer_);
    onFillDone(ticket_->takeFilled());
  }
}

void Exchange::onBulkheadGranted() {
  if (!queued_) return;
  queued_ = false;
  ticket_->disarm();
  event_del(&timer_);
  bulkhead_held_ = true;
  beginAttempts();
}

void Exchange::beginAttempts() {
  runtime_->budget().recordRequest(ctx_.now());
  if (route_->retry.attempts > 1) backoff_.emplace(route_->retry.backoff);
  startAttempt();
}

void Exchange::startAttempt() {
  stage_ = Stage::kAttempt;
  absl::Time now = WorkerContext::preciseNow();
  if (now >= deadline_) {
    runFallback(Failure::kTimeout);
    return;
  }
  // A retry asks the breaker again: one that opened meanwhile stops it.
  if (!acquirePermit(now)) return;
  policy::TryDeadlines d = policy::tryDeadlines(now, deadline_, route_->timeout);
  launchTry(now, d.end, d.first_byte);
}

void Exchange::launchTry(absl::Time now, absl::Time end, absl::Time first_byte) {
  stage_ = Stage::kAttempt;
  retry_after_.reset();
  try_start_ = now;
  try_end_ = end;
  first_byte_by_ = first_byte;
  got_head_ = streaming_ = committed_ = paused_ = sse_ = false;
  body_.clear();
  stream_out_.clear();
  ++attempts_;
  buildUpstreamHead(now);
  UpstreamRequest r;
  r.head = upstream_head_;
  r.body = req_.body;
  r.head_only_response = req_.method == "HEAD";
  armTimer(first_byte_by_);
  call_ = upstream_->start(r, this);
}

void Exchange::buildUpstreamHead(absl::Time now) {
  std::string& h = upstream_head_;
  h.clear();
  http::append(h, req_.method, " ", upstream_config_->base_path, req_.url, " HTTP/1.1\r\n");
  const http::HeaderList& in = *req_.headers;
  // Names listed in Connection are hop-by-hop too (RFC 9110 §7.6.1); the
  // usual "keep-alive"/"close" lists name nothing else worth a look.
  bool connection_lists =
      connection_header_ && !http::iequals(*connection_header_, "keep-alive") &&
      !http::iequals(*connection_header_, "close");
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
        if (connection_lists && http::headerHasToken(*connection_header_, name)) continue;
        http::append(h, name, ": ", in.value(i), "\r\n");
        break;
      default:  // hop-by-hop, framing, Host, Expect and our budget header are ours to set
        break;
    }
  }
  // The upstream is addressed by its own name (as nginx's proxy_pass does):
  // a fallback on another host, or a hosted API, expects its own Host.
  http::append(h, "host: ", upstream_config_->host_header, "\r\n");
  if (request_id_generated_) http::append(h, "x-request-id: ", request_id_, "\r\n");
  if (client_budget_) {
    int64_t left = std::max<int64_t>(0, absl::ToInt64Milliseconds(deadline_ - now));
    http::append(h, "x-airbag-timeout-ms: ", left, "\r\n");
  }
  if (!req_.body.empty() || req_.method == "POST" || req_.method == "PUT" ||
      req_.method == "PATCH")
    http::append(h, "content-length: ", req_.body.size(), "\r\n");
  h += "\r\n";
}

void Exchange::onUpstreamHeaders(const UpstreamResponseHead& head) {
  got_head_ = true;
  status_ = head.status;
  bool no_body = req_.method == "HEAD" || head.status == 204 || head.status == 304;
  std::string_view content_type;
  // Only the route's own answers are stored, and only storable statuses.
  bool keep = fallback_step_ < 0 && !cache_key_.empty() && route_->cache &&
              std::find(route_->cache->statuses.begin(), route_->cache->statuses.end(),
                        head.status) != route_->cache->statuses.end();
  answer_headers_.clear();
  answer_cache_control_.clear();
  answer_kinds_.clear();
  for (size_t i = 0; i < head.headerCount(); ++i) {
    std::string_view name = head.headerName(i);
    http::HeaderKind kind = http::classifyHeader(name);
    answer_kinds_.push_back(kind);
    if (kind == http::HeaderKind::kContentType)
      content_type = head.headerValue(i);
    else if (kind == http::HeaderKind::kRetryAfter)
      retry_after_ = policy::parseRetryAfter(head.headerValue(i), ctx_.now());
    else if (kind == http::HeaderKind::kCacheControl)
      answer_cache_control_.assign(head.headerValue(i));
    if (keep && http::isRelayedAnswerHeader(kind))
      answer_headers_.emplace_back(name, head.headerValue(i));
  }
  sse_ = http::startsWithIgnoreCase(content_type, "text/event-stream");
  streaming_ = !no_body && (http::isStreamingContentType(content_type) || !head.has_content_length ||
                            head.content_length > kMaxBufferedBody);
  // An answer that may be retried or replaced is held back whole (error
  // bodies are small) so that nothing of it reaches the client first.
  if (streaming_ && (head.status >= 500 || retryableStatus(route_->retry, head.status)) &&
      (!head.has_content_length || head.content_length <= kMaxBufferedBody))
    streaming_ = false;
  store_stream_ = keep && streaming_ && route_->cache->streams;
  stream_copy_.clear();
  chunked_to_client_ = streaming_ && !head.has_content_length && req_.version_minor >= 1;
  if (streaming_ && !head.has_content_length && !chunked_to_client_) close_ = true;
  buildClientHead(head);
  if (!streaming_) {
    if (head.has_content_length) body_.reserve(head.content_length);
    // From here the whole answer must arrive by the try's end (by default
    // first_byte is per_try, and the timer already says so).
    if (timer_at_ != try_end_) armTimer(try_end_);
  }
}

bool Exchange::retryableStatus(const RetryConfig& retry, int status) {
  if (retry.attempts <= 1) return false;
  policy::TryResult r;
  r.outcome = status >= 500 ? AttemptOutcome::kError5xx : AttemptOutcome::kOk;
  r.status = status;
  return policy::isRetriable(retry, r);
}

void Exchange::buildClientHead(const UpstreamResponseHead& head) {
  std::string& h = client_head_;
  h.clear();
  if (!down_.keepAlive()) close_ = true;  // e.g. draining began while this request ran
  http::append(h, "HTTP/1.1 ", head.status, " ", http::reasonPhrase(head.status), "\r\n");
  bool no_body = req_.method == "HEAD" || head.status == 204 || head.status == 304;
  // Framing is ours to set, except that the answer to a HEAD and a 304 keep
  // the length they describe; a 204 never has one (RFC 9110 §8.6).
  bool keep_length = head.status != 204 && no_body;
  for (size_t i = 0; i < head.headerCount(); ++i) {
    std::string_view name = head.headerName(i);
    http::HeaderKind kind = answer_kinds_[i];
    if (!http::isRelayedAnswerHeader(kind) &&
        !(keep_length && kind == http::HeaderKind::kContentLength))
      continue;
    http::append(h, name, ": ", head.headerValue(i), "\r\n");
  }
  http::append(h, "x-airbag-source: ", source_label_, "\r\nx-airbag-attempts: ", attempts_,
               "\r\nx-request-id: ", request_id_, "\r\n");
  if (!cache_status_.empty()) http::append(h, "x-airbag-cache: ", cache_status_, "\r\n");
  if (!no_body) {
    if (head.has_content_length)
      http::append(h, "content-length: ", head.content_length, "\r\n");
    else if (chunked_to_client_)
      h += "transfer-encoding: chunked\r\n";
  }
  if (close_)
    h += "connection: close\r\n";
  else if (req_.version_minor == 0)
    h += "connection: keep-alive\r\n";
  h += "\r\n";
}

void Exchange::onUpstreamData(std::string_view data) {
  if (!streaming_) {
    body_.append(data);
    return;
  }
  if (!committed_) commitStream();
  writeStreamData(data);
  if (store_stream_) {
    if (stream_copy_.size() + data.size() <= route_->cache->max_entry_bytes)
      stream_copy_.append(data);
    else
      store_stream_ = false;  // too big to keep; relayed all the same
  }
}

void Exchange::onUpstreamReadDone() {
  if (!committed_) return;
  // One write per upstream read, however many events it carried.
  flushStream();
  armTimer(WorkerContext::preciseNow() + route_->timeout.idle);
  if (!paused_ && call_ && down_.pendingBytes() > kPauseUpstreamAt) {
    paused_ = true;
    call_->pauseReading();
  }
}

void Exchange::commitStream() {
  committed_ = true;
  stage_ = Stage::kStreaming;
  stream_out_.append(client_head_);
}

void Exchange::writeStreamData(std::string_view data) {
  if (data.empty()) return;
  bytes_sent_ += static_cast<int64_t>(data.size());
  if (chunked_to_client_) {
    http::appendHexNumber(stream_out_, data.size());
    stream_out_ += "\r\n";
    stream_out_.append(data);
    stream_out_ += "\r\n";
  } else {
    stream_out_.append(data);
  }
}

void Exchange::flushStream() {
  if (stream_out_.empty()) return;
  down_.write(stream_out_);
  stream_out_.clear();
}

void Exchange::onDownstreamWritable() {
  if (paused_ && call_) {
    // The client is taking data again: that is progress, so the idle clock
    // restarts (a client that stops reading altogether is cut at `idle`).
    paused_ = false;
    armTimer(WorkerContext::preciseNow() + route_->timeout.idle);
    call_->resumeReading();
  }
}

void Exchange::onUpstreamComplete() {
  call_ = nullptr;
  AttemptOutcome outcome = status_ >= 500 ? AttemptOutcome::kError5xx : AttemptOutcome::kOk;
  if (committed_) {
    // A streamed answer already under way: nothing left to decide.
    upstream_time_ += WorkerContext::preciseNow() - try_start_;
    recordAttempt(outcome);
    reportToBreaker(outcome == AttemptOutcome::kOk);
    if (fallback_step_ >= 0 && ctx_.metrics)
      ctx_.metrics->incCounter(ctx_.metrics->families().fallbacks_total,
                               {route_->name, source_label_});
    maybeStore();
    if (chunked_to_client_) stream_out_ += "0\r\n\r\n";
    finish(status_, /*aborted=*/false, stream_out_);
    return;
  }
  if (outcome == AttemptOutcome::kOk && !streaming_ && !validateAnswer())
    outcome = AttemptOutcome::kInvalid;
  if (endTry(outcome, status_)) return;  // retrying: this answer is dropped
  bool failed = outcome != AttemptOutcome::kOk ||
                (fallback_step_ < 0 && retryableStatus(route_->retry, status_));
  if (failed) {
    runFallback(outcome == AttemptOutcome::kInvalid ? Failure::kInvalid : Failure::kAnswer);
    return;
  }
  if (fallback_step_ >= 0 && ctx_.metrics)
    ctx_.metrics->incCounter(ctx_.metrics->families().fallbacks_total,
                             {route_->name, source_label_});
  if (!streaming_) {
    maybeStore();
    bytes_sent_ = static_cast<int64_t>(body_.size());
    finish(status_, /*aborted=*/false, client_head_, body_);
    return;
  }
  commitStream();
  maybeStore();
  if (chunked_to_client_) stream_out_ += "0\r\n\r\n";
  finish(status_, /*aborted=*/false, stream_out_);
}

void Exchange::onUpstreamFailure(AttemptOutcome outcome, std::string_view detail) {
  call_ = nullptr;
  if (committed_) {
    upstream_time_ += WorkerContext::preciseNow() - try_start_;
    recordAttempt(outcome);
    reportToBreaker(false);
    abortStream(outcome == AttemptOutcome::kTimeout ? "timeout" : "upstream_reset");
    return;
  }
  onTryFailed(outcome);
}

void Exchange::onTryFailed(AttemptOutcome outcome) {
  if (endTry(outcome, 0)) return;
  runFallback(outcome == AttemptOutcome::kTimeout ? Failure::kTimeout : Failure::kUnavailable);
}

bool Exchange::endTry(AttemptOutcome outcome, int status) {
  absl::Time now = WorkerContext::preciseNow();
  upstream_time_ += now - try_start_;
  recordAttempt(outcome);
  reportToBreaker(outcome == AttemptOutcome::kOk);
  if (outcome == AttemptOutcome::kInvalid && ctx_.metrics)
    ctx_.metrics->incCounter(ctx_.metrics->families().validation_failures_total, {route_->name});
  if (fallback_step_ >= 0 || route_->retry.attempts <= 1) return false;
  policy::TryResult r;
  r.outcome = outcome;
  r.status = status;
  r.retry_after = retry_after_;
  policy::RetryDecision d =
      policy::decideRetry(route_->retry, r, attempts_, now, deadline_, /*body_replayable=*/true,
                          *backoff_, runtime_->budget(), ctx_.rng);
  if (d.verdict == policy::RetryVerdict::kBudgetExhausted && ctx_.metrics)
    ctx_.metrics->incCounter(ctx_.metrics->families().retry_budget_exhausted_total,
                             {route_->name});
  if (d.verdict != policy::RetryVerdict::kRetry) return false;
  if (ctx_.metrics) ctx_.metrics->incCounter(ctx_.metrics->families().retries_total, {route_->name});
  stage_ = Stage::kBackoff;
  armTimer(now + d.delay);  // onTimer starts the next try
  return true;
}

void Exchange::reportToBreaker(bool success) {
  if (!permit_held_) return;
  permit_held_ = false;
  if (policy::CircuitBreaker* breaker = currentBreaker()) {
    absl::Time now = WorkerContext::preciseNow();
    breaker->onResult(now, success, now - try_start_, permit_probe_);
  }
}

void Exchange::releaseHolds() {
  if (permit_held_) {
    permit_held_ = false;
    if (policy::CircuitBreaker* breaker = runtime_ ? currentBreaker() : nullptr)
      breaker->onAbandoned(permit_probe_);
  }
  if (queued_) {
    // Still queued: leave the queue, or give back a slot granted meanwhile.
    queued_ = false;
    ticket_->disarm();
    if (runtime_->bulkhead().cancel(ticket_.get())) {
      ticket_->dropSelf();
    } else {
      runtime_->bulkhead().release();
      ticket_.reset();  // a wake-up may still be on its way; the next request gets a new ticket
    }
    event_del(&wake_);
  }
  if (bulkhead_held_) {
    bulkhead_held_ = false;
    runtime_->bulkhead().release();
  }
  if (fill_leader_) leaveFill(stored_);
  if (stage_ == Stage::kCoalesced && ticket_) {
    ticket_->disarm();
    if (snapshot_->cache->leaveFill(cache_key_, ticket_.get()))
      ticket_->dropSelf();
    else
      ticket_.reset();  // its wake-up may still come; the next request gets a new ticket
    event_del(&wake_);
  }
  if (shed_admitted_) {
    shed_admitted_ = false;
    snapshot_->shedder->release(route_->priority);
  }
}

void Exchange::abortStream(std::string_view code) {
  if (sse_) {
    // Tell an event-stream reader in its own terms before the cut.
    std::string ev;
    http::append(ev, "event: error\ndata: {\"error\":{\"code\":\"", code,
                    "\",\"message\":\"the upstream failed mid-stream\"}}\n\n");
    writeStreamData(ev);
  }
  close_ = true;
  finish(status_, /*aborted=*/true, stream_out_);
}

void Exchange::replyLocal(int status, std::string_view code, std::string_view message,
                          std::optional<int> retry_after_seconds) {
  if (!down_.keepAlive()) close_ = true;
  LocalReply r;
  r.status = status;
  r.code = code;
  r.message = message;
  r.route = route_ ? std::string_view(route_->name) : std::string_view();
  r.request_id = request_id_;
  r.attempts = attempts_;
  r.close = close_;
  r.http10_keep_alive = req_.version_minor == 0;
  r.retry_after_seconds = retry_after_seconds;
  r.cache = cache_status_;
  r.head_only = req_.method == "HEAD";
  setSource(AnswerSource::kNone);
  scratch_.clear();
  appendLocalReply(scratch_, r);
  bytes_sent_ = static_cast<int64_t>(scratch_.size());
  finish(status, /*aborted=*/false, scratch_);
}

void Exchange::recordAttempt(AttemptOutcome outcome) {
  if (ctx_.metrics) ctx_.metrics->recordAttempt(route_->name, upstream_config_->name, outcome);
}

void Exchange::setSource(AnswerSource source, std::string_view detail) {
  source_ = source;
  source_label_.assign(answerSourceLabel(source));
  if (!detail.empty()) {
    source_label_ += ':';
    source_label_.append(detail);
  }
}

void Exchange::record(int status) {
  absl::Time now = WorkerContext::preciseNow();
  std::string_view route_name = route_ ? std::string_view(route_->name) : std::string_view();
  std::string_view source_label = source_label_;
  if (ctx_.metrics) {
    ctx_.metrics->recordRequest(route_name, source_label, status, now - start_);
    ctx_.metrics->addInFlight(-1);
  }
  if (ctx_.access_log) {
    log::AccessLogEntry e;
    e.time = start_;
    e.request_id = request_id_;
    e.route = route_name;
    e.method = req_.method;
    e.path = req_.path;
    e.status = status;
    e.source = source_label;
    e.attempts = attempts_;
    e.upstream_time = upstream_time_;
    e.total_time = now - start_;
    e.bytes_sent = bytes_sent_;
    e.cache = cache_status_;
    if (policy::CircuitBreaker* b = runtime_ ? runtime_->breaker() : nullptr)
      e.breaker = policy::circuitStateLabel(b->state(now));
    ctx_.access_log->append(e);
  }
}

void Exchange::finish(int status, bool aborted, std::string_view last, std::string_view last2) {
  event_del(&timer_);
  releaseHolds();
  stage_ = Stage::kDone;
  // Counted before the last bytes go out, so a client that has its answer
  // also finds it in the metrics and the access log.
  record(status);
  if (!last.empty() || !last2.empty()) down_.write(last, last2);
  if (aborted)
    down_.responseAborted();
  else
    down_.responseDone(close_);
}

void Exchange::cancel() {
  if (!busy()) return;
  event_del(&timer_);
  if (call_) {
    call_->cancel();
    call_ = nullptr;
  }
  releaseHolds();
  stage_ = Stage::kDone;
  // 499: the client closed the connection before the answer was complete.
  setSource(AnswerSource::kNone);
  record(499);
}

void Exchange::armTimer(absl::Time at) {
  timer_at_ = at;
  absl::Duration d = std::max(at - WorkerContext::preciseNow(), absl::ZeroDuration());
  timeval tv = absl::ToTimeval(d);
  evtimer_add(&timer_, &tv);
}

void Exchange::timerCb(int, short, void* arg) { static_cast<Exchange*>(arg)->onTimer(); }

void Exchange::onTimer() {
  // The loop's timers run on a coarse clock and may fire a tick early;
  // deadlines are promised to the millisecond, so wait out the rest.
  if (WorkerContext::preciseNow() < timer_at_) {
    armTimer(timer_at_);
    return;
  }
  switch (stage_) {
    case Stage::kFault:  // the injected delay is over
      lookupCache();
      return;
    case Stage::kBulkhead:  // queue_timeout
      queued_ = false;
      ticket_->disarm();
      if (!runtime_->bulkhead().cancel(ticket_.get())) {
        // Granted at the last moment: the slot is ours, use it.
        ticket_.reset();
        event_del(&wake_);
        bulkhead_held_ = true;
        beginAttempts();
        return;
      }
      ticket_->dropSelf();
      if (ctx_.metrics)
        ctx_.metrics->incCounter(ctx_.metrics->families().bulkhead_rejected_total,
                                 {route_->name});
      runFallback(Failure::kBulkheadFull);
      return;
    case Stage::kCoalesced:  // the leader's fetch outlived this request's deadline
      ticket_->disarm();
      if (snapshot_->cache->leaveFill(cache_key_, ticket_.get())) {
        ticket_->dropSelf();
        runFallback(Failure::kTimeout);
      } else {
        ticket_.reset();  // filled at the last moment: its wake-up brings the answer
        event_del(&wake_);
        onFillDone(nullptr);
      }
      return;
    case Stage::kBackoff:
      startAttempt();
      return;
    case Stage::kAttempt:
    case Stage::kStreaming:
      break;
    default:
      return;
  }
  if (call_) {
    call_->cancel();
    call_ = nullptr;
  }
  if (committed_) {
    upstream_time_ += WorkerContext::preciseNow() - try_start_;
    recordAttempt(AttemptOutcome::kTimeout);
    reportToBreaker(false);
    abortStream("timeout");
    return;
  }
  onTryFailed(AttemptOutcome::kTimeout);
}

}  // namespace airbag::pipeline
