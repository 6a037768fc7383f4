// The shedder's reserve thresholds and counters; see shedder.h.
#include "policy/shedder.h"

#include <algorithm>
#include <cassert>

namespace airbag::policy {
namespace {

size_t idx(Priority p) { return static_cast<size_t>(p); }

// ceil(percent% of m), in integers so that the thresholds are exact.
uint32_t percentCeil(uint32_t m, uint32_t percent) {
  return static_cast<uint32_t>((uint64_t{m} * percent + 99) / 100);
}

}  // namespace

Shedder::Shedder(const SheddingConfig& config) {
  absl::MutexLock lock(&mu_);
  setLimits(config.max_in_flight);
}

void Shedder::setLimits(uint32_t max_in_flight) {
  const uint32_t m = std::max<uint32_t>(1, max_in_flight);
  const uint32_t normal = m == 1 ? 1 : std::clamp<uint32_t>(percentCeil(m, 95), 1, m - 1);
  const uint32_t optional = std::clamp<uint32_t>(percentCeil(m, 80), 1, normal);
  limits_[idx(Priority::kCritical)] = m;
  limits_[idx(Priority::kNormal)] = normal;
  limits_[idx(Priority::kOptional)] = optional;
}

bool Shedder::tryAdmit(Priority p) {
  absl::MutexLock lock(&mu_);
  if (in_flight_ >= limits_[idx(p)]) {
    ++shed_[idx(p)];
    return false;
  }
  ++in_flight_;
  ++by_priority_[idx(p)];
  return true;
}

void Shedder::release(Priority p) {
  absl::MutexLock lock(&mu_);
  assert(by_priority_[idx(p)] > 0 && "release() without tryAdmit() of that priority");
  if (by_priority_[idx(p)] == 0) return;
  --by_priority_[idx(p)];
  --in_flight_;
}

void Shedder::reconfigure(const SheddingConfig& config) {
  absl::MutexLock lock(&mu_);
  setLimits(config.max_in_flight);
}

uint32_t Shedder::limit(Priority p) const {
  absl::MutexLock lock(&mu_);
  return limits_[idx(p)];
}

Shedder::Stats Shedder::stats() const {
  absl::MutexLock lock(&mu_);
  return Stats{in_flight_, by_priority_, shed_};
}

}  // namespace airbag::policy
