// What the shared-tier tests on a Redis Cluster have in common: a request
// body per cache key, and an airbag whose one route is cached in memory and
// in the cluster. Header-only on top of the harness.
#pragma once

#include <string>

namespace airbag::testing {

// A KServe v2 request whose one input is `n`: a different cache key for each
// n (on a cluster, a different hash slot, so keys spread over the masters).
inline std::string inferBody(int n) {
  return R"({"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[)" + std::to_string(n) +
         "]}]}";
}

// Route `shared` (kSharedClusterPath) on ${MODEL}, cached for a minute in
// memory and in the cluster seeded at ${REDIS}; ${WORKERS} workers, and
// ${SHARED} appended to cache.shared (e.g. ", tls: {...}", or empty).
inline constexpr char kSharedClusterConfig[] = R"(
listen: { address: ${LISTEN}, workers: ${WORKERS} }
admin: { address: ${ADMIN} }
log: { level: info, access_log: off }
cache:
  shared: { redis: "${REDIS}", cluster: true, timeout: 200ms${SHARED} }
upstreams:
  model: { url: ${MODEL}, connect_timeout: 200ms }
routes:
  - name: shared
    match: { path: /v2/models/shared/infer }
    upstream: model
    cache: { ttl: 60s, shared: true }
)";
inline constexpr char kSharedClusterPath[] = "/v2/models/shared/infer";

}  // namespace airbag::testing
