// Metric shards and Prometheus text exposition (format 0.0.4).
#include "proxy/metrics/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <utility>

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "airbag/version.h"

namespace airbag::metrics {

namespace {

// Only the owning thread writes a worker shard, so a load and a store beat a
// locked read-modify-write; the scraper may read a value one update old.
template <typename T>
void addRelaxed(std::atomic<T>& a, T delta) {
  a.store(a.load(std::memory_order_relaxed) + delta, std::memory_order_relaxed);
}

LabelValues normalize(const LabelValues& labels, size_t n) {
  LabelValues out{};
  for (size_t i = 0; i < n; ++i) out[i] = labels[i];
  return out;
}

// Prometheus (Go) renders floats in plain notation within a sane range; do the
// same so `le` values read naturally ("0.00025", "2.5", "60").
void appendDouble(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
    return;
  }
  if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
    return;
  }
  char buf[64];
  std::to_chars_result r;
  double mag = std::fabs(v);
  if (v == std::trunc(v) && mag < 1e15) {
    r = std::to_chars(buf, buf + sizeof(buf), static_cast<int64_t>(v));
  } else if (mag >= 1e-4 && mag < 1e15) {
    r = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::fixed);
  } else {
    r = std::to_chars(buf, buf + sizeof(buf), v);
  }
  out.append(buf, r.ptr);
}

// The exposition format escapes backslash and newline everywhere, and the
// double quote inside label values only (HELP text keeps it as it is).
void appendEscaped(std::string& out, std::string_view v, bool label_value) {
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else if (c == '"' && label_value)
      out += "\\\"";
    else
      out += c;
  }
}
void appendEscapedLabelValue(std::string& out, std::string_view v) { appendEscaped(out, v, true); }
void appendEscapedHelp(std::string& out, std::string_view v) { appendEscaped(out, v, false); }

// Appends `{a="x",b="y"` plus `extra` (already rendered) and the closing
// brace; nothing when there are no labels at all.
void appendLabels(std::string& out, const std::vector<std::string>& names,
                  const std::array<std::string, kMaxLabels>& values, std::string_view extra = {}) {
  if (names.empty() && extra.empty()) return;
  out += '{';
  bool first = true;
  for (size_t i = 0; i < names.size(); ++i) {
    if (!first) out += ',';
    first = false;
    out += names[i];
    out += "=\"";
    appendEscapedLabelValue(out, values[i]);
    out += '"';
  }
  if (!extra.empty()) {
    if (!first) out += ',';
    out += extra;
  }
  out += '}';
}

}  // namespace

// One time series in one shard. Which fields are used depends on the type.
struct WorkerMetrics::Cell {
  std::atomic<uint64_t> count{0};                    // counters
  std::atomic<double> value{0};                      // gauges; histograms: the sum
  std::unique_ptr<std::atomic<uint64_t>[]> buckets;  // histograms: per bucket, last is +Inf
  const double* bounds = nullptr;
  size_t num_bounds = 0;
};

const std::vector<double>& durationBuckets() {
  static const std::vector<double> kBuckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                               0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                               1,      2.5,     5,      10,    30,     60};
  return kBuckets;
}

size_t WorkerMetrics::KeyHash::operator()(const LabelKey& k) const {
  return absl::HashOf(std::string_view(k.values[0]), std::string_view(k.values[1]),
                      std::string_view(k.values[2]));
}

size_t WorkerMetrics::KeyHash::operator()(const LabelValues& v) const {
  return absl::HashOf(v[0], v[1], v[2]);
}

bool WorkerMetrics::KeyEq::operator()(const LabelKey& a, const LabelValues& b) const {
  for (size_t i = 0; i < kMaxLabels; ++i)
    if (std::string_view(a.values[i]) != b[i]) return false;
  return true;
}

WorkerMetrics::WorkerMetrics(const Registry* registry, bool shared)
    : registry_(registry), shared_(shared) {}

WorkerMetrics::~WorkerMetrics() = default;

const Families& WorkerMetrics::families() const { return registry_->families(); }

WorkerMetrics::Cell* WorkerMetrics::cell(FamilyId id, MetricType type, const LabelValues& labels) {
  return findOrInsert(id, type, labels, /*lock=*/true);
}

WorkerMetrics::Cell* WorkerMetrics::cellLocked(FamilyId id, MetricType type,
                                               const LabelValues& labels) {
  return findOrInsert(id, type, labels, /*lock=*/false);
}

WorkerMetrics::Cell* WorkerMetrics::findOrInsert(FamilyId id, MetricType type,
                                                 const LabelValues& labels, bool lock) {
  if (!id.valid()) return nullptr;
  const Registry::FamilyDesc& d = registry_->desc(id.index);
  if (d.type != type) return nullptr;
  LabelValues key = normalize(labels, d.labels.size());
  CellMap& map = cells_[id.index];
  if (auto it = map.find(key); it != map.end()) return it->second.get();
  if (!lock) return insertLocked(id.index, key);
  std::lock_guard<std::mutex> held(mu_);
  return insertLocked(id.index, key);
}

WorkerMetrics::Cell* WorkerMetrics::insertLocked(size_t index, const LabelValues& normalized) {
  const Registry::FamilyDesc& d = registry_->desc(index);
  auto c = std::make_unique<Cell>();
  if (d.type == MetricType::kHistogram) {
    c->num_bounds = d.bounds.size();
    c->bounds = d.bounds.data();
    c->buckets = std::make_unique<std::atomic<uint64_t>[]>(d.bounds.size() + 1);
    for (size_t i = 0; i <= d.bounds.size(); ++i) c->buckets[i].store(0, std::memory_order_relaxed);
  }
  LabelKey key;
  for (size_t i = 0; i < kMaxLabels; ++i) key.values[i] = std::string(normalized[i]);
  Cell* raw = c.get();
  cells_[index].emplace(std::move(key), std::move(c));
  return raw;
}

template <typename Fn>
void WorkerMetrics::withCell(FamilyId id, MetricType type, const LabelValues& labels, Fn&& fn) {
  // A shared shard is written by many threads: every call locks. A worker's
  // own shard locks only to insert a label set it has not seen before.
  if (shared_) {
    std::lock_guard<std::mutex> lock(mu_);
    if (Cell* c = cellLocked(id, type, labels)) fn(c);
    return;
  }
  if (Cell* c = cell(id, type, labels)) fn(c);
}

WorkerMetrics::CounterHandle WorkerMetrics::counter(FamilyId id, const LabelValues& labels) {
  CounterHandle h;
  if (!shared_) h.cell_ = cell(id, MetricType::kCounter, labels);
  return h;
}

WorkerMetrics::HistogramHandle WorkerMetrics::histogram(FamilyId id, const LabelValues& labels) {
  HistogramHandle h;
  if (!shared_) h.cell_ = cell(id, MetricType::kHistogram, labels);
  return h;
}

void WorkerMetrics::CounterHandle::inc(uint64_t delta) const {
  if (cell_) addRelaxed(cell_->count, delta);
}

void WorkerMetrics::HistogramHandle::observe(double value) const {
  if (!cell_) return;
  size_t i = std::lower_bound(cell_->bounds, cell_->bounds + cell_->num_bounds, value) -
             cell_->bounds;
  addRelaxed(cell_->buckets[i], uint64_t{1});
  addRelaxed(cell_->value, value);
}

void WorkerMetrics::incCounter(FamilyId id, const LabelValues& labels, uint64_t delta) {
  withCell(id, MetricType::kCounter, labels, [delta](Cell* c) { addRelaxed(c->count, delta); });
}

void WorkerMetrics::addGauge(FamilyId id, const LabelValues& labels, double delta) {
  withCell(id, MetricType::kGauge, labels, [delta](Cell* c) { addRelaxed(c->value, delta); });
}

void WorkerMetrics::setGauge(FamilyId id, const LabelValues& labels, double value) {
  withCell(id, MetricType::kGauge, labels,
           [value](Cell* c) { c->value.store(value, std::memory_order_relaxed); });
}

void WorkerMetrics::observe(FamilyId id, const LabelValues& labels, double value) {
  withCell(id, MetricType::kHistogram, labels, [value](Cell* c) {
    HistogramHandle h;
    h.cell_ = c;
    h.observe(value);
  });
}

void WorkerMetrics::recordRequest(std::string_view route, std::string_view source, int code,
                                  absl::Duration total) {
  const Families& f = registry_->families();
  char buf[16];
  auto r = std::to_chars(buf, buf + sizeof(buf), code);
  incCounter(f.requests_total, {route, source, std::string_view(buf, r.ptr - buf)});
  observe(f.request_duration_seconds, {route, source}, absl::ToDoubleSeconds(total));
}

void WorkerMetrics::recordAttempt(std::string_view route, std::string_view upstream,
                                  AttemptOutcome outcome) {
  incCounter(registry_->families().upstream_attempts_total,
             {route, upstream, attemptOutcomeLabel(outcome)});
}

void WorkerMetrics::upstreamConnectionOpened(std::string_view upstream) {
  incCounter(registry_->families().upstream_connections_opened, {upstream});
}

void WorkerMetrics::addInFlight(int delta) {
  if (shared_) {
    addGauge(registry_->families().requests_in_flight, {}, delta);
    return;
  }
  if (!in_flight_) in_flight_ = cell(registry_->families().requests_in_flight, MetricType::kGauge, {});
  if (in_flight_) addRelaxed(in_flight_->value, static_cast<double>(delta));
}

void WorkerMetrics::clientConnectionOpened() {
  incCounter(registry_->families().downstream_connections_total, {});
}

Registry::Registry(absl::Time start_time) : start_time_(start_time) {
  global_.reset(new WorkerMetrics(this, /*shared=*/true));
  Families& f = families_;
  f.requests_total = defineCounter("airbag_requests_total",
                                   "Requests answered, by route, answer source and status code.",
                                   {"route", "source", "code"});
  f.request_duration_seconds =
      defineHistogram("airbag_request_duration_seconds",
                      "Time from the request's arrival to the last byte of its answer, in seconds.",
                      {"route", "source"}, durationBuckets());
  f.upstream_attempts_total =
      defineCounter("airbag_upstream_attempts_total", "Upstream tries, by how they ended.",
                    {"route", "upstream", "outcome"});
  f.upstream_connections_opened = defineCounter(
      "airbag_upstream_connections_opened_total",
      "Upstream connections opened; far fewer than attempts means keep-alive reuse.", {"upstream"});
  f.requests_in_flight =
      defineGauge("airbag_requests_in_flight", "Requests being handled right now.", {});
  f.downstream_connections_total =
      defineCounter("airbag_downstream_connections_total", "Client connections accepted.", {});
  f.retries_total =
      defineCounter("airbag_retries_total", "Upstream retries (tries after the first).", {"route"});
  f.retry_budget_exhausted_total =
      defineCounter("airbag_retry_budget_exhausted_total",
                    "Retries not made because the retry budget was spent.", {"route"});
  f.circuit_state =
      defineGauge("airbag_circuit_state", "Circuit breaker state: 0 closed, 1 open, 2 half-open.",
                  {"route"}, GaugeMerge::kMax);
  f.circuit_transitions_total =
      defineCounter("airbag_circuit_transitions_total",
                    "Circuit breaker state changes, by new state.", {"route", "to"});
  f.bulkhead_in_flight =
      defineGauge("airbag_bulkhead_in_flight", "Requests holding a bulkhead slot.", {"route"});
  f.bulkhead_queued =
      defineGauge("airbag_bulkhead_queued", "Requests waiting for a bulkhead slot.", {"route"});
  f.bulkhead_rejected_total =
      defineCounter("airbag_bulkhead_rejected_total",
                    "Requests turned away by a full bulkhead or queue timeout.", {"route"});
  f.shed_total = defineCounter("airbag_shed_total", "Requests shed by the global in-flight limit.",
                               {"priority"});
  f.cache_lookups_total =
      defineCounter("airbag_cache_lookups_total", "Cache lookups, by result.", {"route", "result"});
  f.cache_bytes = defineGauge("airbag_cache_bytes", "Bytes held by the response cache.", {});
  f.cache_entries = defineGauge("airbag_cache_entries", "Entries in the response cache.", {});
  f.cache_revalidations_total = defineCounter(
      "airbag_cache_revalidations_total",
      "Background refreshes of stale cache entries, by outcome.", {"route", "outcome"});
  f.fallbacks_total = defineCounter("airbag_fallbacks_total",
                                    "Answers produced by a fallback level.", {"route", "level"});
  f.validation_failures_total =
      defineCounter("airbag_validation_failures_total",
                    "Upstream answers that failed the route's validation.", {"route"});
  f.config_reloads_total =
      defineCounter("airbag_config_reloads_total", "Configuration reloads, by result.", {"result"});
  f.upstream_healthy = defineGauge(
      "airbag_upstream_healthy",
      "1 while requests may go to the upstream, 0 while probes or connect failures hold it down.",
      {"upstream"}, GaugeMerge::kMax);
  f.health_probes_total =
      defineCounter("airbag_health_probes_total",
                    "Active health probes, by result: pass, fail (unexpected status), timeout, "
                    "connect, error.",
                    {"upstream", "result"});
  f.tls_handshakes_total = defineCounter(
      "airbag_tls_handshakes_total",
      "TLS handshakes on client connections, by result: ok (full), resumed (a session ticket or "
      "id), failed, timeout (listen.limits.header_timeout), closed (the client left first).",
      {"result"});
  f.upstream_saturated =
      defineGauge("airbag_upstream_saturated",
                  "1 while the model's own metrics say it is saturated; 0 when ok or unknown.",
                  {"upstream"}, GaugeMerge::kMax);
  f.admission_limit =
      defineGauge("airbag_admission_limit", "The route's admission limit on requests in flight.",
                  {"route"}, GaugeMerge::kMax);
  f.admission_queued =
      defineGauge("airbag_admission_queued", "Requests waiting in the route's admission queue.",
                  {"route", "priority"}, GaugeMerge::kMax);
  f.admission_total = defineCounter(
      "airbag_admission_total",
      "Admission decisions, by outcome: admitted, queued (admitted after waiting), saturated and "
      "adaptive-limit (sent down the ladder), displaced.",
      {"route", "outcome"});
  f.hedges_total = defineCounter(
      "airbag_hedges_total",
      "Hedged tries, by result: sent, won (the hedge answered first), lost (the first try did), "
      "and skipped_* when one was due but not sent (saturated, breaker, unhealthy, budget, "
      "deadline).",
      {"route", "result"});
  f.shared_cache_lookups_total = defineCounter(
      "airbag_shared_cache_lookups_total",
      "Lookups in the shared (Redis) cache tier after a local miss, by result: hit, stale, "
      "miss, error (timeout, failure, damaged value), skipped (its breaker is open).",
      {"route", "result"});
  f.shared_cache_duration_seconds = defineHistogram(
      "airbag_shared_cache_duration_seconds",
      "Time from sending a lookup to the shared (Redis) cache tier to its answer, in seconds.", {},
      durationBuckets());
  f.shared_cache_errors_total = defineCounter(
      "airbag_shared_cache_errors_total",
      "Commands to the shared (Redis) cache tier that went wrong, by op: get (timed out or "
      "failed), set (timed out, failed, or not sent while its breaker is open), purge (a "
      "POST /cache/purge of the shared tier that failed).",
      {"op"});
  f.shared_cache_purged_total = defineCounter(
      "airbag_shared_cache_purged_total",
      "Keys deleted from the shared (Redis) cache tier by POST /cache/purge.", {});
  f.shared_cache_coalesce_total = defineCounter(
      "airbag_shared_cache_coalesce_total",
      "Fills coalesced across pods (cache.shared.coalesce) after a miss in both tiers, by "
      "outcome: lock_taken (this pod calls the model), waited_hit (another pod's answer came), "
      "wait_timeout (none came in coalesce_wait), skipped (Redis refused or failed).",
      {"route", "outcome"});
}

Registry::~Registry() = default;

FamilyId Registry::define(FamilyDesc desc) {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = family_count_.load(std::memory_order_relaxed);
  for (size_t i = 0; i < n; ++i) {
    if (descs_[i]->name == desc.name) {
      if (descs_[i]->type != desc.type) return FamilyId{};
      return FamilyId{static_cast<uint16_t>(i)};
    }
  }
  if (n >= kMaxFamilies || desc.labels.size() > kMaxLabels) return FamilyId{};
  descs_[n] = std::make_unique<const FamilyDesc>(std::move(desc));
  family_count_.store(n + 1, std::memory_order_release);
  return FamilyId{static_cast<uint16_t>(n)};
}

FamilyId Registry::defineCounter(std::string name, std::string help,
                                 std::vector<std::string> labels) {
  return define(
      FamilyDesc{std::move(name), std::move(help), MetricType::kCounter, std::move(labels), {}});
}

FamilyId Registry::defineGauge(std::string name, std::string help, std::vector<std::string> labels,
                               GaugeMerge merge) {
  return define(FamilyDesc{
      std::move(name), std::move(help), MetricType::kGauge, std::move(labels), {}, merge});
}

FamilyId Registry::defineHistogram(std::string name, std::string help,
                                   std::vector<std::string> labels, std::vector<double> bounds) {
  std::sort(bounds.begin(), bounds.end());
  bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());
  while (!bounds.empty() && std::isinf(bounds.back())) bounds.pop_back();
  return define(FamilyDesc{std::move(name), std::move(help), MetricType::kHistogram,
                           std::move(labels), std::move(bounds)});
}

WorkerMetrics* Registry::addShard() {
  std::lock_guard<std::mutex> lock(mu_);
  shards_.emplace_back(new WorkerMetrics(this, /*shared=*/false));
  return shards_.back().get();
}

void Registry::recordConfigReload(bool ok) {
  global_->incCounter(families_.config_reloads_total, {ok ? "success" : "failure"});
}

void Registry::addCollector(std::function<void(WorkerMetrics&)> collector) {
  std::lock_guard<std::mutex> lock(mu_);
  collectors_.push_back(std::move(collector));
}

struct Registry::Aggregate {
  uint64_t count = 0;
  double value = 0;
  bool seen = false;
  std::vector<uint64_t> buckets;
};

void Registry::mergeShard(const WorkerMetrics& shard, std::vector<AggregateMap>& aggs,
                          size_t only_family) const {
  std::lock_guard<std::mutex> lock(shard.mu_);
  for (size_t f = 0; f < aggs.size(); ++f) {
    if (only_family != kMaxFamilies && f != only_family) continue;
    const FamilyDesc& d = desc(f);
    for (const auto& [key, cell] : shard.cells_[f]) {
      Aggregate& a = aggs[f][key.values];
      switch (d.type) {
        case MetricType::kCounter:
          a.count += cell->count.load(std::memory_order_relaxed);
          break;
        case MetricType::kGauge: {
          double v = cell->value.load(std::memory_order_relaxed);
          if (d.merge == GaugeMerge::kSum) {
            a.value += v;
          } else if (!a.seen || v > a.value) {
            a.value = v;
          }
          break;
        }
        case MetricType::kHistogram:
          a.buckets.resize(cell->num_bounds + 1);
          for (size_t i = 0; i <= cell->num_bounds; ++i)
            a.buckets[i] += cell->buckets[i].load(std::memory_order_relaxed);
          a.value += cell->value.load(std::memory_order_relaxed);
          break;
      }
      a.seen = true;
    }
  }
}

std::vector<Registry::SeriesTotal> Registry::totals(FamilyId id) const {
  std::vector<SeriesTotal> out;
  const size_t num_families = family_count_.load(std::memory_order_acquire);
  if (!id.valid() || id.index >= num_families) return out;
  std::vector<AggregateMap> aggs(num_families);
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& s : shards_) mergeShard(*s, aggs, id.index);
  }
  mergeShard(*global_, aggs, id.index);
  for (auto& [labels, a] : aggs[id.index]) {
    SeriesTotal t;
    t.labels = labels;
    t.count = a.count;
    t.sum = a.value;
    t.buckets = std::move(a.buckets);
    out.push_back(std::move(t));
  }
  return out;
}

std::string Registry::renderPrometheus() const {
  const size_t num_families = family_count_.load(std::memory_order_acquire);
  std::vector<AggregateMap> agg(num_families);

  std::vector<std::function<void(WorkerMetrics&)>> collectors;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& s : shards_) mergeShard(*s, agg);
    collectors = collectors_;
  }
  mergeShard(*global_, agg);
  if (!collectors.empty()) {
    WorkerMetrics scratch(this, /*shared=*/true);
    for (const auto& c : collectors) c(scratch);
    mergeShard(scratch, agg);
  }

  std::string out;
  out.reserve(4096);
  for (size_t f = 0; f < num_families; ++f) {
    const FamilyDesc& d = desc(f);
    auto& samples = agg[f];
    // A family without labels always has its one series, at zero until used.
    if (samples.empty() && d.labels.empty()) {
      Aggregate& a = samples[LabelTuple{}];
      a.buckets.resize(d.bounds.size() + 1);
    }
    if (samples.empty()) continue;
    absl::StrAppend(&out, "# HELP ", d.name, " ");
    appendEscapedHelp(out, d.help);
    const char* type = d.type == MetricType::kCounter ? "counter"
                       : d.type == MetricType::kGauge ? "gauge"
                                                      : "histogram";
    absl::StrAppend(&out, "\n# TYPE ", d.name, " ", type, "\n");
    for (const auto& [labels, a] : samples) {
      switch (d.type) {
        case MetricType::kCounter:
          out += d.name;
          appendLabels(out, d.labels, labels);
          absl::StrAppend(&out, " ", a.count, "\n");
          break;
        case MetricType::kGauge:
          out += d.name;
          appendLabels(out, d.labels, labels);
          out += ' ';
          appendDouble(out, a.value);
          out += '\n';
          break;
        case MetricType::kHistogram: {
          uint64_t cumulative = 0;
          std::string le;
          for (size_t i = 0; i <= d.bounds.size(); ++i) {
            cumulative += i < a.buckets.size() ? a.buckets[i] : 0;
            le = "le=\"";
            if (i < d.bounds.size()) {
              appendDouble(le, d.bounds[i]);
            } else {
              le += "+Inf";
            }
            le += '"';
            absl::StrAppend(&out, d.name, "_bucket");
            appendLabels(out, d.labels, labels, le);
            absl::StrAppend(&out, " ", cumulative, "\n");
          }
          absl::StrAppend(&out, d.name, "_sum");
          appendLabels(out, d.labels, labels);
          out += ' ';
          appendDouble(out, a.value);
          absl::StrAppend(&out, "\n", d.name, "_count");
          appendLabels(out, d.labels, labels);
          absl::StrAppend(&out, " ", cumulative, "\n");
          break;
        }
      }
    }
  }

  out += "# HELP airbag_build_info Build of the running airbag; the value is always 1.\n";
  out += "# TYPE airbag_build_info gauge\n";
  out += "airbag_build_info{version=\"";
  appendEscapedLabelValue(out, kVersion);
  out += "\"} 1\n";
  out +=
      "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n";
  out += "# TYPE process_start_time_seconds gauge\n";
  out += "process_start_time_seconds ";
  appendDouble(out, absl::ToDoubleSeconds(start_time_ - absl::UnixEpoch()));
  out += '\n';
  return out;
}

}  // namespace airbag::metrics
