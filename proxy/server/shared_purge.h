// POST /cache/purge's shared-tier half: a thread of its own with one loop and
// one Redis connection (per node of a cluster), started on the first purge,
// so a purge's SCANs never queue behind (or ahead of) a worker's lookups.
// The admin thread asks; the answer comes back from this loop.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string_view>

#include "nlohmann/json.hpp"
#include "proxy/metrics/metrics.h"
#include "proxy/pipeline/snapshot.h"
#include "proxy/shared_cache/purge.h"

namespace spdlog {
class logger;
}

namespace airbag::server {

// The "shared" object of POST /cache/purge's answer for `r`.
nlohmann::json sharedPurgeJson(const shared_cache::PurgeResult& r);

class SharedPurger {
 public:
  // Counts into `metrics` (the registry's global shard, any thread may
  // write it), which must outlive the purger: airbag_shared_cache_purged_total
  // and airbag_shared_cache_errors_total{op="purge"}.
  SharedPurger(std::shared_ptr<spdlog::logger> logger, metrics::WorkerMetrics* metrics);
  // Stops the loop and joins its thread; purges still running never answer
  // (the admin answers them with its timeout).
  ~SharedPurger();
  SharedPurger(const SharedPurger&) = delete;
  SharedPurger& operator=(const SharedPurger&) = delete;

  // Thread-safe. Purges `route` (nullopt: every route) of `snap` from the
  // shared tier, if it (or any) uses cache.shared, and returns true; `done`
  // then gets sharedPurgeJson() of the result, from this purger's thread.
  // False, and `done` is never called, when no route named uses the tier.
  bool purge(std::shared_ptr<const pipeline::Snapshot> snap,
             std::optional<std::string_view> route,
             std::function<void(nlohmann::json)> done);

 private:
  class Loop;
  std::shared_ptr<spdlog::logger> logger_;
  metrics::WorkerMetrics* metrics_;
  absl::Mutex mu_;
  std::unique_ptr<Loop> loop_ ABSL_GUARDED_BY(mu_);  // made on the first purge
};

}  // namespace airbag::server
