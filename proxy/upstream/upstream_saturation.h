// What the process knows about one upstream's load, read from the model
// server's own Prometheus gauges (`upstreams.*.saturation`): ok, saturated,
// or unknown (never scraped, or the last scrape failed — a failure never
// counts as saturation). One object per upstream name for the whole process,
// written by the scraper thread, read by every worker (the state is one
// atomic; the readings for GET /upstreams sit behind a mutex) and carried
// over on reload. Time is passed in; nothing here reads a clock.
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "airbag/config.h"

namespace airbag::upstream {

enum class SaturationState { kUnknown = 0, kOk = 1, kSaturated = 2 };

// "unknown" | "ok" | "saturated".
std::string_view saturationStateName(SaturationState s);

// One threshold as last read: the highest sample of its metric (over all
// series; nullopt when the scrape had none) against `gt`.
struct SaturationReading {
  std::string metric;
  double gt = 0;
  std::optional<double> value;
};

// Judges one scrape's body against the thresholds. kSaturated when any
// reading is over its threshold; kOk when at least one metric was found and
// none is over; kUnknown when the body does not parse or names none of the
// metrics (`error` then says why). Fills `readings`, one per threshold.
SaturationState judgeSaturation(const SaturationConfig& config, std::string_view body,
                                std::vector<SaturationReading>& readings, std::string& error);

class UpstreamSaturation {
 public:
  explicit UpstreamSaturation(std::string name) : name_(std::move(name)) {}
  UpstreamSaturation(const UpstreamSaturation&) = delete;
  UpstreamSaturation& operator=(const UpstreamSaturation&) = delete;

  const std::string& name() const { return name_; }
  SaturationState state() const {
    return static_cast<SaturationState>(state_.load(std::memory_order_relaxed));
  }
  bool saturated() const { return state() == SaturationState::kSaturated; }

  // A scrape answered 200 with `body`. Returns true when the state changed.
  bool recordScrape(const SaturationConfig& config, std::string_view body, absl::Time now);
  // A scrape failed (`why`): the state is unknown. Returns true when it changed.
  bool recordFailure(std::string_view why, absl::Time now);
  // Forgets everything (the upstream is no longer scraped): unknown.
  void reset();

  struct View {
    SaturationState state = SaturationState::kUnknown;
    std::vector<SaturationReading> readings;
    absl::Time last_scrape = absl::InfinitePast();  // InfinitePast: never
    std::string error;                              // why the state is unknown, if it is
    uint64_t scrapes_ok = 0;
    uint64_t scrapes_failed = 0;
  };
  // A consistent copy, for the admin API. Thread-safe.
  View view() const;

 private:
  bool setState(SaturationState s);

  const std::string name_;
  std::atomic<int> state_{static_cast<int>(SaturationState::kUnknown)};
  mutable absl::Mutex mu_;
  View view_ ABSL_GUARDED_BY(mu_);
};

}  // namespace airbag::upstream
