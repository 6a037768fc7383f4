// The metric cells one worker records a route's requests and tries into,
// resolved on first use and kept while the label sets repeat: steady traffic
// compares a short string and a number instead of hashing three labels per
// sample (DESIGN.md §6 names stay as they are).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/time/time.h"
#include "airbag/outcome.h"
#include "proxy/metrics/metrics.h"

namespace airbag::pipeline {

class RouteMetrics {
 public:
  // airbag_requests_total{route,source,code} and airbag_request_duration_seconds{route,source}.
  void request(metrics::WorkerMetrics& m, std::string_view route, std::string_view source,
               int code, absl::Duration total);
  // airbag_upstream_attempts_total{route,upstream,outcome}.
  void attempt(metrics::WorkerMetrics& m, std::string_view route, std::string_view upstream,
               AttemptOutcome outcome);

 private:
  // A few label sets each, replaced in turn: enough for a route's usual mix
  // (answered upstream, from the cache, by the default...).
  static constexpr size_t kWays = 4;
  struct RequestCells {
    std::string source;
    int code = -1;
    metrics::WorkerMetrics::CounterHandle requests;
    metrics::WorkerMetrics::HistogramHandle duration;
  };
  struct AttemptCells {
    std::string upstream;
    AttemptOutcome outcome = AttemptOutcome::kOk;
    bool set = false;
    metrics::WorkerMetrics::CounterHandle attempts;
  };
  std::array<RequestCells, kWays> requests_;
  std::array<AttemptCells, kWays> attempts_;
  size_t next_request_ = 0;
  size_t next_attempt_ = 0;
};

}  // namespace airbag::pipeline
