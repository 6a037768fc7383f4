// Micro benchmarks of the retry path: one backoff draw and one retry-budget
// check, the two things the attempt loop pays for on every failed try.
#include <benchmark/benchmark.h>

#include <memory>

#include "absl/random/random.h"
#include "absl/time/time.h"
#include "airbag/config.h"
#include "policy/backoff.h"
#include "policy/retry.h"
#include "policy/retry_budget.h"

namespace airbag::policy {
namespace {

void BM_BackoffNext(benchmark::State& state) {
  BackoffConfig config;
  config.jitter = static_cast<Jitter>(state.range(0));
  Backoff backoff(config);
  absl::InsecureBitGen gen;
  for (auto _ : state) {
    if (backoff.retries() >= 8) backoff.reset();
    benchmark::DoNotOptimize(backoff.next(gen));
  }
}
BENCHMARK(BM_BackoffNext)
    ->ArgName("jitter")
    ->Arg(static_cast<int>(Jitter::kFull))
    ->Arg(static_cast<int>(Jitter::kEqual))
    ->Arg(static_cast<int>(Jitter::kDecorrelated))
    ->Arg(static_cast<int>(Jitter::kNone));

// One budget shared by the benchmark's threads, as by a route's workers.
class RetryBudgetBench : public benchmark::Fixture {
 public:
  void SetUp(const benchmark::State& state) override {
    if (state.thread_index() == 0) budget_ = std::make_unique<RetryBudget>(RetryBudgetConfig{});
  }
  void TearDown(const benchmark::State& state) override {
    if (state.thread_index() == 0) budget_.reset();
  }

 protected:
  std::unique_ptr<RetryBudget> budget_;
};

// Time advances by 1 ms per iteration, so buckets roll over as in real traffic.
BENCHMARK_DEFINE_F(RetryBudgetBench, RequestAndRetry)(benchmark::State& state) {
  absl::Time now = absl::FromUnixSeconds(1700000000);
  for (auto _ : state) {
    now += absl::Milliseconds(1);
    budget_->recordRequest(now);
    benchmark::DoNotOptimize(budget_->tryAcquireRetry(now));
  }
}
BENCHMARK_REGISTER_F(RetryBudgetBench, RequestAndRetry)->Threads(1)->Threads(2)->UseRealTime();

void BM_DecideRetry(benchmark::State& state) {
  RetryConfig config;
  config.attempts = 3;
  RetryBudget budget(config.budget);
  absl::InsecureBitGen gen;
  const TryResult result{AttemptOutcome::kConnect, 0, std::nullopt};
  absl::Time now = absl::FromUnixSeconds(1700000000);
  for (auto _ : state) {
    now += absl::Milliseconds(1);
    budget.recordRequest(now);
    Backoff backoff(config.backoff);
    benchmark::DoNotOptimize(
        decideRetry(config, result, 1, now, now + absl::Seconds(30), true, backoff, budget, gen));
  }
}
BENCHMARK(BM_DecideRetry);

}  // namespace
}  // namespace airbag::policy
