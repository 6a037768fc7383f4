// The saturation scraper: one thread per process reads the Prometheus
// endpoint of every upstream that has `saturation` (DESIGN.md §8), with
// libcurl on its own event loop, as the health checker probes, and records
// each reading in the upstream's shared UpstreamSaturation, which the
// workers read. Scraping once per process keeps the load on the model
// independent of the worker count.
#pragma once

#include <sys/socket.h>

#include <memory>
#include <vector>

#include "airbag/config.h"
#include "proxy/upstream/probe_loop.h"
#include "proxy/upstream/upstream_saturation.h"

namespace spdlog {
class logger;
}
namespace airbag::metrics {
class WorkerMetrics;
}

namespace airbag::upstream {

struct SaturationTarget {
  UpstreamConfig config;  // a copy: the scraper outlives any one snapshot
  sockaddr_storage address{};
  bool has_address = false;
  std::shared_ptr<UpstreamSaturation> saturation;
};

class SaturationScraper {
 public:
  // `logger` may be null.
  explicit SaturationScraper(std::shared_ptr<spdlog::logger> logger);
  ~SaturationScraper();  // stops the thread
  SaturationScraper(const SaturationScraper&) = delete;
  SaturationScraper& operator=(const SaturationScraper&) = delete;

  // Starts the scraping thread.
  void start();
  // Thread-safe. Scrapes these targets from now on (those without
  // `saturation` are ignored); the first scrape of each goes out at once.
  void update(std::vector<SaturationTarget> targets);

 private:
  class Scrape;

  std::shared_ptr<spdlog::logger> logger_;
  ProbeLoop loop_;
  std::vector<std::unique_ptr<Scrape>> scrapes_;  // the loop's thread only
};

}  // namespace airbag::upstream
