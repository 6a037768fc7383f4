// The saturation scraper: one thread per process reads the Prometheus
// endpoint of every upstream that has `saturation` (DESIGN.md §8), with
// libcurl on its own event loop, as the health checker probes, and records
// each reading in the upstream's shared UpstreamSaturation, which the
// workers read. Scraping once per process keeps the load on the model
// independent of the worker count.
#pragma once

#include <memory>
#include <vector>

#include "proxy/upstream/probe_set.h"
#include "proxy/upstream/upstream_saturation.h"

namespace spdlog {
class logger;
}

namespace airbag::upstream {

struct SaturationTarget : ProbeTarget {
  std::shared_ptr<UpstreamSaturation> saturation;
};

class SaturationScraper {
 public:
  // `logger` may be null.
  explicit SaturationScraper(std::shared_ptr<spdlog::logger> logger);
  ~SaturationScraper();  // stops the thread

  // Starts the scraping thread.
  void start();
  // Thread-safe. Scrapes these targets from now on (those without
  // `saturation` are ignored); the first scrape of each goes out at once.
  void update(std::vector<SaturationTarget> targets);

 private:
  class Scrape;

  std::shared_ptr<spdlog::logger> logger_;
  ProbeSet<SaturationTarget, Scrape> scrapes_;
};

}  // namespace airbag::upstream
