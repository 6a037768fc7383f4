// Writes to the shared cache tier; see shared_tier.h.
#include "proxy/pipeline/shared_tier.h"

#include <string>

#include "proxy/metrics/metrics.h"
#include "proxy/shared_cache/client.h"
#include "proxy/shared_cache/entry_codec.h"

namespace airbag::pipeline {

void writeShared(WorkerContext& ctx, const RouteConfig& route, const policy::CacheEntry& entry,
                 absl::Time now) {
  shared_cache::Client* client = ctx.shared_cache;
  if (!client || !route.cache || !route.cache->shared) return;
  int64_t keep_ms = absl::ToInt64Milliseconds(shared_cache::keepFor(entry, now));
  if (keep_ms < 1) return;
  const shared_cache::TierSettings& s = client->tier().settings();
  std::string key = shared_cache::redisKey(s.prefix, route.name, entry.key);
  std::string value = shared_cache::encodeEntry(entry);
  std::string px = std::to_string(keep_ms);
  metrics::WorkerMetrics* m = ctx.metrics;
  auto counted = [m](shared_cache::Result&& r) {
    if (!r.ok() && m) m->incCounter(m->families().shared_cache_errors_total, {"set"});
  };
  if (!client->command({"SET", key, value, "PX", px}, s.write_timeout, std::move(counted)) && m)
    m->incCounter(m->families().shared_cache_errors_total, {"set"});
}

}  // namespace airbag::pipeline
