// Coalescing across pods (cache.shared.coalesce, DESIGN.md §8): after a miss
// in both tiers, the fill's local leader takes a short lock in Redis
// (SET NX PX coalesce_wait) and calls the model, or, finding the lock taken,
// polls GET for the holder's answer until coalesce_wait is over and then
// calls the model itself. A slow or failing Redis means no coalescing, never
// an error. Part of Exchange.
#include <algorithm>
#include <cstdint>
#include <string>

#include "absl/random/random.h"
#include "proxy/http/text.h"
#include "proxy/metrics/metrics.h"
#include "proxy/pipeline/exchange.h"
#include "proxy/pipeline/shared_lock.h"
#include "proxy/shared_cache/client.h"

namespace airbag::pipeline {

void hold_internal::SharedUnlock::operator()(shared_cache::Client* c) const {
  static constexpr char kScript[] =
      "if redis.call('get',KEYS[1])==ARGV[1] then return redis.call('del',KEYS[1]) end "
      "return 0";
  // Refused (its breaker is open) or failed: the lock expires by itself.
  c->command({"EVAL", kScript, "1", key, token}, c->tier().settings().write_timeout, nullptr);
}

void Exchange::countCoalesce(std::string_view outcome) {
  if (ctx_.metrics)
    ctx_.metrics->incCounter(ctx_.metrics->families().shared_cache_coalesce_total,
                             {r_.route->name, outcome});
}

bool Exchange::takeFillLock(absl::Time now) {
  const shared_cache::TierSettings& s = ctx_.shared_cache->tier().settings();
  if (!s.coalesce) return false;
  lock_key_ = shared_key_;
  lock_key_ += ":lock";
  // Only this request's own claim may delete the lock: 128 random bits.
  lock_token_.clear();
  for (int i = 0; i < 2; ++i) http::appendHexNumber(lock_token_, absl::Uniform<uint64_t>(ctx_.rng));
  std::string px = std::to_string(std::max<int64_t>(1, absl::ToInt64Milliseconds(s.coalesce_wait)));
  r_.shared_ask = SharedAsk::kLock;
  if (!sendShared({"SET", lock_key_, lock_token_, "NX", "PX", px}, s.timeout)) {
    r_.shared_ask = SharedAsk::kLookup;
    countCoalesce("skipped");
    return false;
  }
  r_.shared_sent = now;
  return true;
}

void Exchange::onFillLock(shared_cache::Result&& result, absl::Time now) {
  const shared_cache::TierSettings& s = ctx_.shared_cache->tier().settings();
  if (result.ok() && result.reply.isOk()) {
    // Ours: call the model; the answer is written to Redis as always, and
    // the lock given back when this request ends.
    countCoalesce("lock_taken");
    r_.shared_ask = SharedAsk::kLookup;
    r_.holds.shared_lock = SharedFillLock(ctx_.shared_cache, lock_key_, lock_token_);
    checkBreaker(now);
    return;
  }
  if (result.ok() && result.reply.type == shared_cache::Reply::Type::kNil) {
    // Another pod is fetching: wait for its answer, as long as the lock lives.
    r_.shared_ask = SharedAsk::kPoll;
    r_.coalesce_until = std::min(now + s.coalesce_wait, r_.deadline);
    armWait(std::min(now + s.coalesce_poll, r_.coalesce_until));
    return;
  }
  r_.shared_ask = SharedAsk::kLookup;
  countCoalesce("skipped");
  checkBreaker(now);
}

void Exchange::pollShared(absl::Time now) {
  if (now >= r_.coalesce_until) {
    waitOrGiveUp(true, now);
    return;
  }
  const shared_cache::TierSettings& s = ctx_.shared_cache->tier().settings();
  if (!sendShared({"GET", shared_key_}, s.timeout)) {
    waitOrGiveUp(false, now);
    return;
  }
  r_.shared_sent = now;
}

void Exchange::waitOrGiveUp(bool redis_answered, absl::Time now) {
  if (!redis_answered) {  // Redis failed meanwhile: no more waiting on it
    r_.shared_ask = SharedAsk::kLookup;
    countCoalesce("skipped");
    checkBreaker(now);
    return;
  }
  if (now < r_.coalesce_until) {
    armWait(std::min(now + ctx_.shared_cache->tier().settings().coalesce_poll,
                     r_.coalesce_until));
    return;
  }
  // The holder died, is slow, or had nothing storable: call the model.
  r_.shared_ask = SharedAsk::kLookup;
  countCoalesce("wait_timeout");
  checkBreaker(now);
}

}  // namespace airbag::pipeline
