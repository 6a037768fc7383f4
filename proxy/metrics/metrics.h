// Per-worker metric shards and the registry that aggregates them into the
// Prometheus text exposition (DESIGN.md §6).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "airbag/outcome.h"

namespace airbag::metrics {

inline constexpr size_t kMaxLabels = 3;
inline constexpr size_t kMaxFamilies = 64;

enum class MetricType { kCounter, kGauge, kHistogram };

// How the per-shard values of one gauge sample combine in the exposition.
enum class GaugeMerge {
  kSum,  // each shard holds its part (in-flight counts)
  kMax,  // each shard holds the same shared value (a circuit state)
};

// Names one metric family in a Registry. Cheap to copy. A default-constructed
// id is invalid and every operation on it is a no-op.
struct FamilyId {
  static constexpr uint16_t kInvalid = 0xffff;
  uint16_t index = kInvalid;
  bool valid() const { return index != kInvalid; }
};

// Label values in the order the family declared its label names. Entries past
// the family's label count are ignored, so `{route}` is fine for one label.
using LabelValues = std::array<std::string_view, kMaxLabels>;

// Histogram bucket upper bounds (seconds) for request durations: 100us..60s.
const std::vector<double>& durationBuckets();

// The ids of every family of DESIGN.md §6 plus the process-level ones; each
// Registry defines them all at construction so features only record.
struct Families {
  FamilyId requests_total;                // {route,source,code}
  FamilyId request_duration_seconds;      // {route,source} histogram
  FamilyId upstream_attempts_total;       // {route,upstream,outcome}
  FamilyId upstream_connections_opened;   // {upstream}
  FamilyId requests_in_flight;            // gauge
  FamilyId downstream_connections_total;  // counter
  FamilyId retries_total;                 // {route}
  FamilyId retry_budget_exhausted_total;  // {route}
  FamilyId circuit_state;                 // {route} gauge, 0 closed 1 open 2 half-open
  FamilyId circuit_transitions_total;     // {route,to}
  FamilyId bulkhead_in_flight;            // {route} gauge
  FamilyId bulkhead_queued;               // {route} gauge
  FamilyId bulkhead_rejected_total;       // {route}
  FamilyId shed_total;                    // {priority}
  FamilyId cache_lookups_total;           // {route,result}
  FamilyId cache_bytes;                   // gauge
  FamilyId cache_entries;                 // gauge
  FamilyId cache_revalidations_total;     // {route,outcome}
  FamilyId fallbacks_total;               // {route,level}
  FamilyId validation_failures_total;     // {route}
  FamilyId config_reloads_total;          // {result}
  FamilyId upstream_healthy;              // {upstream} gauge, 1 usable 0 down
  FamilyId health_probes_total;           // {upstream,result}
  FamilyId tls_handshakes_total;          // {result}
  FamilyId upstream_saturated;            // {upstream} gauge, 1 saturated 0 ok or unknown
  FamilyId admission_limit;               // {route} gauge
  FamilyId admission_queued;              // {route,priority} gauge
  FamilyId admission_total;               // {route,outcome}
  FamilyId hedges_total;                  // {route,result}
  FamilyId shared_cache_lookups_total;    // {route,result}
  FamilyId shared_cache_duration_seconds; // histogram, no labels
  FamilyId shared_cache_errors_total;     // {op}
  FamilyId shared_cache_coalesce_total;   // {route,outcome}
  FamilyId shared_cache_purged_total;     // no labels
};

class Registry;

// One shard of metrics. A worker shard is written only by its own worker
// thread and read by the scraping thread; recording a label set seen before
// allocates nothing and takes no lock (relaxed single-writer atomics). The
// shard's mutex is taken only to insert a new label set and by the scraper.
// The registry's global() shard is the exception: any thread may write it, and
// every call there locks.
class WorkerMetrics {
 public:
  WorkerMetrics(const WorkerMetrics&) = delete;
  WorkerMetrics& operator=(const WorkerMetrics&) = delete;
  ~WorkerMetrics();

  // airbag_requests_total{route,source,code} and
  // airbag_request_duration_seconds{route,source}.
  void recordRequest(std::string_view route, std::string_view source, int code,
                     absl::Duration total);
  // airbag_upstream_attempts_total{route,upstream,outcome}.
  void recordAttempt(std::string_view route, std::string_view upstream, AttemptOutcome outcome);
  // airbag_upstream_connections_opened_total{upstream}.
  void upstreamConnectionOpened(std::string_view upstream);
  // airbag_requests_in_flight (summed over shards).
  void addInFlight(int delta);
  // airbag_downstream_connections_total.
  void clientConnectionOpened();

  // Generic recording, for any family defined on the owning Registry.
  void incCounter(FamilyId id, const LabelValues& labels, uint64_t delta = 1);
  void addGauge(FamilyId id, const LabelValues& labels, double delta);
  void setGauge(FamilyId id, const LabelValues& labels, double value);
  void observe(FamilyId id, const LabelValues& labels, double value);

  const Families& families() const;

  struct Cell;
  // A label set resolved once, for the hot path: recording through a handle
  // hashes nothing. From a worker's own shard only (its writer thread); valid
  // as long as the shard. A default handle records nothing.
  class CounterHandle {
   public:
    void inc(uint64_t delta = 1) const;
    bool valid() const { return cell_ != nullptr; }

   private:
    friend class WorkerMetrics;
    Cell* cell_ = nullptr;
  };
  class HistogramHandle {
   public:
    void observe(double value) const;
    bool valid() const { return cell_ != nullptr; }

   private:
    friend class WorkerMetrics;
    Cell* cell_ = nullptr;
  };
  CounterHandle counter(FamilyId id, const LabelValues& labels);
  HistogramHandle histogram(FamilyId id, const LabelValues& labels);

 private:
  friend class Registry;

  struct LabelKey {
    std::array<std::string, kMaxLabels> values;
  };
  struct KeyHash {
    using is_transparent = void;
    size_t operator()(const LabelKey& k) const;
    size_t operator()(const LabelValues& v) const;
  };
  struct KeyEq {
    using is_transparent = void;
    bool operator()(const LabelKey& a, const LabelKey& b) const { return a.values == b.values; }
    bool operator()(const LabelKey& a, const LabelValues& b) const;
    bool operator()(const LabelValues& a, const LabelKey& b) const { return (*this)(b, a); }
  };
  using CellMap = absl::flat_hash_map<LabelKey, std::unique_ptr<Cell>, KeyHash, KeyEq>;

  WorkerMetrics(const Registry* registry, bool shared);

  // Returns the cell for these labels, creating it on first sight; nullptr if
  // the id is invalid or of another type.
  Cell* cell(FamilyId id, MetricType type, const LabelValues& labels);
  // The *Locked variants need mu_ held.
  Cell* cellLocked(FamilyId id, MetricType type, const LabelValues& labels);
  // Runs fn on the cell for these labels, locking as the shard needs.
  template <typename Fn>
  void withCell(FamilyId id, MetricType type, const LabelValues& labels, Fn&& fn);
  // The lookup both share; `lock`: take mu_ for an insert (cell) or not
  // (cellLocked, whose caller holds it).
  Cell* findOrInsert(FamilyId id, MetricType type, const LabelValues& labels, bool lock);
  Cell* insertLocked(size_t index, const LabelValues& normalized);

  const Registry* const registry_;
  const bool shared_;  // true: written by many threads, every call locks
  Cell* in_flight_ = nullptr;  // airbag_requests_in_flight, resolved once (worker shards)
  // A std::mutex rather than absl::Mutex so ThreadSanitizer, which cannot see
  // into the system's uninstrumented abseil, checks this protocol too.
  mutable std::mutex mu_;
  // Mutated (inserted into) only under mu_ by the owning writer, which may
  // therefore read it without the lock.
  std::array<CellMap, kMaxFamilies> cells_;
};

// Owns the family definitions and the shards, and renders the exposition.
// Thread-safe: define*, addShard, addCollector and renderPrometheus may be
// called from any thread.
class Registry {
 public:
  explicit Registry(absl::Time start_time = absl::Now());
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;
  ~Registry();

  // Defines a family (label names at most kMaxLabels) and returns its id.
  // Defining an existing name returns the existing id. Returns an invalid id
  // once kMaxFamilies families exist or if a name is reused with another type.
  FamilyId defineCounter(std::string name, std::string help, std::vector<std::string> labels);
  FamilyId defineGauge(std::string name, std::string help, std::vector<std::string> labels,
                       GaugeMerge merge = GaugeMerge::kSum);
  FamilyId defineHistogram(std::string name, std::string help, std::vector<std::string> labels,
                           std::vector<double> bounds);

  const Families& families() const { return families_; }

  // Adds one shard; call once per worker before it takes traffic. The shard
  // lives as long as the Registry.
  WorkerMetrics* addShard();

  // A shard that any thread may write (admin, config reload, health checks).
  WorkerMetrics& global() { return *global_; }

  // airbag_config_reloads_total{result="success"|"failure"}.
  void recordConfigReload(bool ok);

  // Registers a function called on every scrape that writes values computed
  // at scrape time (shared cache size, breaker states) into a scratch shard.
  void addCollector(std::function<void(WorkerMetrics&)> collector);

  // Renders every family, summed over shards, in text exposition format 0.0.4.
  std::string renderPrometheus() const;

  // One series of a family summed over the worker shards and global() (not
  // the scrape-time collectors): a counter's value in `count`; a histogram's
  // observations per bucket (not cumulative; the last is +Inf) in `buckets`
  // and their sum in `sum`; a gauge's value in `sum`.
  struct SeriesTotal {
    std::array<std::string, kMaxLabels> labels;
    uint64_t count = 0;
    double sum = 0;
    std::vector<uint64_t> buckets;
  };
  // Every series of one family, for readers that want numbers rather than the
  // exposition (the admin's per-second history). Locks each shard briefly, as
  // a scrape does; empty for an invalid id.
  std::vector<SeriesTotal> totals(FamilyId id) const;

 private:
  friend class WorkerMetrics;
  struct Aggregate;
  using LabelTuple = std::array<std::string, kMaxLabels>;
  using AggregateMap = std::map<LabelTuple, Aggregate>;

  // Adds the shard's series of families [0, aggs.size()) into `aggs`.
  void mergeShard(const WorkerMetrics& shard, std::vector<AggregateMap>& aggs,
                  size_t only_family = kMaxFamilies) const;

  struct FamilyDesc {
    std::string name;
    std::string help;
    MetricType type;
    std::vector<std::string> labels;
    std::vector<double> bounds;  // histograms: sorted upper bounds, +Inf implied
    GaugeMerge merge = GaugeMerge::kSum;
  };

  FamilyId define(FamilyDesc desc);
  // Only ids handed out by define() are ever passed here, so the slot is set.
  const FamilyDesc& desc(size_t index) const { return *descs_[index]; }

  const absl::Time start_time_;
  mutable std::mutex mu_;
  // Slots are written once under mu_ before their id is published.
  std::array<std::unique_ptr<const FamilyDesc>, kMaxFamilies> descs_;
  std::atomic<size_t> family_count_{0};
  std::vector<std::unique_ptr<WorkerMetrics>> shards_;           // guarded by mu_
  std::vector<std::function<void(WorkerMetrics&)>> collectors_;  // guarded by mu_
  std::unique_ptr<WorkerMetrics> global_;
  Families families_;
};

}  // namespace airbag::metrics
