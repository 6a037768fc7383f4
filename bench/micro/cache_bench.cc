// Micro benchmarks of the response cache: a hit (the cost every cached request
// pays), a miss, an insert that must evict, and parsing an upstream's Cache-Control.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "airbag/config.h"
#include "benchmark/benchmark.h"
#include "policy/cache_control.h"
#include "policy/cache_store.h"

namespace airbag::policy {
namespace {

const absl::Time kStart = absl::UnixEpoch() + absl::Hours(24 * 365 * 50);
constexpr uint64_t kNoEntryLimit = ~uint64_t{0};

// Keys shaped like real ones: route, method, path and a body digest.
std::string keyOf(int i) {
  return "predict|POST|/v1/chat/completions|" + std::to_string(i) +
         "|sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
}

std::shared_ptr<const CacheEntry> entryOf(int i, size_t body_bytes) {
  auto e = std::make_shared<CacheEntry>();
  e->key = keyOf(i);
  e->headers = {{"content-type", "application/json"}, {"x-model-version", "7"}};
  e->body = std::string(body_bytes, 'x');
  e->stored_at = kStart;
  e->freshness = Freshness{absl::Seconds(30), absl::Seconds(60), absl::Seconds(600), true};
  e->route = "predict";
  return e;
}

constexpr int kHitKeys = 10000;

void BM_LookupHit(benchmark::State& state) {
  // Shared by the benchmark's threads, as by the workers of a process.
  static CacheStore* store = [] {
    auto* s = new CacheStore(uint64_t{1} << 30);
    for (int i = 0; i < kHitKeys; ++i) s->insert(entryOf(i, 600), kNoEntryLimit);
    return s;
  }();
  std::vector<std::string> keys;
  for (int i = 0; i < 1024; ++i)
    keys.push_back(keyOf((i * 7919 + state.thread_index() * 13) % kHitKeys));
  size_t i = 0;
  for (auto _ : state) {
    CacheStore::LookupResult r = store->lookup(keys[i++ & 1023], kStart + absl::Seconds(1));
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_LookupHit)->Threads(1)->Threads(2)->UseRealTime();

void BM_LookupMiss(benchmark::State& state) {
  CacheStore store(uint64_t{1} << 30);
  for (int i = 0; i < kHitKeys; ++i) store.insert(entryOf(i, 600), kNoEntryLimit);
  std::vector<std::string> keys;
  for (int i = 0; i < 1024; ++i) keys.push_back(keyOf(kHitKeys + i));
  size_t i = 0;
  for (auto _ : state) {
    CacheStore::LookupResult r = store.lookup(keys[i++ & 1023], kStart);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_LookupMiss);

// A full cache: every insert of a new key evicts at least one old one. The
// entries are built beforehand; what is measured is the store's own work.
void BM_InsertWithEviction(benchmark::State& state) {
  const size_t body = static_cast<size_t>(state.range(0));
  CacheStore store(uint64_t{1} << 20);
  constexpr int kPool = 8192;
  std::vector<std::shared_ptr<const CacheEntry>> pool;
  for (int i = 0; i < kPool; ++i) pool.push_back(entryOf(i, body));
  for (const auto& e : pool) store.insert(e, kNoEntryLimit);  // fill to the cap
  size_t i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(store.insert(pool[i++ % kPool], kNoEntryLimit));
  state.counters["evictions"] = static_cast<double>(store.stats().evictions);
}
BENCHMARK(BM_InsertWithEviction)->Arg(600)->Arg(16 * 1024);

void BM_FreshnessFor(benchmark::State& state) {
  RouteCacheConfig route;
  route.stale_while_revalidate = absl::Seconds(60);
  for (auto _ : state) {
    Freshness f = freshnessFor(route, "public, max-age=60, s-maxage=120, stale-if-error=600");
    benchmark::DoNotOptimize(f);
  }
}
BENCHMARK(BM_FreshnessFor);

}  // namespace
}  // namespace airbag::policy
