// Micro benchmarks of the per-request admission objects: circuit breaker,
// bulkhead and shedder, alone and with threads contending for one instance.
#include <cstdint>

#include "absl/time/time.h"
#include "airbag/config.h"
#include "benchmark/benchmark.h"
#include "policy/bulkhead.h"
#include "policy/circuit_breaker.h"
#include "policy/shedder.h"

namespace airbag::policy {
namespace {

const absl::Time kStart = absl::UnixEpoch() + absl::Hours(24 * 365 * 50);

// A closed breaker: tryAcquire then onResult, as every request pays it. One in
// sixteen calls fails, never enough to trip, so the window keeps being updated.
void BM_BreakerAcquireResult(benchmark::State& state) {
  // One instance shared by the benchmark's threads, as by a route's workers.
  static CircuitBreaker breaker([] {
    CircuitBreakerConfig config;
    config.consecutive_failures = 0;
    config.failure_rate = 1.0;
    return config;
  }());
  uint64_t i = 0;
  for (auto _ : state) {
    const absl::Time now = kStart + absl::Microseconds(static_cast<int64_t>(++i));
    const CircuitBreaker::Permit p = breaker.tryAcquire(now);
    benchmark::DoNotOptimize(p);
    breaker.onResult(now, (i & 15) != 0, absl::Milliseconds(3), p.probe);
  }
}
BENCHMARK(BM_BreakerAcquireResult)->Threads(1)->Threads(2)->UseRealTime();

// An open breaker refusing: the cost of the fast path when the model is down.
void BM_BreakerRefuse(benchmark::State& state) {
  CircuitBreakerConfig config;
  config.consecutive_failures = 1;
  config.open_for = absl::Hours(1);
  config.max_open_for = absl::Hours(1);
  CircuitBreaker breaker(config);
  breaker.onResult(kStart, false, absl::Milliseconds(1), false);
  for (auto _ : state) benchmark::DoNotOptimize(breaker.tryAcquire(kStart));
}
BENCHMARK(BM_BreakerRefuse);

void BM_BulkheadAcquireRelease(benchmark::State& state) {
  static Bulkhead bulkhead(BulkheadConfig{1024, 0, absl::Milliseconds(100)});
  for (auto _ : state) {
    benchmark::DoNotOptimize(bulkhead.tryAcquire(nullptr));
    bulkhead.release();
  }
}
BENCHMARK(BM_BulkheadAcquireRelease)->Threads(1)->Threads(2)->UseRealTime();

// Queue hand-off: a full bulkhead, one waiter queued and granted per iteration.
class CountingWaiter final : public BulkheadWaiter {
 public:
  void onGranted() override { ++granted; }
  uint64_t granted = 0;
};

void BM_BulkheadQueueHandOff(benchmark::State& state) {
  Bulkhead bulkhead(BulkheadConfig{1, 1, absl::Milliseconds(100)});
  CountingWaiter waiter;
  bulkhead.tryAcquire(nullptr);
  for (auto _ : state) {
    benchmark::DoNotOptimize(bulkhead.tryAcquire(&waiter));
    bulkhead.release();  // the slot passes to the waiter, which now holds it
  }
  bulkhead.release();
  state.counters["granted"] = static_cast<double>(waiter.granted);
}
BENCHMARK(BM_BulkheadQueueHandOff);

void BM_ShedderAdmitRelease(benchmark::State& state) {
  // One process-wide instance, shared by the benchmark's threads as by the workers.
  static Shedder shedder(SheddingConfig{1024});
  for (auto _ : state) {
    benchmark::DoNotOptimize(shedder.tryAdmit(Priority::kNormal));
    shedder.release(Priority::kNormal);
  }
}
BENCHMARK(BM_ShedderAdmitRelease)->Threads(1)->Threads(2)->UseRealTime();

}  // namespace
}  // namespace airbag::policy
