// The shared (Redis) cache tier in the pipeline (DESIGN.md §8 cache.shared):
// after a local miss the fill's leader asks Redis, and the ladder's stale
// rung asks it when there is no local entry. Whatever Redis answers is put in
// the local cache first and then read back the local way, so freshness is
// judged in one place. A slow, failing or refused Redis is a miss. Part of
// Exchange.
#include "proxy/metrics/metrics.h"
#include "proxy/pipeline/exchange.h"
#include "proxy/shared_cache/client.h"
#include "proxy/shared_cache/entry_codec.h"

namespace airbag::pipeline {

void Exchange::countShared(std::string_view result) {
  if (ctx_.metrics)
    ctx_.metrics->incCounter(ctx_.metrics->families().shared_cache_lookups_total,
                             {r_.route->name, result});
}

bool Exchange::sendShared(std::initializer_list<std::string_view> args,
                          absl::Duration timeout) {
  // The answer finds this exchange through the worker's registry, and only
  // while it is still on this request.
  WorkerContext* ctx = &ctx_;
  uint32_t slot = slot_;
  uint64_t generation = generation_;
  auto deliver = [ctx, slot, generation](shared_cache::Result&& r) {
    if (slot >= ctx->exchanges.size()) return;
    Exchange* e = ctx->exchanges[slot];
    if (e && e->generation() == generation) e->onSharedResult(std::move(r));
  };
  return ctx_.shared_cache->command(args, timeout, std::move(deliver));
}

bool Exchange::askShared(Stage stage, absl::Time now) {
  shared_cache::Client* client = ctx_.shared_cache;
  if (!client || !r_.route->cache || !r_.route->cache->shared || cache_key_.empty()) return false;
  const shared_cache::TierSettings& s = client->tier().settings();
  shared_key_ = shared_cache::redisKey(s.prefix, r_.route->name, cache_key_);
  r_.shared_ask = SharedAsk::kLookup;
  if (!sendShared({"GET", shared_key_}, s.timeout)) {
    countShared("skipped");
    return false;
  }
  r_.shared_sent = now;
  enter(stage);
  return true;
}

bool Exchange::lookupShared(absl::Time now) { return askShared(Stage::kSharedLookup, now); }

bool Exchange::staleFromShared(Failure failure, absl::Time now) {
  if (r_.shared_stale_tried) return false;
  r_.shared_stale_tried = true;
  r_.shared_failure = failure;
  return askShared(Stage::kSharedStale, now);
}

void Exchange::onSharedResult(shared_cache::Result&& result) {
  if (stage_ != Stage::kSharedLookup && stage_ != Stage::kSharedStale) return;
  absl::Time now = ctx_.dispatcher->now();
  if (r_.shared_ask == SharedAsk::kLock) {
    onFillLock(std::move(result), now);
    return;
  }
  if (ctx_.metrics)
    ctx_.metrics->observe(ctx_.metrics->families().shared_cache_duration_seconds, {},
                          absl::ToDoubleSeconds(now - r_.shared_sent));
  std::shared_ptr<policy::CacheEntry> entry;
  bool nil = result.kind == shared_cache::Result::Kind::kReply &&
             result.reply.type == shared_cache::Reply::Type::kNil;
  if (result.ok() && result.reply.type == shared_cache::Reply::Type::kString)
    entry = shared_cache::decodeEntry(result.reply.str, cache_key_, r_.route->name);
  if (!result.ok() && ctx_.metrics)
    ctx_.metrics->incCounter(ctx_.metrics->families().shared_cache_errors_total, {"get"});
  // Kept locally as if this worker had fetched it, then judged the local way.
  policy::CacheStore& store = *r_.snapshot->cache;
  policy::CacheStore::LookupResult found;
  if (entry && store.insert(entry, r_.route->cache->max_entry_bytes)) {
    found = store.lookup(cache_key_, now);
    // Whatever serves this entry in this request (now, or the ladder's stale
    // rung should the upstream fail) serves it from the shared tier.
    r_.cache_tier = "shared";
  }
  std::string_view miss = nil || entry ? "miss" : "error";  // damaged values count as errors

  if (stage_ == Stage::kSharedStale) {
    if (found.kind == policy::CacheStore::Lookup::kMiss) {
      countShared(miss);
      runFallback(r_.shared_failure, now);
      return;
    }
    countShared("stale");
    if (ctx_.metrics)
      ctx_.metrics->incCounter(ctx_.metrics->families().fallbacks_total,
                               {r_.route->name, "stale"});
    serveEntry(*found.entry, AnswerSource::kStale, "stale");
    return;
  }
  // A GET while another pod fills the key: its answer is the coalesced one.
  bool polled = r_.shared_ask == SharedAsk::kPoll;
  switch (found.kind) {
    case policy::CacheStore::Lookup::kFresh:
      polled ? countCoalesce("waited_hit") : countShared("hit");
      r_.holds.fill.complete(found.entry);  // requests coalesced behind this one get it too
      serveEntry(*found.entry, AnswerSource::kCache, "hit");
      return;
    case policy::CacheStore::Lookup::kStale:
      polled ? countCoalesce("waited_hit") : countShared("stale");
      r_.holds.fill.reset();
      if (found.revalidate) startRevalidation(now);
      serveEntry(*found.entry, AnswerSource::kStale, "stale");
      return;
    case policy::CacheStore::Lookup::kStaleIfError:  // kept locally for the ladder
    case policy::CacheStore::Lookup::kMiss:
      break;
  }
  bool answered = nil || entry;  // Redis is there and the value (if any) is sound
  if (polled) {
    waitOrGiveUp(answered, now);
    return;
  }
  countShared(miss);
  // After a miss in both tiers, the fleet may already be fetching this key.
  if (answered && takeFillLock(now)) return;
  checkBreaker(now);
}

}  // namespace airbag::pipeline
