// Saturation readings of one upstream; see upstream_saturation.h.
#include "proxy/upstream/upstream_saturation.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "proxy/upstream/prometheus_text.h"

namespace airbag::upstream {

std::string_view saturationStateName(SaturationState s) {
  switch (s) {
    case SaturationState::kOk:
      return "ok";
    case SaturationState::kSaturated:
      return "saturated";
    case SaturationState::kUnknown:
      break;
  }
  return "unknown";
}

SaturationState judgeSaturation(const SaturationConfig& config, std::string_view body,
                                std::vector<SaturationReading>& readings, std::string& error) {
  readings.clear();
  for (const SaturationThreshold& t : config.when_any) readings.push_back({t.metric, t.gt, {}});
  absl::Status parsed = forEachPromSample(body, [&](const PromSample& s) {
    if (std::isnan(s.value)) return;
    for (SaturationReading& r : readings)
      if (r.metric == s.name && (!r.value || s.value > *r.value)) r.value = s.value;
  });
  error.clear();
  if (!parsed.ok()) {
    for (SaturationReading& r : readings) r.value.reset();
    error = absl::StrCat("the metrics do not parse: ", parsed.message());
    return SaturationState::kUnknown;
  }
  bool found = false;
  bool over = false;
  for (const SaturationReading& r : readings) {
    found = found || r.value.has_value();
    over = over || (r.value && *r.value > r.gt);
  }
  if (over) return SaturationState::kSaturated;
  if (!found) {
    error = "none of the when_any metrics is in the scrape";
    return SaturationState::kUnknown;
  }
  return SaturationState::kOk;
}

bool UpstreamSaturation::setState(SaturationState s) {
  return state_.exchange(static_cast<int>(s), std::memory_order_relaxed) != static_cast<int>(s);
}

bool UpstreamSaturation::recordScrape(const SaturationConfig& config, std::string_view body,
                                      absl::Time now) {
  absl::MutexLock l(&mu_);
  view_.state = judgeSaturation(config, body, view_.readings, view_.error);
  view_.last_scrape = now;
  ++view_.scrapes_ok;
  return setState(view_.state);
}

bool UpstreamSaturation::recordFailure(std::string_view why, absl::Time now) {
  absl::MutexLock l(&mu_);
  view_.state = SaturationState::kUnknown;
  for (SaturationReading& r : view_.readings) r.value.reset();
  view_.error.assign(why);
  view_.last_scrape = now;
  ++view_.scrapes_failed;
  return setState(SaturationState::kUnknown);
}

void UpstreamSaturation::reset() {
  absl::MutexLock l(&mu_);
  view_ = View{};
  setState(SaturationState::kUnknown);
}

UpstreamSaturation::View UpstreamSaturation::view() const {
  absl::MutexLock l(&mu_);
  return view_;
}

}  // namespace airbag::upstream
