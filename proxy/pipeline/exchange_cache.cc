// The cache stage of the pipeline: the key, lookups with stale-while-
// revalidate, coalescing of concurrent misses, background refreshes and
// storing answers (DESIGN.md §1 "cache lookup"). Part of Exchange.
#include <event2/event.h>

#include <algorithm>

#include "policy/cache_control.h"
#include "proxy/http/status.h"
#include "proxy/http/text.h"
#include "proxy/json/canonical.h"
#include "proxy/json/validate.h"
#include "proxy/metrics/metrics.h"
#include "proxy/pipeline/exchange.h"
#include "proxy/pipeline/exchange_ticket.h"

namespace airbag::pipeline {
namespace {

bool bypassRequested(const http::HeaderList& h) {
  if (policy::requestBypassesCache(h.get("cache-control"))) return true;
  auto pragma = h.get("pragma");
  return pragma && http::headerHasToken(*pragma, "no-cache");
}

}  // namespace

// A stale-while-revalidate refresh: one upstream call made on behalf of no
// client, whose answer replaces the stale entry. Owned by the worker's
// context; it removes itself when done.
class Exchange::Revalidation final : public BackgroundTask, public UpstreamResponseHandler {
 public:
  Revalidation(WorkerContext& ctx, std::shared_ptr<const Snapshot> snapshot,
               const RouteConfig* route, UpstreamClient* upstream, std::string key,
               std::string head, std::string body)
      : ctx_(ctx),
        snapshot_(std::move(snapshot)),
        route_(route),
        key_(std::move(key)),
        head_(std::move(head)),
        body_(std::move(body)) {
    event_assign(&timer_, ctx_.base, -1, 0, &Revalidation::timerCb, this);
    upstream_ = upstream;
  }
  ~Revalidation() override {
    event_del(&timer_);
    if (call_) {
      call_->cancel();
      snapshot_->cache->revalidationDone(key_);
    }
  }

  void start(std::list<std::unique_ptr<BackgroundTask>>::iterator self) {
    self_ = self;
    timeval tv = absl::ToTimeval(route_->timeout.per_try);
    evtimer_add(&timer_, &tv);
    UpstreamRequest r;
    r.head = head_;
    r.body = body_;
    call_ = upstream_->start(r, this);
  }

  void onUpstreamHeaders(const UpstreamResponseHead& head) override {
    status_ = head.status;
    std::string_view content_type;
    for (size_t i = 0; i < head.headerCount(); ++i) {
      std::string_view name = head.headerName(i);
      http::HeaderKind kind = http::classifyHeader(name);
      if (kind == http::HeaderKind::kCacheControl) cache_control_.assign(head.headerValue(i));
      if (kind == http::HeaderKind::kContentType) content_type = head.headerValue(i);
      if (http::isRelayedAnswerHeader(kind)) headers_.emplace_back(name, head.headerValue(i));
    }
    // Stored the way the client-facing path would store it (see onUpstreamHeaders).
    event_stream_ = http::startsWithIgnoreCase(content_type, "text/event-stream");
    stream_ = http::isStreamingContentType(content_type) || !head.has_content_length;
    if (stream_ && !route_->cache->streams) too_big_ = true;  // not storable on this route
  }
  void onUpstreamData(std::string_view data) override {
    if (answer_.size() + data.size() <= route_->cache->max_entry_bytes) answer_.append(data);
    else too_big_ = true;
  }
  void onUpstreamComplete() override {
    call_ = nullptr;
    const RouteCacheConfig& c = *route_->cache;
    std::string reason;
    bool stored = false;
    if (!too_big_ &&
        std::find(c.statuses.begin(), c.statuses.end(), status_) != c.statuses.end() &&
        answerIsValid(*route_, status_, answer_, &reason)) {
      auto entry = makeEntry(*route_, key_, status_, std::move(headers_), std::move(answer_),
                             stream_, event_stream_, cache_control_, ctx_.now());
      stored = entry && snapshot_->cache->insert(std::move(entry), c.max_entry_bytes);
    }
    done(stored);
  }
  void onUpstreamFailure(AttemptOutcome, std::string_view) override {
    call_ = nullptr;
    done(false);
  }

 private:
  static void timerCb(int, short, void* arg) {
    auto* self = static_cast<Revalidation*>(arg);
    self->call_->cancel();
    self->call_ = nullptr;
    self->done(false);
  }
  void done(bool stored) {
    if (!stored) snapshot_->cache->revalidationDone(key_);
    if (ctx_.metrics)
      ctx_.metrics->incCounter(ctx_.metrics->families().cache_revalidations_total,
                               {route_->name, stored ? "ok" : "failed"});
    ctx_.background.erase(self_);  // deletes this; nothing may follow
  }

  WorkerContext& ctx_;
  std::shared_ptr<const Snapshot> snapshot_;
  const RouteConfig* route_;
  UpstreamClient* upstream_;
  UpstreamCall* call_ = nullptr;
  std::string key_, head_, body_;
  int status_ = 0;
  bool stream_ = false;
  bool event_stream_ = false;
  std::vector<std::pair<std::string, std::string>> headers_;
  std::string cache_control_;
  std::string answer_;
  bool too_big_ = false;
  event timer_;
  std::list<std::unique_ptr<BackgroundTask>>::iterator self_;
};

void Exchange::countLookup(std::string_view result) {
  using L = RouteRuntime::Lookup;
  runtime_->countLookup(result == "hit" ? L::kHit
                        : result == "stale" ? L::kStale
                        : result == "miss" ? L::kMiss
                                           : L::kBypass);
  if (ctx_.metrics)
    ctx_.metrics->incCounter(ctx_.metrics->families().cache_lookups_total, {route_->name, result});
}

void Exchange::buildCacheKey() {
  const RouteCacheConfig& c = *route_->cache;
  std::string& k = cache_key_;
  k.clear();
  // Every part is length-prefixed, so no two different requests can spell
  // the same key by moving bytes between parts.
  auto part = [&k](std::string_view v) {
    http::appendDecimal(k, static_cast<int64_t>(v.size()));
    k += ':';
    k.append(v);
  };
  part(route_->name);
  part(req_.method);
  part(c.key.query ? req_.url : req_.path);
  for (const std::string& name : c.key.headers) part(req_.headers->get(name).value_or(""));
  switch (c.key.body) {
    case CacheKeyBody::kNone:
      break;
    case CacheKeyBody::kRaw:
      part(req_.body);
      break;
    case CacheKeyBody::kJsonCanonical: {
      std::optional<std::string> canon = json::canonicalize(requestJson(), c.key.ignore);
      if (canon) {
        k += 'j';
        part(*canon);
      } else {
        k += 'r';  // not JSON: the raw bytes, marked apart from any canonical form
        part(req_.body);
      }
      break;
    }
  }
}

void Exchange::lookupCache() {
  stage_ = Stage::kCacheLookup;
  if (!route_->cache) {
    checkBreaker();
    return;
  }
  if (bypassRequested(*req_.headers)) {
    cache_status_ = "bypass";  // not looked up, but the fresh answer is stored
    countLookup("bypass");
    checkBreaker();
    return;
  }
  policy::CacheStore& store = *snapshot_->cache;
  policy::CacheStore::LookupResult r = store.lookup(cache_key_, ctx_.now());
  switch (r.kind) {
    case policy::CacheStore::Lookup::kFresh:
      countLookup("hit");
      serveEntry(*r.entry, AnswerSource::kCache, "hit");
      return;
    case policy::CacheStore::Lookup::kStale:
      countLookup("stale");
      if (r.revalidate) startRevalidation();
      serveEntry(*r.entry, AnswerSource::kStale, "stale");
      return;
    case policy::CacheStore::Lookup::kStaleIfError:  // only for when the upstream fails
    case policy::CacheStore::Lookup::kMiss:
      break;
  }
  countLookup("miss");
  cache_status_ = "miss";
  // Concurrent misses of one key wait for one upstream call.
  if (!ticket_) ticket_ = std::make_shared<Ticket>(&wake_);
  ticket_->arm(ticket_);
  if (store.joinFill(cache_key_, ticket_.get()) == policy::CacheStore::Fill::kLeader) {
    ticket_->disarm();
    ticket_->dropSelf();
    fill_leader_ = true;
    checkBreaker();
    return;
  }
  stage_ = Stage::kCoalesced;
  armTimer(deadline_);
}

void Exchange::onFillDone(std::shared_ptr<const policy::CacheEntry> entry) {
  if (entry) {
    cache_status_ = "hit";
    serveEntry(*entry, AnswerSource::kCache, "hit");
    return;
  }
  // The leader got nothing storable: go upstream ourselves.
  checkBreaker();
}

void Exchange::leaveFill(std::shared_ptr<const policy::CacheEntry> entry) {
  fill_leader_ = false;
  snapshot_->cache->completeFill(cache_key_, std::move(entry));
}

void Exchange::startRevalidation() {
  buildUpstreamHead(ctx_.now());
  auto task = std::make_unique<Revalidation>(ctx_, snapshot_, route_, upstream_, cache_key_,
                                             upstream_head_, std::string(req_.body));
  Revalidation* raw = task.get();
  ctx_.background.push_front(std::move(task));
  raw->start(ctx_.background.begin());
}

std::shared_ptr<policy::CacheEntry> Exchange::makeEntry(
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

void Exchange::maybeStore() {
  if (fallback_step_ >= 0 || cache_key_.empty() || !route_->cache) return;
  const RouteCacheConfig& c = *route_->cache;
  if (std::find(c.statuses.begin(), c.statuses.end(), status_) == c.statuses.end()) return;
  if (streaming_ && !store_stream_) return;
  std::shared_ptr<policy::CacheEntry> entry =
      makeEntry(*route_, cache_key_, status_, answer_headers_,
                streaming_ ? std::move(stream_copy_) : body_, streaming_, sse_,
                answer_cache_control_, ctx_.now());
  if (entry && snapshot_->cache->insert(entry, c.max_entry_bytes)) stored_ = std::move(entry);
}

void Exchange::serveEntry(const policy::CacheEntry& e, AnswerSource source,
                          std::string_view cache_status) {
  cache_status_ = cache_status;
  setSource(source);
  status_ = e.status;
  if (!down_.keepAlive()) close_ = true;
  std::string& h = client_head_;
  h.clear();
  http::append(h, "HTTP/1.1 ", e.status, " ", http::reasonPhrase(e.status), "\r\n");
  for (const auto& [name, value] : e.headers) {
    if (http::iequals(name, "transfer-encoding")) continue;
    http::append(h, name, ": ", value, "\r\n");
  }
  http::append(h, "x-airbag-source: ", source_label_, "\r\nx-airbag-attempts: ", attempts_,
               "\r\nx-airbag-cache: ", cache_status_, "\r\nx-request-id: ", request_id_, "\r\n");
  bool chunked = e.stream && req_.version_minor >= 1;
  if (chunked)
    h += "transfer-encoding: chunked\r\n";
  else if (e.stream)
    close_ = true;  // an HTTP/1.0 client reads a replayed stream to the close
  else
    http::append(h, "content-length: ", e.body.size(), "\r\n");
  if (close_)
    h += "connection: close\r\n";
  else if (req_.version_minor == 0)
    h += "connection: keep-alive\r\n";
  h += "\r\n";
  bytes_sent_ = static_cast<int64_t>(e.body.size());
  if (!chunked) {
    finish(e.status, /*aborted=*/false, h, e.body);
    return;
  }
  // A stored stream goes out as it came in: chunked, ending with the 0-chunk.
  body_.clear();
  if (!e.body.empty()) {
    http::appendHexNumber(body_, e.body.size());
    body_ += "\r\n";
    body_ += e.body;
    body_ += "\r\n";
  }
  body_ += "0\r\n\r\n";
  finish(e.status, /*aborted=*/false, h, body_);
}

}  // namespace airbag::pipeline
