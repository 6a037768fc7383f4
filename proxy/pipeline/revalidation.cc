// Background cache refreshes; see revalidation.h.
#include "proxy/pipeline/revalidation.h"

#include "proxy/metrics/metrics.h"
#include "proxy/pipeline/answer_rules.h"
#include "proxy/pipeline/shared_tier.h"

namespace airbag::pipeline {

void Revalidation::launch(WorkerContext& ctx, std::shared_ptr<const Snapshot> snapshot,
                          const RouteConfig& route, UpstreamClient* upstream, std::string key,
                          std::string head, std::string body, absl::Time now) {
  std::unique_ptr<Revalidation> task(new Revalidation(ctx, std::move(snapshot), route,
                                                      std::move(key), std::move(head),
                                                      std::move(body)));
  Revalidation* raw = task.get();
  ctx.background.push_front(std::move(task));
  raw->self_ = ctx.background.begin();
  UpstreamTry::Plan plan;
  plan.client = upstream;
  plan.request.head = raw->head_;
  plan.request.body = raw->body_;
  plan.first_byte = now + route.timeout.per_try;
  plan.end = plan.first_byte;
  plan.cache = &*route.cache;
  plan.max_collected = route.cache->max_entry_bytes;
  raw->try_.start(plan, now);
}

Revalidation::Revalidation(WorkerContext& ctx, std::shared_ptr<const Snapshot> snapshot,
                           const RouteConfig& route, std::string key, std::string head,
                           std::string body)
    : ctx_(ctx),
      snapshot_(std::move(snapshot)),
      route_(route),
      key_(std::move(key)),
      head_(std::move(head)),
      body_(std::move(body)),
      try_(*ctx.dispatcher, *this) {}

Revalidation::~Revalidation() {
  if (!done_) {
    try_.cancel();
    snapshot_->cache->revalidationDone(key_);
  }
}

void Revalidation::onTryDone(absl::Time now) {
  done_ = true;
  bool stored = false;
  // Stored the way the client-facing path stores it.
  bool storable = try_.complete() && try_.storable() &&
                  (!try_.streaming() || route_.cache->streams) &&
                  answerIsValid(route_, try_.status(), try_.body(), nullptr);
  if (storable) {
    auto entry = makeCacheEntry(route_, key_, try_.status(), std::move(try_.keptHeaders()),
                                std::move(try_.mutableBody()), try_.streaming(),
                                try_.eventStream(), try_.cacheControl(), now);
    stored = entry && snapshot_->cache->insert(entry, route_.cache->max_entry_bytes);
    if (stored) writeShared(ctx_, route_, *entry, now);  // the fleet gets the refresh too
  }
  if (!stored) snapshot_->cache->revalidationDone(key_);
  if (ctx_.metrics)
    ctx_.metrics->incCounter(ctx_.metrics->families().cache_revalidations_total,
                             {route_.name, stored ? "ok" : "failed"});
  ctx_.background.erase(self_);  // deletes this; nothing may follow
}

}  // namespace airbag::pipeline
