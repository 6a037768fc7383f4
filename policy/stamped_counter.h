// Counters of a ring of time buckets kept in single atomic words, for the
// retry budget and the circuit breaker: each word holds the low 32 bits of its
// bucket's number beside its count, so that restarting a stale bucket and
// counting in it are one compare-and-swap, and no reset can lose a count or let
// an old one leak into the window.
#pragma once

#include <atomic>
#include <cstdint>

namespace airbag::policy::stamped {

// A word: the 32-bit stamp (a bucket number, or a second) in the high half, a
// count in the low half. A word with count 0 is empty whatever its stamp.
inline uint64_t pack(int64_t stamp, uint64_t count) {
  return (uint64_t{static_cast<uint32_t>(stamp)} << 32) | count;
}
inline uint32_t stampOf(uint64_t word) { return static_cast<uint32_t>(word >> 32); }
inline uint64_t countOf(uint64_t word) { return word & 0xffffffffu; }

// How many buckets `word` is older than bucket `index` (negative: newer). Wraps
// after 2^31 buckets: a bucket untouched that long could pass for a live one.
inline int32_t ageOf(uint64_t word, int64_t index) {
  return static_cast<int32_t>(static_cast<uint32_t>(index) - stampOf(word));
}

// What `word` adds to a window of `buckets` buckets whose newest is `index`. A
// slightly newer bucket counts (a caller whose clock is behind the others'); one
// far ahead is left from another bucket width (a reload) and does not.
inline uint64_t liveCount(uint64_t word, int64_t index, int buckets) {
  const int32_t age = ageOf(word, index);
  return age < buckets && age > -buckets ? countOf(word) : 0;
}

// `word` with one more count for bucket `index`: a stale bucket (or one far
// ahead) starts afresh at 1; the same or a slightly newer one adds to its count,
// which saturates rather than wrap.
inline uint64_t bumped(uint64_t word, int64_t index, int buckets) {
  const int32_t age = ageOf(word, index);
  if (countOf(word) == 0 || age > 0 || age <= -buckets) return pack(index, 1);
  return countOf(word) == 0xffffffffu ? word : word + 1;
}

inline void addOne(std::atomic<uint64_t>& counter, int64_t index, int buckets) {
  uint64_t word = counter.load(std::memory_order_relaxed);
  while (!counter.compare_exchange_weak(word, bumped(word, index, buckets))) {
  }
}

}  // namespace airbag::policy::stamped
