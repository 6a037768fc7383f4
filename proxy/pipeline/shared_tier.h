// The pipeline's side of the shared (Redis) cache tier that needs no request:
// writing an entry to it, from a client's request or a background refresh.
#pragma once

#include "absl/time/time.h"
#include "airbag/config.h"
#include "policy/cache_store.h"
#include "proxy/pipeline/worker_context.h"

namespace airbag::pipeline {

// Writes `entry` of `route` to the shared tier, asynchronously (SET with PX
// = what is left of its ttl plus its longer stale window), if the route uses
// the tier and this worker has a client. Never waits; a failed write is
// counted (airbag_shared_cache_errors_total{op="set"}) and otherwise ignored.
void writeShared(WorkerContext& ctx, const RouteConfig& route, const policy::CacheEntry& entry,
                 absl::Time now);

}  // namespace airbag::pipeline
