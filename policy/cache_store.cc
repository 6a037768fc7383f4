// The sharded response cache; see cache_store.h.
#include "policy/cache_store.h"

#include <algorithm>

#include "absl/hash/hash.h"
#include "absl/strings/string_view.h"

namespace airbag::policy {
namespace {

absl::string_view asAbsl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

}  // namespace

uint64_t CacheStore::defaultHash(std::string_view key) {
  return static_cast<uint64_t>(absl::Hash<absl::string_view>{}(asAbsl(key)));
}

CacheStore::CacheStore(uint64_t max_bytes, KeyHash hash)
    : hash_(hash != nullptr ? hash : &CacheStore::defaultHash), max_bytes_(max_bytes) {}

uint64_t CacheStore::entryBytes(const CacheEntry& entry) {
  uint64_t bytes = kEntryOverhead + entry.key.size() + entry.route.size() + entry.body.size();
  for (const auto& [name, value] : entry.headers)
    bytes += kHeaderOverhead + name.size() + value.size();
  return bytes;
}

CacheStore::Shard& CacheStore::shardFor(uint64_t hash) {
  // Fibonacci mixing, so even a weak injected hash spreads over the shards; the
  // top bits are used because the maps take their buckets from the low ones.
  static_assert((kShards & (kShards - 1)) == 0, "kShards must be a power of two");
  constexpr int kShardBits = __builtin_ctzll(kShards);
  return shards_[static_cast<size_t>((hash * 0x9E3779B97F4A7C15ull) >> (64 - kShardBits))];
}

bool CacheStore::overCap() const {
  return bytes_.load(std::memory_order_relaxed) > max_bytes_.load(std::memory_order_relaxed);
}

void CacheStore::eraseLocked(Shard& shard, Lru::iterator it, Dropped& dropped) {
  const CacheEntry& e = *it->entry;
  shard.index.erase(Key{e.key, it->hash});
  auto route = shard.routes.find(asAbsl(e.route));
  if (route != shard.routes.end()) {
    route->second.entries -= 1;
    route->second.bytes -= it->bytes;
    if (route->second.entries == 0) shard.routes.erase(route);
  }
  bytes_.fetch_sub(it->bytes, std::memory_order_relaxed);
  entries_.fetch_sub(1, std::memory_order_relaxed);
  dropped.push_back(std::move(it->entry));
  shard.lru.erase(it);
}

void CacheStore::evictLocked(Shard& shard, size_t keep, Dropped& dropped) {
  while (overCap() && shard.lru.size() > keep) {
    eraseLocked(shard, std::prev(shard.lru.end()), dropped);
    evictions_.fetch_add(1, std::memory_order_relaxed);
  }
}

CacheStore::LookupResult CacheStore::lookup(std::string_view key, absl::Time now) {
  const uint64_t h = hash_(key);
  Shard& shard = shardFor(h);
  LookupResult result;
  Dropped dropped;  // declared before the lock: an expired entry is freed after the unlock
  absl::MutexLock lock(&shard.mu);
  auto found = shard.index.find(Key{key, h});
  if (found == shard.index.end()) return result;
  Lru::iterator it = found->second;
  const CacheEntry& e = *it->entry;
  const Freshness& f = e.freshness;
  const absl::Duration age = std::max(now - e.stored_at, absl::ZeroDuration());
  if (age < f.ttl) {
    result.kind = Lookup::kFresh;
  } else if (age < f.ttl + f.stale_while_revalidate) {
    result.kind = Lookup::kStale;
    result.revalidate = !it->revalidating;
    it->revalidating = true;
  } else if (age < f.ttl + f.stale_if_error) {
    result.kind = Lookup::kStaleIfError;
  } else {
    // Too old for any use: drop it now rather than wait for the LRU to.
    eraseLocked(shard, it, dropped);
    return result;
  }
  shard.lru.splice(shard.lru.begin(), shard.lru, it);
  result.entry = it->entry;
  return result;
}

bool CacheStore::insert(std::shared_ptr<const CacheEntry> entry, uint64_t max_entry_bytes) {
  if (entry == nullptr) return false;
  const uint64_t bytes = entryBytes(*entry);
  const uint64_t h = hash_(entry->key);
  Shard& shard = shardFor(h);
  const bool storable = entry->freshness.store && bytes <= max_entry_bytes && bytes <= maxBytes();
  Dropped dropped;  // declared before the lock: its entries are freed after the unlock
  {
    absl::MutexLock lock(&shard.mu);
    auto found = shard.index.find(Key{entry->key, h});
    if (!storable) {
      if (found != shard.index.end()) found->second->revalidating = false;
      return false;
    }
    if (found != shard.index.end()) eraseLocked(shard, found->second, dropped);
    shard.lru.push_front(Slot{std::move(entry), h, bytes, false});
    const CacheEntry& e = *shard.lru.front().entry;
    shard.index.emplace(Key{e.key, h}, shard.lru.begin());
    auto route = shard.routes.find(asAbsl(e.route));
    if (route == shard.routes.end()) route = shard.routes.emplace(e.route, RouteStats{}).first;
    route->second.entries += 1;
    route->second.bytes += bytes;
    bytes_.fetch_add(bytes, std::memory_order_relaxed);
    entries_.fetch_add(1, std::memory_order_relaxed);
    // The new entry is at the front, so keeping one keeps it.
    evictLocked(shard, 1, dropped);
  }
  if (overCap()) {
    // One lock at a time, so shards never wait on each other.
    const size_t start = next_victim_shard_.fetch_add(1, std::memory_order_relaxed);
    for (size_t i = 0; i < kShards && overCap(); ++i) {
      Shard& victim = shards_[(start + i) % kShards];
      if (&victim == &shard) continue;
      absl::MutexLock lock(&victim.mu);
      evictLocked(victim, 0, dropped);
    }
  }
  return true;
}

void CacheStore::revalidationDone(std::string_view key) {
  const uint64_t h = hash_(key);
  Shard& shard = shardFor(h);
  absl::MutexLock lock(&shard.mu);
  auto found = shard.index.find(Key{key, h});
  if (found != shard.index.end()) found->second->revalidating = false;
}

CacheStore::Fill CacheStore::joinFill(std::string_view key, FillWaiter* w) {
  const uint64_t h = hash_(key);
  Shard& shard = shardFor(h);
  absl::MutexLock lock(&shard.mu);
  auto found = shard.fills.find(Key{key, h});
  if (found != shard.fills.end()) {
    found->second->followers.push_back(w);
    return Fill::kFollower;
  }
  auto state = std::make_unique<FillState>();
  state->key = std::string(key);
  const Key stable{state->key, h};
  shard.fills.emplace(stable, std::move(state));
  return Fill::kLeader;
}

bool CacheStore::leaveFill(std::string_view key, FillWaiter* w) {
  const uint64_t h = hash_(key);
  Shard& shard = shardFor(h);
  absl::MutexLock lock(&shard.mu);
  auto found = shard.fills.find(Key{key, h});
  if (found == shard.fills.end()) return false;
  std::vector<FillWaiter*>& followers = found->second->followers;
  auto it = std::find(followers.begin(), followers.end(), w);
  if (it == followers.end()) return false;
  followers.erase(it);
  return true;
}

void CacheStore::completeFill(std::string_view key, std::shared_ptr<const CacheEntry> entry) {
  const uint64_t h = hash_(key);
  Shard& shard = shardFor(h);
  std::unique_ptr<FillState> state;
  absl::MutexLock lock(&shard.mu);
  auto found = shard.fills.find(Key{key, h});
  if (found == shard.fills.end()) return;
  state = std::move(found->second);
  shard.fills.erase(found);
  // Under the lock, so that a follower that leaves (leaveFill) is either
  // still registered or already notified, never being notified.
  for (FillWaiter* w : state->followers) w->onFilled(entry);
}

size_t CacheStore::purgeRoute(std::string_view route) {
  size_t purged = 0;
  for (Shard& shard : shards_) {
    Dropped dropped;
    absl::MutexLock lock(&shard.mu);
    if (!shard.routes.contains(asAbsl(route))) continue;
    for (auto it = shard.lru.begin(); it != shard.lru.end();) {
      auto next = std::next(it);
      if (it->entry->route == route) {
        eraseLocked(shard, it, dropped);
        ++purged;
      }
      it = next;
    }
  }
  return purged;
}

size_t CacheStore::purgeAll() {
  size_t purged = 0;
  for (Shard& shard : shards_) {
    Dropped dropped;
    absl::MutexLock lock(&shard.mu);
    while (!shard.lru.empty()) {
      eraseLocked(shard, shard.lru.begin(), dropped);
      ++purged;
    }
  }
  return purged;
}

CacheStore::Stats CacheStore::stats() const {
  return Stats{bytes_.load(std::memory_order_relaxed), entries_.load(std::memory_order_relaxed),
               evictions_.load(std::memory_order_relaxed)};
}

CacheStore::RouteStats CacheStore::routeStats(std::string_view route) const {
  RouteStats total;
  for (const Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    auto found = shard.routes.find(asAbsl(route));
    if (found == shard.routes.end()) continue;
    total.entries += found->second.entries;
    total.bytes += found->second.bytes;
  }
  return total;
}

}  // namespace airbag::policy
