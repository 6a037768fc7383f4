// The cache stage of the pipeline: the key, lookups with stale-while-
// revalidate, coalescing of concurrent misses, background refreshes and
// storing answers (DESIGN.md §1 "cache lookup"). Part of Exchange.
#include <algorithm>

#include "policy/cache_control.h"
#include "proxy/http/text.h"
#include "proxy/json/canonical.h"
#include "proxy/metrics/metrics.h"
#include "proxy/pipeline/answer_rules.h"
#include "proxy/pipeline/exchange.h"
#include "proxy/pipeline/revalidation.h"
#include "proxy/pipeline/shared_tier.h"

namespace airbag::pipeline {
namespace {

bool bypassRequested(const http::HeaderList& h) {
  if (policy::requestBypassesCache(h.get("cache-control"))) return true;
  auto pragma = h.get("pragma");
  return pragma && http::headerHasToken(*pragma, "no-cache");
}

}  // namespace

void Exchange::countLookup(std::string_view result) {
  using L = RouteRuntime::Lookup;
  r_.runtime->countLookup(result == "hit"     ? L::kHit
                          : result == "stale" ? L::kStale
                          : result == "miss"  ? L::kMiss
                                              : L::kBypass);
  if (ctx_.metrics)
    ctx_.metrics->incCounter(ctx_.metrics->families().cache_lookups_total,
                             {r_.route->name, result});
}

void Exchange::buildCacheKey() {
  const RouteCacheConfig& c = *r_.route->cache;
  std::string& k = cache_key_;
  k.clear();
  // Every part is length-prefixed, so no two different requests can spell
  // the same key by moving bytes between parts.
  auto part = [&k](std::string_view v) {
    http::appendDecimal(k, static_cast<int64_t>(v.size()));
    k += ':';
    k.append(v);
  };
  part(r_.route->name);
  part(r_.view.method);
  part(c.key.query ? r_.view.url : r_.view.path);
  for (const std::string& name : c.key.headers) part(r_.view.headers->get(name).value_or(""));
  switch (c.key.body) {
    case CacheKeyBody::kNone:
      break;
    case CacheKeyBody::kRaw:
      part(r_.view.body);
      break;
    case CacheKeyBody::kJsonCanonical: {
      std::optional<std::string> canon = json::canonicalize(requestJson(), c.key.ignore);
      if (canon) {
        k += 'j';
        part(*canon);
      } else {
        k += 'r';  // not JSON: the raw bytes, marked apart from any canonical form
        part(r_.view.body);
      }
      break;
    }
  }
}

void Exchange::lookupCache(absl::Time now) {
  enter(Stage::kCacheLookup);
  if (!r_.route->cache) {
    checkBreaker(now);
    return;
  }
  if (bypassRequested(*r_.view.headers)) {
    r_.cache_status = "bypass";  // not looked up, but the fresh answer is stored
    countLookup("bypass");
    checkBreaker(now);
    return;
  }
  policy::CacheStore& store = *r_.snapshot->cache;
  policy::CacheStore::LookupResult found = store.lookup(cache_key_, now);
  switch (found.kind) {
    case policy::CacheStore::Lookup::kFresh:
      countLookup("hit");
      serveEntry(*found.entry, AnswerSource::kCache, "hit");
      return;
    case policy::CacheStore::Lookup::kStale:
      countLookup("stale");
      if (found.revalidate) startRevalidation(now);
      serveEntry(*found.entry, AnswerSource::kStale, "stale");
      return;
    case policy::CacheStore::Lookup::kStaleIfError:  // only for when the upstream fails
    case policy::CacheStore::Lookup::kMiss:
      break;
  }
  countLookup("miss");
  r_.cache_status = "miss";
  // Concurrent misses of one key wait for one upstream call.
  wait_generation_ = generation_;
  if (store.joinFill(cache_key_, this) == policy::CacheStore::Fill::kLeader) {
    r_.holds.fill = FillLeadership(&store, cache_key_);
    if (lookupShared(now)) return;  // the fleet's tier first (exchange_shared.cc)
    checkBreaker(now);
    return;
  }
  enter(Stage::kCoalesced);
  r_.following = true;
  armWait(r_.deadline);
}

void Exchange::onFillDone(absl::Time now) {
  // The leader stored its answer, or got nothing storable: then go upstream.
  policy::CacheStore::LookupResult found = r_.snapshot->cache->lookup(cache_key_, now);
  if (found.kind == policy::CacheStore::Lookup::kFresh) {
    r_.cache_status = "hit";
    serveEntry(*found.entry, AnswerSource::kCache, "hit");
    return;
  }
  checkBreaker(now);
}

void Exchange::serveEntry(const policy::CacheEntry& e, AnswerSource source,
                          std::string_view cache_status) {
  r_.cache_status = cache_status;
  setSource(source);
  r_.status = e.status;
  AnswerMeta meta = answerMeta();
  // Only a route with two tiers says which one answered.
  if (r_.route->cache->shared) meta.cache_tier = r_.cache_tier.empty() ? "local" : r_.cache_tier;
  bool head_only = r_.view.method == "HEAD";
  bool chunked = e.stream && r_.view.version_minor >= 1;
  Framing framing = chunked    ? Framing::kChunked
                    : e.stream ? Framing::kUntilClose  // an HTTP/1.0 client reads to the close
                               : Framing::kLength;
  if (framing == Framing::kUntilClose) meta.close = r_.close = true;
  HeaderPairs& headers = scratch_headers_;
  headers.clear();
  for (const auto& [name, value] : e.headers) headers.emplace_back(name, value);
  scratch_.clear();
  appendAnswerHead(scratch_, e.status, headers, {}, framing, e.body.size(), meta);
  if (head_only) {
    finish(e.status, /*aborted=*/false, scratch_);
    return;
  }
  r_.bytes_sent = static_cast<int64_t>(e.body.size());
  if (!chunked) {
    finish(e.status, /*aborted=*/false, scratch_, e.body);
    return;
  }
  // A stored stream goes out as it came in: chunked, ending with the 0-chunk.
  if (!e.body.empty()) {
    http::appendHexNumber(scratch_, e.body.size());
    scratch_ += "\r\n";
    scratch_ += e.body;
    scratch_ += "\r\n";
  }
  scratch_ += "0\r\n\r\n";
  finish(e.status, /*aborted=*/false, scratch_);
}

void Exchange::startRevalidation(absl::Time now) {
  const Snapshot& snap = *r_.snapshot;
  int up = snap.route_upstream[r_.route_index];
  buildUpstreamHead(now, *snap.upstreams[static_cast<size_t>(up)].config);
  Revalidation::launch(ctx_, r_.snapshot, *r_.route, ctx_.upstreams[static_cast<size_t>(up)],
                       cache_key_, upstream_head_, std::string(r_.view.body), now);
}

void Exchange::maybeStore(absl::Time now) {
  if (!try_.storable()) {
    r_.holds.fill.reset();
    return;
  }
  if (try_.streaming() && !try_.keptStream()) {
    r_.holds.fill.reset();
    return;
  }
  const RouteCacheConfig& c = *r_.route->cache;
  std::string body = try_.streaming() ? std::move(try_.streamCopy()) : std::string(try_.body());
  std::shared_ptr<policy::CacheEntry> entry =
      makeCacheEntry(*r_.route, cache_key_, r_.status, try_.keptHeaders(), std::move(body),
                     try_.streaming(), try_.eventStream(), try_.cacheControl(), now);
  if (entry && r_.snapshot->cache->insert(entry, c.max_entry_bytes)) {
    writeShared(ctx_, *r_.route, *entry, now);
    r_.holds.fill.complete(std::move(entry));
  } else {
    r_.holds.fill.reset();
  }
}

}  // namespace airbag::pipeline
