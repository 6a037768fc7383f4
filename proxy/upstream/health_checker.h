// Active health checks: one thread per process probes every upstream that has
// `health` (DESIGN.md §8), with libcurl on its own event loop, and records
// each verdict in the upstream's shared UpstreamHealth, which the workers
// read. Probing once per process, not once per worker, keeps the load on the
// model independent of the worker count.
#pragma once

#include <memory>
#include <vector>

#include "proxy/upstream/probe_set.h"
#include "proxy/upstream/upstream_health.h"

namespace spdlog {
class logger;
}
namespace airbag::metrics {
class WorkerMetrics;
}

namespace airbag::upstream {

struct HealthTarget : ProbeTarget {
  std::shared_ptr<UpstreamHealth> health;
};

class HealthChecker {
 public:
  // `metrics` (airbag_health_probes_total; a shard any thread may write, or
  // null) must outlive the checker.
  HealthChecker(std::shared_ptr<spdlog::logger> logger, metrics::WorkerMetrics* metrics);
  ~HealthChecker();  // stops the thread

  // Starts the probing thread.
  void start();
  // Thread-safe. Probes these targets from now on (those without `health`
  // are ignored); the first probe of each goes out at once.
  void update(std::vector<HealthTarget> targets);

 private:
  class Prober;

  std::shared_ptr<spdlog::logger> logger_;
  metrics::WorkerMetrics* metrics_;
  ProbeSet<HealthTarget, Prober> probers_;
};

}  // namespace airbag::upstream
