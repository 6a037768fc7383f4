// Per-route, per-second counters for the last five minutes: the data of
// GET /routes/{name}/history and of the status page's charts. Filled once a
// second on the admin thread from the metric totals, so the request path does
// no extra work. Pure apart from routeTotals(): time is passed in.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "airbag/outcome.h"
#include "nlohmann/json.hpp"

namespace airbag::metrics {
class Registry;
}

namespace airbag::admin {

// The ladder levels (AnswerSource, DESIGN.md §4), upstream to none.
inline constexpr size_t kNumLevels = static_cast<size_t>(AnswerSource::kNone) + 1;

// The level of an x-airbag-source value ("fallback:small-model" is kFallback,
// "rule:high-amount" is kRule); nullopt for anything else.
std::optional<AnswerSource> levelOfSource(std::string_view source);

// One route's counts since the process started, as the metrics hold them.
struct RouteTotals {
  uint64_t requests = 0;
  std::array<uint64_t, kNumLevels> by_level{};
  uint64_t errors = 0;             // answers sent with a 5xx status
  uint64_t upstream_failures = 0;  // upstream tries that did not end ok
  // Answers per latency bucket (metrics::durationBuckets(), last is +Inf).
  std::vector<uint64_t> latency_buckets;
};

using TotalsByRoute = absl::flat_hash_map<std::string, RouteTotals>;

// Reads every route's totals from the request, attempt and duration families.
TotalsByRoute routeTotals(const metrics::Registry& registry);

// The latency below which `q` (0..1) of the answers counted in `buckets` fell,
// interpolated inside its bucket as Prometheus's histogram_quantile does, in
// seconds; nullopt when the buckets are all zero. `bounds` are the finite upper
// bounds; a quantile in the +Inf bucket reads as the last finite bound.
std::optional<double> bucketQuantile(const std::vector<uint64_t>& buckets,
                                     const std::vector<double>& bounds, double q);

// What one route did in one second.
struct HistorySlot {
  int64_t second = 0;  // unix time of the second's end
  uint32_t requests = 0;
  std::array<uint32_t, kNumLevels> by_level{};
  uint32_t errors = 0;
  uint32_t upstream_failures = 0;
  float p50_ms = -1;  // negative: no answer ended in this second
  float p99_ms = -1;
};

// A ring of the last kSlots seconds of one route: kSlots * sizeof(HistorySlot)
// bytes (56 each, 16.8 KB), allocated once.
class RouteHistory {
 public:
  static constexpr size_t kSlots = 300;

  // Appends a second. A slot for the same or an earlier second than the newest
  // (a clock step back, a timer that fired twice) is merged into the newest.
  void add(const HistorySlot& slot);
  // The slots of the kSlots seconds up to `now_second`, oldest first.
  std::vector<HistorySlot> recent(int64_t now_second) const;
  size_t size() const { return size_; }

 private:
  std::array<HistorySlot, kSlots> slots_{};
  size_t next_ = 0;  // where the next slot goes
  size_t size_ = 0;
};

// Every route's history and the totals last seen for it. Not thread-safe:
// one thread (the admin thread) samples and reads.
class HistoryStore {
 public:
  // Records the second ending at `now`: for each route in `routes` (those of
  // the configuration in force), what its totals grew by since the previous
  // sample. A route sampled for the first time records nothing: its totals
  // are the baseline (a route back after a reload must not show everything it
  // served before as one second). Routes not in `routes` are forgotten;
  // routes that stay keep their history across reloads.
  void sample(absl::Time now, const std::vector<std::string>& routes, const TotalsByRoute& totals);

  // The route's history as JSON (see docs/admin.md), relative to the last
  // sample; nullopt for a route never sampled.
  std::optional<nlohmann::json> toJson(std::string_view route) const;

  const RouteHistory* find(std::string_view route) const;
  size_t routes() const { return routes_.size(); }

 private:
  struct Entry {
    RouteTotals last;
    RouteHistory history;
  };
  absl::flat_hash_map<std::string, std::unique_ptr<Entry>> routes_;
  int64_t last_second_ = 0;
};

}  // namespace airbag::admin
