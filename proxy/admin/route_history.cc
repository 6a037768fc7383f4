// Per-second route history; see route_history.h.
#include "proxy/admin/route_history.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "proxy/metrics/metrics.h"

namespace airbag::admin {

namespace {

using Json = nlohmann::json;

uint32_t clamp32(uint64_t v) {
  return static_cast<uint32_t>(std::min<uint64_t>(v, std::numeric_limits<uint32_t>::max()));
}

// How much a counter grew; a counter that went down (it never should) counts
// as no growth rather than as four billion.
uint64_t growth(uint64_t now, uint64_t before) { return now >= before ? now - before : 0; }

size_t levelIndex(AnswerSource s) { return static_cast<size_t>(s); }

float toMs(std::optional<double> seconds) {
  return seconds ? static_cast<float>(*seconds * 1000.0) : -1.0f;
}

}  // namespace

std::optional<AnswerSource> levelOfSource(std::string_view source) {
  std::string_view level = source.substr(0, source.find(':'));
  for (size_t i = 0; i < kNumLevels; ++i) {
    auto s = static_cast<AnswerSource>(i);
    if (answerSourceLabel(s) != level) continue;
    // Only fallback and rule carry a ":<name>".
    bool named = s == AnswerSource::kFallback || s == AnswerSource::kRule;
    if (named != (level.size() != source.size())) return std::nullopt;
    return s;
  }
  return std::nullopt;
}

TotalsByRoute routeTotals(const metrics::Registry& registry) {
  TotalsByRoute out;
  const metrics::Families& f = registry.families();
  for (const auto& s : registry.totals(f.requests_total)) {
    RouteTotals& t = out[s.labels[0]];
    t.requests += s.count;
    if (auto level = levelOfSource(s.labels[1])) t.by_level[levelIndex(*level)] += s.count;
    if (!s.labels[2].empty() && s.labels[2][0] == '5') t.errors += s.count;
  }
  for (const auto& s : registry.totals(f.request_duration_seconds)) {
    RouteTotals& t = out[s.labels[0]];
    if (t.latency_buckets.size() < s.buckets.size()) t.latency_buckets.resize(s.buckets.size());
    for (size_t i = 0; i < s.buckets.size(); ++i) t.latency_buckets[i] += s.buckets[i];
  }
  for (const auto& s : registry.totals(f.upstream_attempts_total))
    if (s.labels[2] != attemptOutcomeLabel(AttemptOutcome::kOk))
      out[s.labels[0]].upstream_failures += s.count;
  return out;
}

std::optional<double> bucketQuantile(const std::vector<uint64_t>& buckets,
                                     const std::vector<double>& bounds, double q) {
  uint64_t total = 0;
  for (uint64_t b : buckets) total += b;
  if (total == 0) return std::nullopt;
  const double rank = std::clamp(q, 0.0, 1.0) * static_cast<double>(total);
  uint64_t below = 0;
  for (size_t i = 0; i < buckets.size(); ++i) {
    if (buckets[i] == 0 || static_cast<double>(below + buckets[i]) < rank) {
      below += buckets[i];
      continue;
    }
    if (i >= bounds.size()) return bounds.empty() ? 0.0 : bounds.back();
    const double lower = i == 0 ? 0.0 : bounds[i - 1];
    const double within = (rank - static_cast<double>(below)) / static_cast<double>(buckets[i]);
    return lower + (bounds[i] - lower) * within;
  }
  return bounds.empty() ? 0.0 : bounds.back();
}

void RouteHistory::add(const HistorySlot& slot) {
  if (size_ > 0) {
    HistorySlot& newest = slots_[(next_ + kSlots - 1) % kSlots];
    if (slot.second <= newest.second) {
      // Latencies cannot be merged exactly; keep the worse p99 and a p50
      // weighted by the answers of each part.
      if (slot.requests > 0) {
        uint64_t n = uint64_t{newest.requests} + slot.requests;
        if (newest.p50_ms < 0) {
          newest.p50_ms = slot.p50_ms;
        } else if (slot.p50_ms >= 0) {
          newest.p50_ms = static_cast<float>(
              (double{newest.p50_ms} * newest.requests + double{slot.p50_ms} * slot.requests) /
              static_cast<double>(n));
        }
        newest.p99_ms = std::max(newest.p99_ms, slot.p99_ms);
      }
      newest.requests = clamp32(uint64_t{newest.requests} + slot.requests);
      for (size_t i = 0; i < kNumLevels; ++i)
        newest.by_level[i] = clamp32(uint64_t{newest.by_level[i]} + slot.by_level[i]);
      newest.errors = clamp32(uint64_t{newest.errors} + slot.errors);
      newest.upstream_failures =
          clamp32(uint64_t{newest.upstream_failures} + slot.upstream_failures);
      return;
    }
  }
  slots_[next_] = slot;
  next_ = (next_ + 1) % kSlots;
  size_ = std::min(size_ + 1, kSlots);
}

std::vector<HistorySlot> RouteHistory::recent(int64_t now_second) const {
  std::vector<HistorySlot> out;
  out.reserve(size_);
  const int64_t oldest = now_second - static_cast<int64_t>(kSlots);
  for (size_t k = 0; k < size_; ++k) {
    const HistorySlot& s = slots_[(next_ + kSlots - size_ + k) % kSlots];
    if (s.second > oldest && s.second <= now_second) out.push_back(s);
  }
  return out;
}

void HistoryStore::sample(absl::Time now, const std::vector<std::string>& routes,
                          const TotalsByRoute& totals) {
  const int64_t second = absl::ToUnixSeconds(now);
  last_second_ = second;
  static const RouteTotals kNone;
  absl::flat_hash_map<std::string, std::unique_ptr<Entry>> kept;
  for (const std::string& name : routes) {
    if (kept.contains(name)) continue;
    auto it = totals.find(name);
    const RouteTotals& t = it != totals.end() ? it->second : kNone;
    std::unique_ptr<Entry> e;
    if (auto old = routes_.find(name); old != routes_.end()) e = std::move(old->second);
    if (e == nullptr) {
      e = std::make_unique<Entry>();
      e->last = t;
      kept.emplace(name, std::move(e));
      continue;
    }
    HistorySlot slot;
    slot.second = second;
    slot.requests = clamp32(growth(t.requests, e->last.requests));
    for (size_t i = 0; i < kNumLevels; ++i)
      slot.by_level[i] = clamp32(growth(t.by_level[i], e->last.by_level[i]));
    slot.errors = clamp32(growth(t.errors, e->last.errors));
    slot.upstream_failures = clamp32(growth(t.upstream_failures, e->last.upstream_failures));
    std::vector<uint64_t> delta(t.latency_buckets.size());
    for (size_t i = 0; i < delta.size(); ++i)
      delta[i] = growth(t.latency_buckets[i],
                        i < e->last.latency_buckets.size() ? e->last.latency_buckets[i] : 0);
    slot.p50_ms = toMs(bucketQuantile(delta, metrics::durationBuckets(), 0.5));
    slot.p99_ms = toMs(bucketQuantile(delta, metrics::durationBuckets(), 0.99));
    e->history.add(slot);
    e->last = t;
    kept.emplace(name, std::move(e));
  }
  routes_ = std::move(kept);
}

const RouteHistory* HistoryStore::find(std::string_view route) const {
  auto it = routes_.find(absl::string_view(route.data(), route.size()));
  return it == routes_.end() ? nullptr : &it->second->history;
}

std::optional<Json> HistoryStore::toJson(std::string_view route) const {
  const RouteHistory* h = find(route);
  if (h == nullptr) return std::nullopt;
  Json t = Json::array(), requests = Json::array(), errors = Json::array(),
       failures = Json::array(), p50 = Json::array(), p99 = Json::array();
  std::array<Json, kNumLevels> levels;
  levels.fill(Json::array());
  auto ms = [](float v) { return v < 0 ? Json(nullptr) : Json(std::round(v * 1000.0) / 1000.0); };
  for (const HistorySlot& s : h->recent(last_second_)) {
    t.push_back(s.second);
    requests.push_back(s.requests);
    for (size_t i = 0; i < kNumLevels; ++i) levels[i].push_back(s.by_level[i]);
    errors.push_back(s.errors);
    failures.push_back(s.upstream_failures);
    p50.push_back(ms(s.p50_ms));
    p99.push_back(ms(s.p99_ms));
  }
  Json by_level = Json::object();
  for (size_t i = 0; i < kNumLevels; ++i)
    by_level[std::string(answerSourceLabel(static_cast<AnswerSource>(i)))] = std::move(levels[i]);
  return Json{{"route", route},
              {"interval_seconds", 1},
              {"window_seconds", RouteHistory::kSlots},
              {"now", last_second_},
              {"t", std::move(t)},
              {"requests", std::move(requests)},
              {"levels", std::move(by_level)},
              {"errors", std::move(errors)},
              {"upstream_failures", std::move(failures)},
              {"latency_ms", {{"p50", std::move(p50)}, {"p99", std::move(p99)}}}};
}

}  // namespace airbag::admin
