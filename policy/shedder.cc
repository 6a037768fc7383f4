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

// The limit of `p` for M = m (m >= 1), computed from M on every call so that a
// reload changes one word and no caller sees the limits of two configs mixed.
uint32_t limitFor(uint32_t m, Priority p) {
  if (p == Priority::kCritical) return m;
  const uint32_t normal = m == 1 ? 1 : std::clamp<uint32_t>(percentCeil(m, 95), 1, m - 1);
  if (p == Priority::kNormal) return normal;
  return std::clamp<uint32_t>(percentCeil(m, 80), 1, normal);
}

}  // namespace

Shedder::Shedder(const SheddingConfig& config)
    : max_in_flight_(std::max<uint32_t>(1, config.max_in_flight)) {}

bool Shedder::tryAdmit(Priority p) {
  const uint32_t limit = limitFor(max_in_flight_.load(std::memory_order_relaxed), p);
  // The counters guard no other data, so relaxed order is enough.
  uint32_t current = in_flight_.load(std::memory_order_relaxed);
  do {
    if (current >= limit) {
      shed_[idx(p)].fetch_add(1, std::memory_order_relaxed);
      return false;
    }
  } while (!in_flight_.compare_exchange_weak(current, current + 1, std::memory_order_relaxed));
  by_priority_[idx(p)].fetch_add(1, std::memory_order_relaxed);
  return true;
}

void Shedder::release(Priority p) {
  // The per-priority count goes down first and never below zero, so a release
  // without its admission cannot wrap the total either.
  std::atomic<uint32_t>& mine = by_priority_[idx(p)];
  uint32_t current = mine.load(std::memory_order_relaxed);
  do {
    assert(current > 0 && "release() without tryAdmit() of that priority");
    if (current == 0) return;
  } while (!mine.compare_exchange_weak(current, current - 1, std::memory_order_relaxed));
  in_flight_.fetch_sub(1, std::memory_order_relaxed);
}

void Shedder::reconfigure(const SheddingConfig& config) {
  max_in_flight_.store(std::max<uint32_t>(1, config.max_in_flight), std::memory_order_relaxed);
}

uint32_t Shedder::limit(Priority p) const {
  return limitFor(max_in_flight_.load(std::memory_order_relaxed), p);
}

Shedder::Stats Shedder::stats() const {
  Stats s;
  s.in_flight = in_flight_.load(std::memory_order_relaxed);
  for (size_t i = 0; i < 3; ++i) {
    s.in_flight_by_priority[i] = by_priority_[i].load(std::memory_order_relaxed);
    s.shed[i] = shed_[i].load(std::memory_order_relaxed);
  }
  return s;
}

}  // namespace airbag::policy
